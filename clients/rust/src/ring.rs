//! The shared-memory ring transport (PROTOCOL.md section 10): the data path through a submission queue, a
//! completion queue and a data area shared with gmemd, with eventfd doorbells.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use crate::error::{Error, Operation};
use crate::sys::{self, Mapping};
use crate::types::{AtomicOp, GpcHandle, Segment, VectorProgress, Width};
use crate::wire::{RawAtomic, errno, opcode, ring};

/// Spins on the completion queue this many times before sleeping on the doorbell.
const SPINS: u32 = 2000;

/// The result of one ring entry that succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// ATOMIC, GPC_ATOMIC: the old value (see [`AtomicOp`]); otherwise 0.
    pub value: u64,
    /// Bytes transferred (READV, WRITEV: the sum of the segments).
    pub len: u32,
    /// READ, GPC_READ, READV: the bytes read; otherwise empty.
    pub data: Vec<u8>,
}

/// A shared-memory ring of one connection, from [`Client::ring`](crate::Client::ring).
///
/// The ring carries the data path — READ, WRITE, READV, WRITEV, GPC_READ, GPC_WRITE, ATOMIC, GPC_ATOMIC and PING —
/// with the socket's semantics and error rules, without a system call per request while the daemon's poller is
/// awake. Control (GPC activation, conversions, events) stays on the [`Client`](crate::Client). GPC handles and
/// read-only status are the connection's.
///
/// A `Ring` is `Send`: give each vCPU or queue thread its own ring. Its methods take `&mut self`, so one thread
/// submits at a time, as the protocol requires. [`batch`](Self::batch) submits many entries with one doorbell.
///
/// Closing: [`Client::ring_close`](crate::Client::ring_close) closes it on the daemon's side and unmaps it.
/// Dropping a `Ring` only unmaps it here; the daemon keeps it until the connection closes. The ring keeps a
/// duplicate of the connection's socket to notice the daemon going away: when the connection fails or the
/// daemon dies, a waiting ring call fails with `ECONNRESET` instead of waiting forever (and the connection stays
/// open while a ring of it exists, even after its `Client` is dropped).
#[derive(Debug)]
pub struct Ring {
    map: Mapping,
    ring_id: u32,
    entries: u32,
    data_size: u64,
    sq_offset: usize,
    cq_offset: usize,
    data_offset: usize,
    submit: File,
    complete: File,
    socket: OwnedFd,
    connection: u64,
    sq_tail: u32,
    cq_head: u32,
    next_cookie: u64,
    timeout: Option<Duration>,
    broken: Option<(i32, String)>,
}

/// What RING_SETUP returned, with its descriptors.
pub(crate) struct Setup {
    pub(crate) ring_id: u32,
    pub(crate) entries: u32,
    pub(crate) data_size: u64,
    pub(crate) mmap_size: u64,
    pub(crate) memfd: OwnedFd,
    pub(crate) submit: OwnedFd,
    pub(crate) complete: OwnedFd,
    pub(crate) socket: OwnedFd,
    pub(crate) connection: u64,
}

impl Ring {
    /// Maps the ring of a RING_SETUP reply and checks its header against the layout of section 10.1.
    pub(crate) fn map(s: Setup) -> Result<Ring, String> {
        let (cq, data, size) = ring::layout(s.entries, s.data_size);
        if size != s.mmap_size {
            return Err(format!("mmap_size {} for a layout of {size} bytes", s.mmap_size));
        }
        let len = usize::try_from(size).map_err(|_| "mmap_size over usize".to_string())?;
        let map = Mapping::shared(&s.memfd, len).map_err(|e| format!("mmap of the ring: {e}"))?;
        let mut head = [0u8; 56];
        // SAFETY: the mapping holds at least 4096 bytes (the header page), so its first 56 are in bounds; the
        // server wrote them once before sending the reply and never writes them again.
        unsafe { ptr::copy_nonoverlapping(map.ptr(), head.as_mut_ptr(), head.len()) };
        let u32_at = |k: usize| crate::wire::le_u32(&head, k);
        let u64_at = |k: usize| crate::wire::le_u64(&head, k);
        let want = [
            (u32_at(0) as u64, ring::MAGIC as u64, "magic"),
            (u32_at(4) as u64, ring::VERSION as u64, "version"),
            (u32_at(8) as u64, s.entries as u64, "entries"),
            (u32_at(12) as u64, ring::SQE_SIZE as u64, "sqe_size"),
            (u32_at(16) as u64, ring::CQE_SIZE as u64, "cqe_size"),
            (u32_at(20) as u64, s.ring_id as u64, "ring_id"),
            (u64_at(24), ring::SQ_OFFSET, "sq_offset"),
            (u64_at(32), cq, "cq_offset"),
            (u64_at(40), data, "data_offset"),
            (u64_at(48), s.data_size, "data_size"),
        ];
        if let Some((got, expected, field)) = want.iter().find(|(g, e, _)| g != e) {
            return Err(format!("ring header {field} is {got:#x}, expected {expected:#x}"));
        }
        Ok(Ring {
            map,
            ring_id: s.ring_id,
            entries: s.entries,
            data_size: s.data_size,
            sq_offset: ring::SQ_OFFSET as usize,
            cq_offset: cq as usize,
            data_offset: data as usize,
            submit: File::from(s.submit),
            complete: File::from(s.complete),
            socket: s.socket,
            connection: s.connection,
            sq_tail: 0,
            cq_head: 0,
            next_cookie: 1,
            timeout: None,
            broken: None,
        })
    }

    /// The daemon's name for the ring (RING_CLOSE, RING_FAILED).
    pub fn id(&self) -> u32 {
        self.ring_id
    }

    /// Slots of each queue.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Bytes of the data area: the most one entry, or one batch, can move.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    pub(crate) fn connection(&self) -> u64 {
        self.connection
    }

    /// Sets how long a ring call may wait for completions before failing with `ETIMEDOUT` (`None`, the default:
    /// until they come or the connection fails). A timed-out ring is unusable.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// A batch: entries added to it are submitted together by [`Batch::submit`].
    pub fn batch(&mut self) -> Batch<'_> {
        Batch { ring: self, entries: Vec::new(), data_used: 0 }
    }

    /// PING through the ring: a round trip to the daemon's poller.
    pub fn ping(&mut self) -> Result<(), Error> {
        self.call(Operation::Ping, Sqe { opcode: opcode::PING, ..Sqe::default() }, None).map(drop)
    }

    /// READ through the ring into `buf` (at most [`data_size`](Self::data_size) bytes).
    pub fn read(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = self.fits(Operation::Read, buf.len())?;
        self.call(Operation::Read, Sqe { opcode: opcode::READ, len, addr: gpa, ..Sqe::default() }, Some(buf)).map(drop)
    }

    /// WRITE through the ring.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), Error> {
        let len = self.fits(Operation::Write, data.len())?;
        self.put_data(0, data);
        self.call(Operation::Write, Sqe { opcode: opcode::WRITE, len, addr: gpa, ..Sqe::default() }, None).map(drop)
    }

    /// READV through the ring: the segments back to back into `buf`, whose length must be their sum.
    pub fn readv(&mut self, segments: &[Segment], buf: &mut [u8]) -> Result<(), Error> {
        check_total(Operation::Readv, segments, buf.len())?;
        let mut b = self.batch();
        b.readv(segments)?;
        let out = b.submit_one()?;
        buf.copy_from_slice(&out.data);
        Ok(())
    }

    /// WRITEV through the ring: `data` holds the segments' bytes back to back.
    pub fn writev(&mut self, segments: &[Segment], data: &[u8]) -> Result<(), Error> {
        let mut b = self.batch();
        b.writev(segments, data)?;
        b.submit_one().map(drop)
    }

    /// GPC_READ through the ring.
    pub fn gpc_read(&mut self, handle: GpcHandle, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        let len = self.fits(Operation::GpcRead, buf.len())?;
        let sqe = Sqe { opcode: opcode::GPC_READ, len, addr: handle.raw(), aux: u64::from(offset), ..Sqe::default() };
        self.call(Operation::GpcRead, sqe, Some(buf)).map(drop)
    }

    /// GPC_WRITE through the ring.
    pub fn gpc_write(&mut self, handle: GpcHandle, offset: u32, data: &[u8]) -> Result<(), Error> {
        let len = self.fits(Operation::GpcWrite, data.len())?;
        self.put_data(0, data);
        let sqe = Sqe { opcode: opcode::GPC_WRITE, len, addr: handle.raw(), aux: u64::from(offset), ..Sqe::default() };
        self.call(Operation::GpcWrite, sqe, None).map(drop)
    }

    /// ATOMIC through the ring; returns the old value.
    pub fn atomic(&mut self, gpa: u64, width: Width, op: AtomicOp) -> Result<u64, Error> {
        self.atomic_raw(gpa, op.raw(width))
    }

    /// GPC_ATOMIC through the ring; returns the old value.
    pub fn gpc_atomic(&mut self, handle: GpcHandle, offset: u32, width: Width, op: AtomicOp) -> Result<u64, Error> {
        self.gpc_atomic_raw(handle, offset, op.raw(width))
    }

    /// ATOMIC through the ring with the wire fields as given, unchecked (for testing the daemon's rules).
    pub fn atomic_raw(&mut self, gpa: u64, atomic: RawAtomic) -> Result<u64, Error> {
        self.call(Operation::Atomic, Sqe::atomic(opcode::ATOMIC, gpa, 0, atomic), None)
    }

    /// GPC_ATOMIC through the ring with the wire fields as given, unchecked.
    pub fn gpc_atomic_raw(&mut self, handle: GpcHandle, offset: u32, atomic: RawAtomic) -> Result<u64, Error> {
        self.call(Operation::GpcAtomic, Sqe::atomic(opcode::GPC_ATOMIC, handle.raw(), u64::from(offset), atomic), None)
    }

    /// `len` as an entry's length, if the data area holds it: the check [`Batch`] makes for its first entry.
    fn fits(&self, op: Operation, len: usize) -> Result<u32, Error> {
        let len32 = len32(op, len)?;
        if len as u64 > self.data_size {
            let why = format!("{len} more bytes do not fit in the ring's {}-byte data area", self.data_size);
            return Err(Error::client(op, errno::EMSGSIZE, why));
        }
        Ok(len32)
    }

    /// One entry, its bytes (if any) at offset 0 of the data area: submitted and waited for like a batch of one,
    /// without allocating. A read entry's bytes go straight from the data area into `out`, whose length is the
    /// entry's. Returns the completion's value.
    fn call(&mut self, op: Operation, sqe: Sqe, out: Option<&mut [u8]>) -> Result<u64, Error> {
        self.check_usable(Operation::Ring)?;
        let cookie = self.next_cookie;
        self.next_cookie = cookie.wrapping_add(1);
        let mut entry = sqe.encode();
        entry[0..8].copy_from_slice(&cookie.to_le_bytes());
        self.push_sqe(&entry);
        self.publish(Operation::Ring)?;
        let tail = self.wait_completions(Operation::Ring)?;
        let ready = tail.wrapping_sub(self.cq_head);
        if ready != 1 {
            let why = format!("cq_tail - cq_head = {ready} with 1 entry in flight");
            return Err(self.fail(Operation::Ring, errno::EPROTO, why));
        }
        let cqe = self.take_cqe();
        let got = crate::wire::le_u64(&cqe, 0);
        if got != cookie {
            return Err(self.fail(Operation::Ring, errno::EPROTO, format!("unexpected cookie {got}")));
        }
        let want = out.as_ref().map_or(0, |b| b.len());
        let result = match outcome(op, want, &cqe) {
            Ok(r) => r,
            Err(why) => return Err(self.fail(Operation::Ring, errno::EPROTO, why)),
        };
        if let (Ok(_), Some(buf)) = (&result, out) {
            self.copy_data(0, buf);
        }
        self.word(ring::CQ_HEAD).store(self.cq_head, Ordering::Release);
        result.map(|(value, _)| value)
    }

    fn check_usable(&self, op: Operation) -> Result<(), Error> {
        match &self.broken {
            None => Ok(()),
            Some((e, why)) => Err(Error::connection(op, *e, format!("the ring failed earlier: {why}"))),
        }
    }

    fn fail(&mut self, op: Operation, e: i32, why: impl Into<String>) -> Error {
        let why = why.into();
        self.broken.get_or_insert((e, why.clone()));
        Error::connection(op, e, why)
    }

    /// The index or flag word at header offset `at`.
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 64 == 0 && at < 4096);
        // SAFETY: `at` is one of the header's word offsets (< 4096, a multiple of 64), inside the mapping, which
        // lives as long as `self`; the mapping is page-aligned, so the word is 4-byte aligned as AtomicU32
        // requires. Both processes access these words only atomically (PROTOCOL.md 10.5).
        unsafe { &*self.map.ptr().add(at).cast::<AtomicU32>() }
    }

    /// Copies `src` into the data area at `offset`; the caller checked the bounds.
    fn put_data(&mut self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.data_size as usize);
        // SAFETY: the range is inside the data area (asserted), hence inside the mapping; no entry is in flight
        // while a batch is built or a one-call method prepares its entry (both borrow the ring mutably, and
        // submit and call wait for every completion), so the server does not access these bytes now.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.map.ptr().add(self.data_offset + offset), src.len()) };
    }

    /// `len` bytes of the data area from `offset`, in a new vector; the caller checked the bounds.
    fn get_data(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.copy_data(offset, &mut out);
        out
    }

    /// Fills `out` from the data area at `offset`; the caller checked the bounds.
    fn copy_data(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.data_size as usize);
        // SAFETY: the range is inside the data area (asserted), hence inside the mapping; its entry has
        // completed, so the server no longer writes it.
        unsafe { ptr::copy_nonoverlapping(self.map.ptr().add(self.data_offset + offset), out.as_mut_ptr(), out.len()) };
    }

    /// Writes one submission entry into the next SQ slot (not yet published).
    fn push_sqe(&mut self, sqe: &[u8; ring::SQE_SIZE]) {
        let slot = (self.sq_tail & (self.entries - 1)) as usize;
        let at = self.sq_offset + slot * ring::SQE_SIZE;
        debug_assert!(at + ring::SQE_SIZE <= self.cq_offset && self.cq_offset <= self.map.len());
        // SAFETY: slot < entries, so the 64 bytes lie in the SQ, inside the mapping. The caller keeps fewer than
        // `entries` entries in flight, so the server is not reading this slot (it reads [sq_head, sq_tail)).
        unsafe { ptr::copy_nonoverlapping(sqe.as_ptr(), self.map.ptr().add(at), ring::SQE_SIZE) };
        self.sq_tail = self.sq_tail.wrapping_add(1);
    }

    /// Copies the completion entry at the CQ head out of shared memory and moves the head past it (not yet
    /// published); the caller saw `cq_tail` (acquire) beyond it.
    fn take_cqe(&mut self) -> [u8; ring::CQE_SIZE] {
        let slot = (self.cq_head & (self.entries - 1)) as usize;
        let mut cqe = [0u8; ring::CQE_SIZE];
        // SAFETY: slot < entries, so the 32 bytes lie in the CQ, inside the mapping; the server filled this slot
        // before publishing cq_tail (acquired by the caller) and does not reuse it until cq_head moves.
        unsafe {
            ptr::copy_nonoverlapping(
                self.map.ptr().add(self.cq_offset + slot * ring::CQE_SIZE),
                cqe.as_mut_ptr(),
                ring::CQE_SIZE,
            )
        };
        self.cq_head = self.cq_head.wrapping_add(1);
        cqe
    }

    /// Publishes the SQ tail and rings the submit doorbell if the server's poller sleeps.
    fn publish(&mut self, op: Operation) -> Result<(), Error> {
        self.word(ring::SQ_TAIL).store(self.sq_tail, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.word(ring::SERVER_FLAGS).load(Ordering::Acquire) & ring::NEED_WAKEUP != 0 {
            if let Err(e) = (&self.submit).write_all(&1u64.to_ne_bytes()) {
                return Err(self.fail(op, e.raw_os_error().unwrap_or(errno::EIO), format!("submit doorbell: {e}")));
            }
        }
        Ok(())
    }

    /// Waits until the CQ holds at least one completion; returns the CQ tail.
    fn wait_completions(&mut self, op: Operation) -> Result<u32, Error> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let cq_tail = |r: &Ring| r.word(ring::CQ_TAIL).load(Ordering::Acquire);
        for _ in 0..SPINS {
            let tail = cq_tail(self);
            if tail != self.cq_head {
                return Ok(tail);
            }
            std::hint::spin_loop();
        }
        loop {
            self.word(ring::CLIENT_FLAGS).fetch_or(ring::WANT_WAKEUP, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let tail = cq_tail(self);
            if tail != self.cq_head {
                return Ok(tail);
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(self.fail(op, errno::ETIMEDOUT, "no completion within the timeout"));
                    }
                    Some(left)
                }
            };
            let ready = match sys::wait_two(self.complete.as_raw_fd(), self.socket.as_raw_fd(), left) {
                Ok(r) => r,
                Err(e) => return Err(self.fail(op, e.raw_os_error().unwrap_or(errno::EIO), format!("poll: {e}"))),
            };
            if ready.first {
                let mut count = [0u8; 8];
                if let Err(e) = (&self.complete).read_exact(&mut count) {
                    let why = format!("completion doorbell: {e}");
                    return Err(self.fail(op, e.raw_os_error().unwrap_or(errno::EIO), why));
                }
            } else if ready.second_gone && cq_tail(self) == self.cq_head {
                return Err(self.fail(op, errno::ECONNRESET, "the connection closed; the daemon stopped the ring"));
            }
        }
    }
}

/// A list of ring entries submitted together: one doorbell at most for all of them, completions reaped as they
/// come. Each `add`-style method returns the entry's index in the result of [`submit`](Self::submit).
///
/// Bytes to write are copied into the data area when the entry is added, and every entry's data (read or
/// written) must fit in the data area together: an entry that does not fit is refused with `EMSGSIZE`. A batch
/// may hold more entries than the ring has slots; they are submitted as slots free up.
#[derive(Debug)]
pub struct Batch<'r> {
    ring: &'r mut Ring,
    entries: Vec<Pending>,
    data_used: usize,
}

#[derive(Debug)]
struct Pending {
    op: Operation,
    sqe: [u8; ring::SQE_SIZE],
    /// Where the read bytes land in the data area, and how many.
    out: (usize, usize),
}

impl Batch<'_> {
    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reserves `len` bytes of the data area (8-byte aligned); returns the offset.
    fn alloc(&mut self, op: Operation, len: usize) -> Result<usize, Error> {
        let start = self.data_used.next_multiple_of(8);
        match start.checked_add(len) {
            Some(end) if end as u64 <= self.ring.data_size => {
                self.data_used = end;
                Ok(start)
            }
            _ => {
                let why = format!("{len} more bytes do not fit in the ring's {}-byte data area", self.ring.data_size);
                Err(Error::client(op, errno::EMSGSIZE, why))
            }
        }
    }

    fn push(&mut self, op: Operation, fields: Sqe, out: (usize, usize)) -> usize {
        self.entries.push(Pending { op, sqe: fields.encode(), out });
        self.entries.len() - 1
    }

    /// PING: completes with nothing transferred.
    pub fn ping(&mut self) -> usize {
        self.push(Operation::Ping, Sqe { opcode: opcode::PING, ..Sqe::default() }, (0, 0))
    }

    /// READ of `len` bytes at `gpa`; the result's `data` holds them.
    pub fn read(&mut self, gpa: u64, len: u32) -> Result<usize, Error> {
        let at = self.alloc(Operation::Read, len as usize)?;
        let sqe = Sqe { opcode: opcode::READ, len, addr: gpa, data: at as u64, ..Sqe::default() };
        Ok(self.push(Operation::Read, sqe, (at, len as usize)))
    }

    /// WRITE of `data` at `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<usize, Error> {
        let len = len32(Operation::Write, data.len())?;
        let at = self.alloc(Operation::Write, data.len())?;
        self.ring.put_data(at, data);
        let sqe = Sqe { opcode: opcode::WRITE, len, addr: gpa, data: at as u64, ..Sqe::default() };
        Ok(self.push(Operation::Write, sqe, (0, 0)))
    }

    fn segment_table(&mut self, op: Operation, segments: &[Segment]) -> Result<(u32, usize), Error> {
        let n = len32(op, segments.len())?;
        let mut table = Vec::with_capacity(segments.len() * 16);
        for s in segments {
            table.extend_from_slice(&s.gpa.to_le_bytes());
            table.extend_from_slice(&s.len.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
        }
        let at = self.alloc(op, table.len())?;
        self.ring.put_data(at, &table);
        Ok((n, at))
    }

    /// READV of `segments`; the result's `data` holds their bytes back to back.
    pub fn readv(&mut self, segments: &[Segment]) -> Result<usize, Error> {
        let (n, table) = self.segment_table(Operation::Readv, segments)?;
        let total: u64 = segments.iter().map(|s| u64::from(s.len)).sum();
        let total = usize::try_from(total).map_err(|_| Error::client(Operation::Readv, errno::EMSGSIZE, "too long"))?;
        let at = self.alloc(Operation::Readv, total)?;
        let sqe = Sqe { opcode: opcode::READV, len: n, data: at as u64, aux: table as u64, ..Sqe::default() };
        Ok(self.push(Operation::Readv, sqe, (at, total)))
    }

    /// WRITEV of `segments`, with `data` their bytes back to back (its length must be their sum).
    pub fn writev(&mut self, segments: &[Segment], data: &[u8]) -> Result<usize, Error> {
        check_total(Operation::Writev, segments, data.len())?;
        let (n, table) = self.segment_table(Operation::Writev, segments)?;
        let at = self.alloc(Operation::Writev, data.len())?;
        self.ring.put_data(at, data);
        let sqe = Sqe { opcode: opcode::WRITEV, len: n, data: at as u64, aux: table as u64, ..Sqe::default() };
        Ok(self.push(Operation::Writev, sqe, (0, 0)))
    }

    /// GPC_READ of `len` bytes at `offset` in the GPC's window.
    pub fn gpc_read(&mut self, handle: GpcHandle, offset: u32, len: u32) -> Result<usize, Error> {
        let at = self.alloc(Operation::GpcRead, len as usize)?;
        let sqe = Sqe {
            opcode: opcode::GPC_READ,
            len,
            addr: handle.raw(),
            data: at as u64,
            aux: u64::from(offset),
            ..Sqe::default()
        };
        Ok(self.push(Operation::GpcRead, sqe, (at, len as usize)))
    }

    /// GPC_WRITE of `data` at `offset` in the GPC's window.
    pub fn gpc_write(&mut self, handle: GpcHandle, offset: u32, data: &[u8]) -> Result<usize, Error> {
        let len = len32(Operation::GpcWrite, data.len())?;
        let at = self.alloc(Operation::GpcWrite, data.len())?;
        self.ring.put_data(at, data);
        let sqe = Sqe {
            opcode: opcode::GPC_WRITE,
            len,
            addr: handle.raw(),
            data: at as u64,
            aux: u64::from(offset),
            ..Sqe::default()
        };
        Ok(self.push(Operation::GpcWrite, sqe, (0, 0)))
    }

    /// ATOMIC; the result's `value` is the old value.
    pub fn atomic(&mut self, gpa: u64, width: Width, op: AtomicOp) -> usize {
        self.atomic_raw(gpa, op.raw(width))
    }

    /// ATOMIC with the wire fields as given, unchecked.
    pub fn atomic_raw(&mut self, gpa: u64, a: RawAtomic) -> usize {
        self.push(Operation::Atomic, Sqe::atomic(opcode::ATOMIC, gpa, 0, a), (0, 0))
    }

    /// GPC_ATOMIC at `offset` in the GPC's window; the result's `value` is the old value.
    pub fn gpc_atomic(&mut self, handle: GpcHandle, offset: u32, width: Width, op: AtomicOp) -> usize {
        self.gpc_atomic_raw(handle, offset, op.raw(width))
    }

    /// GPC_ATOMIC with the wire fields as given, unchecked.
    pub fn gpc_atomic_raw(&mut self, handle: GpcHandle, offset: u32, a: RawAtomic) -> usize {
        self.push(Operation::GpcAtomic, Sqe::atomic(opcode::GPC_ATOMIC, handle.raw(), u64::from(offset), a), (0, 0))
    }

    fn submit_one(self) -> Result<Output, Error> {
        let operation = self.entries.first().map_or(Operation::Ring, |entry| entry.op);
        let mut results = self.submit()?;
        results.pop().unwrap_or_else(|| {
            Err(Error::connection(operation, errno::EPROTO, "an empty batch submitted as one entry"))
        })
    }

    /// Submits every entry and waits for all their completions. The outer error is the ring's (the connection
    /// failed, the daemon broke the ring protocol, a timeout): the ring is unusable then. The inner results are
    /// the entries', in the order they were added, each with the errors and partial progress its socket request
    /// would have.
    pub fn submit(self) -> Result<Vec<Result<Output, Error>>, Error> {
        let Batch { ring, entries, .. } = self;
        ring.check_usable(Operation::Ring)?;
        let n = entries.len();
        let base = ring.next_cookie;
        ring.next_cookie = ring.next_cookie.wrapping_add(n as u64);
        let mut results: Vec<Option<Result<Output, Error>>> = (0..n).map(|_| None).collect();
        let (mut sent, mut done) = (0usize, 0usize);
        let capacity = ring.entries as usize;
        while done < n {
            if sent < n && sent - done < capacity {
                while sent < n && sent - done < capacity {
                    let mut sqe = entries[sent].sqe;
                    sqe[0..8].copy_from_slice(&base.wrapping_add(sent as u64).to_le_bytes());
                    ring.push_sqe(&sqe);
                    sent += 1;
                }
                ring.publish(Operation::Ring)?;
            }
            let tail = ring.wait_completions(Operation::Ring)?;
            let ready = tail.wrapping_sub(ring.cq_head);
            if ready as usize > sent - done {
                let why = format!("cq_tail - cq_head = {ready} with {} entries in flight", sent - done);
                return Err(ring.fail(Operation::Ring, errno::EPROTO, why));
            }
            for _ in 0..ready {
                let cqe = ring.take_cqe();
                let cookie = crate::wire::le_u64(&cqe, 0);
                let index = cookie.wrapping_sub(base) as usize;
                if index >= sent || results[index].is_some() {
                    return Err(ring.fail(Operation::Ring, errno::EPROTO, format!("unexpected cookie {cookie}")));
                }
                let result = match completion(ring, &entries[index], &cqe) {
                    Ok(r) => r,
                    Err(why) => return Err(ring.fail(Operation::Ring, errno::EPROTO, why)),
                };
                results[index] = Some(result);
                done += 1;
            }
            ring.word(ring::CQ_HEAD).store(ring.cq_head, Ordering::Release);
        }
        // The loop ends only once every entry has its completion (done == n); a gap would be this client's bug.
        results
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ring.fail(Operation::Ring, errno::EPROTO, "an entry without its completion"))
    }
}

/// The result of the completion `cqe` of `entry`; `Err` if the completion breaks the protocol.
fn completion(ring: &Ring, entry: &Pending, cqe: &[u8; ring::CQE_SIZE]) -> Result<Result<Output, Error>, String> {
    let (at, want) = entry.out;
    Ok(outcome(entry.op, want, cqe)?.map(|(value, len)| {
        let data = if want > 0 { ring.get_data(at, want) } else { Vec::new() };
        Output { value, len, data }
    }))
}

/// The completion `cqe` of an entry of `op` that reads `want` bytes: its value and length, or the entry's error;
/// `Err` if the completion breaks the protocol.
fn outcome(op: Operation, want: usize, cqe: &[u8; ring::CQE_SIZE]) -> Result<Result<(u64, u32), Error>, String> {
    let status = crate::wire::le_u32(cqe, 8) as i32;
    let len = crate::wire::le_u32(cqe, 12);
    let value = crate::wire::le_u64(cqe, 16);
    let segment = crate::wire::le_u32(cqe, 24);
    let segment_bytes = crate::wire::le_u32(cqe, 28);
    if status == 0 {
        if want > 0 && len as usize != want {
            return Err(format!("{op} completed with {len} bytes, expected {want}"));
        }
        return Ok(Ok((value, len)));
    }
    if !(-4095..0).contains(&status) {
        return Err(format!("completion status {status}"));
    }
    let e = Error::daemon(op, -status);
    let partial = value != 0 || segment != 0 || segment_bytes != 0;
    Ok(Err(match op {
        Operation::Read | Operation::Write if partial => e.with_bytes(value),
        Operation::Readv | Operation::Writev if partial => {
            e.with_vector(VectorProgress { bytes_completed: value, segment, segment_bytes })
        }
        _ => e,
    }))
}

/// The fields of a submission entry (PROTOCOL.md 10.2); the cookie is set at submission.
#[derive(Default)]
struct Sqe {
    opcode: u16,
    len: u32,
    addr: u64,
    data: u64,
    aux: u64,
    operand: u64,
    expected: u64,
    op: u8,
    width: u8,
}

impl Sqe {
    /// ATOMIC (`addr` the gpa) or GPC_ATOMIC (`addr` the handle, `aux` the offset) with the wire fields as given.
    fn atomic(opcode: u16, addr: u64, aux: u64, a: RawAtomic) -> Sqe {
        Sqe { opcode, addr, aux, operand: a.operand, expected: a.expected, op: a.op, width: a.width, ..Sqe::default() }
    }

    fn encode(&self) -> [u8; ring::SQE_SIZE] {
        let mut b = [0u8; ring::SQE_SIZE];
        b[8..10].copy_from_slice(&self.opcode.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        b[24..32].copy_from_slice(&self.data.to_le_bytes());
        b[32..40].copy_from_slice(&self.aux.to_le_bytes());
        b[40..48].copy_from_slice(&self.operand.to_le_bytes());
        b[48..56].copy_from_slice(&self.expected.to_le_bytes());
        b[56] = self.op;
        b[57] = self.width;
        b
    }
}

fn len32(op: Operation, n: usize) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::client(op, errno::EMSGSIZE, format!("{n} bytes cannot be framed")))
}

fn check_total(op: Operation, segments: &[Segment], n: usize) -> Result<(), Error> {
    let total: u64 = segments.iter().map(|s| u64::from(s.len)).sum();
    if total != n as u64 {
        return Err(Error::client(op, errno::EINVAL, format!("the buffer has {n} bytes, the segments {total}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Sqe;

    #[test]
    fn submission_entry_layout_is_gmem_wire_h() {
        // struct gmem_ring_sqe: cookie 0, opcode 8, flags 10, len 12, addr 16, data 24, aux 32, operand 40,
        // expected 48, op 56, width 57, reserved 58..64.
        let sqe = Sqe {
            opcode: 0x0102,
            len: 0x0304_0506,
            addr: 0x1111_1111_1111_1111,
            data: 0x2222_2222_2222_2222,
            aux: 0x3333_3333_3333_3333,
            operand: 0x4444_4444_4444_4444,
            expected: 0x5555_5555_5555_5555,
            op: 0x66,
            width: 0x77,
        }
        .encode();
        assert_eq!(&sqe[0..8], &[0; 8], "the cookie is set at submission");
        assert_eq!(&sqe[8..12], &[0x02, 0x01, 0, 0], "opcode, then flags 0");
        assert_eq!(&sqe[12..16], &[0x06, 0x05, 0x04, 0x03]);
        for (k, byte) in [(16, 0x11), (24, 0x22), (32, 0x33), (40, 0x44), (48, 0x55)] {
            assert_eq!(&sqe[k..k + 8], &[byte; 8], "u64 at {k}");
        }
        assert_eq!(&sqe[56..], &[0x66, 0x77, 0, 0, 0, 0, 0, 0]);
    }
}
