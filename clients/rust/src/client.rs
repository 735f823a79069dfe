//! The connection: one Unix socket to gmemd, one request at a time, events queued between replies.

use std::collections::VecDeque;
use std::env;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Operation};
use crate::ring::{Ring, Setup};
use crate::sys;
use crate::types::{AtomicOp, Attributes, Event, GpcHandle, Info, PageState, Segment, Stats, VectorProgress, Width};
use crate::wire::{self, FLAG_EVENT, FLAG_REPLY, HEADER_SIZE, Header, RawAtomic, Request, errno, opcode};

/// The features this client asks for in HELLO.
const FEATURES: u32 = wire::feature::EVENTS | wire::feature::DEVICE_OPS;
/// The receive buffer's first size; it grows to the largest frame seen.
const RX_INITIAL: usize = 64 * 1024;

/// The socket path gmemd and gmemctl use when none is given: `$GMEMD_SOCKET`; else
/// `$XDG_RUNTIME_DIR/gmemd.sock`; else `/run/gmemd/gmemd.sock` for uid 0; else `./gmemd.sock`.
/// Empty variables count as unset.
pub fn default_socket_path() -> PathBuf {
    let var = |name| env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("GMEMD_SOCKET") {
        return PathBuf::from(p);
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("gmemd.sock");
    }
    if sys::uid() == 0 { PathBuf::from("/run/gmemd/gmemd.sock") } else { PathBuf::from("./gmemd.sock") }
}

/// How long to wait for bytes.
#[derive(Clone, Copy)]
enum Wait {
    /// Until they come (or the socket's timeout passes).
    Block,
    /// Not at all.
    Never,
    /// Until this instant.
    Until(Instant),
}

/// A connection to gmemd.
///
/// Every method sends one request and waits for its reply; the client never splits an operation into several
/// requests, so each method's errors are exactly the daemon's rules for that request (PROTOCOL.md section 4),
/// plus the few the client decides before sending (see [`Origin`](crate::Origin)).
///
/// # Threads
///
/// `Client` is `Send` and `Sync`, and every operation takes `&mut self`: one thread uses a connection at a
/// time. To share one, put it in a `Mutex`; for parallel traffic, open one connection per thread (connections are
/// cheap, but GPC handles belong to the connection that activated them).
///
/// # Events
///
/// The connection asks for EVENTS. An event frame that arrives while the client waits for a reply is queued; an
/// event the daemon caused while serving a request (a GPC invalidated by this connection's own SET_ATTRIBUTES
/// or DISCARD) precedes that request's reply, so it is queued by the time the method returns. Take events with
/// [`poll_event`](Self::poll_event) (never blocks), [`next_event`](Self::next_event) (blocks) or
/// [`next_event_timeout`](Self::next_event_timeout). Events of other connections' requests arrive at any time:
/// to wait for them in an event loop, poll [`as_raw_fd`](AsRawFd::as_raw_fd) for readability, but first drain
/// the queue with `poll_event` until it returns `None`, because queued events do not make the socket readable.
/// The queue is unbounded; a client that never takes events keeps them all.
///
/// # Failures
///
/// When the daemon closes the connection (it exited, was killed, or refused the client), the pending call
/// fails with `ECONNRESET` (end of stream or reset while receiving) or `EPIPE` (while sending); a call never
/// hangs on a dead daemon and never panics. After such a [connection error](Error::is_fatal) every further call
/// fails at once with the same errno.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    info: Info,
    next_id: u32,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    tx: Vec<u8>,
    events: VecDeque<Event>,
    broken: Option<(i32, String)>,
    /// Descriptors received with the frames being read; only a RING_SETUP or MAP_REGION reply keeps them.
    rx_fds: Vec<OwnedFd>,
    /// Distinguishes this connection's rings from other connections'.
    connection: u64,
}

impl Client {
    /// Connects to the daemon's socket at `path` and completes HELLO, asking for EVENTS and DEVICE_OPS.
    ///
    /// Errors: the `connect(2)` errno (`ENOENT`, `ECONNREFUSED`, `EACCES`, ...) with operation `Connect`;
    /// HELLO's refusals with operation `Hello`: `EACCES` (not admitted), `EBUSY` (too many connections),
    /// `EPROTONOSUPPORT`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .map_err(|e| Error::connection(Operation::Connect, io_errno(&e), format!("{}: {e}", path.display())))?;
        Client::from_stream(stream)
    }

    /// Connects to [`default_socket_path`] and completes HELLO.
    pub fn connect_default() -> Result<Client, Error> {
        Client::connect(default_socket_path())
    }

    /// Completes HELLO on an already connected stream (for example one inherited from a parent process).
    ///
    /// The stream is switched to blocking mode; read and write timeouts already set on it are kept and act as
    /// [`set_timeout`](Self::set_timeout) does.
    pub fn from_stream(stream: UnixStream) -> Result<Client, Error> {
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::connection(Operation::Connect, io_errno(&e), e.to_string()))?;
        let mut client = Client {
            stream,
            // Until HELLO completes the frame bound is the protocol's floor, which holds every HELLO reply.
            info: Info {
                version: 0,
                features: 0,
                page_size: 0,
                folio_size: 0,
                region_size: 0,
                region_id: 0,
                max_payload: wire::MIN_MAX_PAYLOAD,
                max_gpcs: 0,
                region_flags: 0,
                max_segments: 0,
            },
            next_id: 1,
            rx: Vec::new(),
            rx_start: 0,
            rx_end: 0,
            tx: Vec::new(),
            events: VecDeque::new(),
            broken: None,
            rx_fds: Vec::new(),
            connection: {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        };
        let hello = Request::Hello { version: wire::PROTOCOL_VERSION, features: FEATURES };
        let info = client.call(Operation::Hello, &hello, Info::decode)?;
        if info.version != wire::PROTOCOL_VERSION || info.max_payload < wire::MIN_MAX_PAYLOAD {
            return Err(client.fail(Operation::Hello, errno::EPROTO, "HELLO reply out of range"));
        }
        client.info = info;
        Ok(client)
    }

    /// The fields of the HELLO reply: page size, region size, limits, granted features.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Sets how long a call may wait for the daemon to accept or send bytes before failing with `ETIMEDOUT`
    /// (`None`, the default: forever). A timed-out connection is unusable: the reply may still come.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let set = |s: &UnixStream| {
            s.set_read_timeout(timeout)?;
            s.set_write_timeout(timeout)
        };
        set(&self.stream).map_err(|e| Error::client(Operation::Configure, io_errno(&e), e.to_string()))
    }

    /// PING with an empty payload: a round trip to the daemon.
    pub fn ping(&mut self) -> Result<(), Error> {
        self.call(Operation::Ping, &Request::Ping { payload: &[] }, |p| p.is_empty().then_some(()))
    }

    /// PING with `payload`; returns the daemon's echo (checked to equal `payload`).
    pub fn echo(&mut self, payload: &[u8]) -> Result<Vec<u8>, Error> {
        self.call(Operation::Ping, &Request::Ping { payload }, |p| (p == payload).then(|| p.to_vec()))
    }

    /// READ: fills `buf` with guest memory from `gpa` on. `buf` may be empty (then `gpa` must lie inside the
    /// region) and at most `max_payload` bytes (else `EMSGSIZE`).
    ///
    /// On a failure after partial progress, [`Error::bytes_completed`] tells how many bytes the daemon read;
    /// `buf` is left unchanged (the reply carries no data).
    pub fn read(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len = len32(Operation::Read, buf.len())?;
        self.call(Operation::Read, &Request::Read { gpa, len }, |p| copy_exact(p, buf))
    }

    /// WRITE: writes `data` to guest memory at `gpa`. At most `max_payload - 16` bytes: longer data cannot be
    /// framed and fails with `EMSGSIZE` without being sent.
    ///
    /// On a failure after partial progress, [`Error::bytes_completed`] tells how many bytes were written.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), Error> {
        self.call(Operation::Write, &Request::Write { gpa, data }, empty)
    }

    /// READV: reads every segment into `buf`, back to back in table order. `buf.len()` must be the sum of the
    /// segments' lengths (else `EINVAL`, not sent).
    ///
    /// On a failure after partial progress, [`Error::vector_progress`] tells how far it got; `buf` is left
    /// unchanged.
    pub fn readv(&mut self, segments: &[Segment], buf: &mut [u8]) -> Result<(), Error> {
        check_total(Operation::Readv, segments, buf.len())?;
        self.call(Operation::Readv, &Request::Readv { segments }, |p| copy_exact(p, buf))
    }

    /// WRITEV: writes `data`, every segment's bytes back to back in table order. `data.len()` must be the sum
    /// of the segments' lengths (else `EINVAL`, not sent). Later segments win where segments overlap.
    ///
    /// On a failure after partial progress, [`Error::vector_progress`] tells how far it got.
    pub fn writev(&mut self, segments: &[Segment], data: &[u8]) -> Result<(), Error> {
        check_total(Operation::Writev, segments, data.len())?;
        self.call(Operation::Writev, &Request::Writev { segments, data }, empty)
    }

    /// GPC_ACTIVATE: a guest page cache over `[gpa, gpa + len)`, which must lie within one page.
    pub fn gpc_activate(&mut self, gpa: u64, len: u32) -> Result<GpcHandle, Error> {
        self.call(Operation::GpcActivate, &Request::GpcActivate { gpa, len }, |p| {
            wire::decode_u64(p).filter(|&h| h != 0).map(GpcHandle::from_raw)
        })
    }

    /// GPC_DEACTIVATE: releases the GPC, valid or invalidated.
    pub fn gpc_deactivate(&mut self, handle: GpcHandle) -> Result<(), Error> {
        self.call(Operation::GpcDeactivate, &Request::GpcDeactivate { handle: handle.raw() }, empty)
    }

    /// GPC_READ: fills `buf` from `offset` bytes into the GPC's window.
    pub fn gpc_read(&mut self, handle: GpcHandle, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        let len = len32(Operation::GpcRead, buf.len())?;
        let req = Request::GpcRead { handle: handle.raw(), offset, len };
        self.call(Operation::GpcRead, &req, |p| copy_exact(p, buf))
    }

    /// GPC_WRITE: writes `data` at `offset` bytes into the GPC's window.
    pub fn gpc_write(&mut self, handle: GpcHandle, offset: u32, data: &[u8]) -> Result<(), Error> {
        let req = Request::GpcWrite { handle: handle.raw(), offset, data };
        self.call(Operation::GpcWrite, &req, empty)
    }

    /// GPC_REFRESH: re-points the GPC at `[gpa, gpa + len)` and makes it valid again.
    pub fn gpc_refresh(&mut self, handle: GpcHandle, gpa: u64, len: u32) -> Result<(), Error> {
        let req = Request::GpcRefresh { handle: handle.raw(), gpa, len };
        self.call(Operation::GpcRefresh, &req, empty)
    }

    /// GPC_ATOMIC: `op` on the `width`-byte value at `offset` into the GPC's window; returns the old value
    /// (see [`AtomicOp`]).
    pub fn gpc_atomic(&mut self, handle: GpcHandle, offset: u32, width: Width, op: AtomicOp) -> Result<u64, Error> {
        self.gpc_atomic_raw(handle, offset, op.raw(width))
    }

    /// GPC_ATOMIC with the wire fields as given, unchecked (for testing the daemon's rules).
    pub fn gpc_atomic_raw(&mut self, handle: GpcHandle, offset: u32, atomic: RawAtomic) -> Result<u64, Error> {
        let req = Request::GpcAtomic { handle: handle.raw(), offset, atomic };
        self.call(Operation::GpcAtomic, &req, wire::decode_u64)
    }

    /// ATOMIC: `op` on the naturally aligned `width`-byte value at `gpa`; returns the old value (see
    /// [`AtomicOp`]).
    pub fn atomic(&mut self, gpa: u64, width: Width, op: AtomicOp) -> Result<u64, Error> {
        self.atomic_raw(gpa, op.raw(width))
    }

    /// ATOMIC with the wire fields as given, unchecked (for testing the daemon's rules).
    pub fn atomic_raw(&mut self, gpa: u64, atomic: RawAtomic) -> Result<u64, Error> {
        self.call(Operation::Atomic, &Request::Atomic { gpa, atomic }, wire::decode_u64)
    }

    /// SET_ATTRIBUTES: makes every page of the page-aligned range private or shared. Every GPC (of any
    /// connection) on a page whose attribute changed is invalidated.
    pub fn set_attributes(&mut self, gpa: u64, size: u64, attributes: Attributes) -> Result<(), Error> {
        let req = Request::SetAttributes { gpa, size, attributes: attributes.raw() };
        self.call(Operation::SetAttributes, &req, empty)
    }

    /// DISCARD: later reads of the page-aligned range return zeros. Every GPC on a discarded page is
    /// invalidated.
    pub fn discard(&mut self, gpa: u64, size: u64) -> Result<(), Error> {
        self.call(Operation::Discard, &Request::Discard { gpa, size }, empty)
    }

    /// STATS: the daemon's counters.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        self.call(Operation::Stats, &Request::Stats, Stats::decode)
    }

    /// PAGE_STATE: reference count and state of `npages` pages from the page-aligned `gpa` on.
    pub fn page_state(&mut self, gpa: u64, npages: u32) -> Result<Vec<PageState>, Error> {
        self.call(Operation::PageState, &Request::PageState { gpa, npages }, |p| {
            PageState::decode_all(p).filter(|v| v.len() == npages as usize)
        })
    }

    /// RING_SETUP: a shared-memory ring with `entries` slots per queue (a power of two, 1 to 4096) and a data
    /// area of `data_size` bytes (a multiple of 4096, 4096 to 64 MiB), mapped into this process. See [`Ring`].
    ///
    /// Errors: `EINVAL` (sizes outside those rules), `ENOSPC` (the connection has `--max-rings` rings),
    /// `ENOMEM`, `EOPNOTSUPP` (a daemon without rings); `EPROTO` if the reply, its descriptors or the ring's
    /// header break the protocol.
    pub fn ring(&mut self, entries: u32, data_size: usize) -> Result<Ring, Error> {
        let op = Operation::RingSetup;
        let data_size = data_size as u64;
        let reply = self.call(op, &Request::RingSetup { entries, data_size }, |p| {
            (p.len() == 24).then(|| (wire::le_u32(p, 0), wire::le_u32(p, 4), wire::le_u64(p, 8), wire::le_u64(p, 16)))
        });
        let fds = std::mem::take(&mut self.rx_fds);
        let (ring_id, got_entries, got_size, mmap_size) = reply?;
        let Ok::<[OwnedFd; 3], _>([memfd, submit, complete]) = fds.try_into() else {
            return Err(self.fail(op, errno::EPROTO, "RING_SETUP reply without exactly three descriptors"));
        };
        if (got_entries, got_size) != (entries, data_size) {
            return Err(self.fail(op, errno::EPROTO, "RING_SETUP reply with other sizes than requested"));
        }
        let socket = self.stream.try_clone().map_err(|e| Error::client(op, io_errno(&e), format!("dup: {e}")))?;
        let setup = Setup {
            ring_id,
            entries,
            data_size,
            mmap_size,
            memfd,
            submit,
            complete,
            socket: socket.into(),
            connection: self.connection,
        };
        match Ring::map(setup) {
            Ok(ring) => Ok(ring),
            Err(why) => {
                let _ = self.call(Operation::RingClose, &Request::RingClose { ring_id }, empty);
                Err(self.fail(op, errno::EPROTO, why))
            }
        }
    }

    /// MAP_REGION: the guest memfd itself, and the bytes to map from offset 0 (`MAP_SHARED`), for the one
    /// process that stands in for KVM (a vCPU process registering guest memory as a memslot). That process
    /// sees all guest memory; no other client should ask.
    ///
    /// Errors: `EPERM` (gmemd names this peer with neither `--allow-map-uid` nor `--allow-map-group`, or the
    /// connection is read-only; [`Info::may_map`](crate::Info::may_map) is then false), `EOPNOTSUPP` (secretmem
    /// backing, which KVM cannot use); `EPROTO` if the reply or its descriptor break the protocol.
    pub fn map_region(&mut self) -> Result<(OwnedFd, u64), Error> {
        let op = Operation::MapRegion;
        let reply = self.call(op, &Request::MapRegion, |p| (p.len() == 16).then(|| wire::le_u64(p, 0)));
        let fds = std::mem::take(&mut self.rx_fds);
        let size = reply?;
        let Ok::<[OwnedFd; 1], _>([memfd]) = fds.try_into() else {
            return Err(self.fail(op, errno::EPROTO, "MAP_REGION reply without exactly one descriptor"));
        };
        Ok((memfd, size))
    }

    /// RING_CLOSE: the daemon stops serving `ring`, releases what it held, and the ring is unmapped here.
    /// `EINVAL` (not sent) for a ring of another connection.
    pub fn ring_close(&mut self, ring: Ring) -> Result<(), Error> {
        if ring.connection() != self.connection {
            return Err(Error::client(Operation::RingClose, errno::EINVAL, "the ring belongs to another connection"));
        }
        self.call(Operation::RingClose, &Request::RingClose { ring_id: ring.id() }, empty)
    }

    /// RING_CLOSE by ring id, unchecked (for testing the daemon's rules; a `Ring` of that id stays mapped).
    pub fn ring_close_id(&mut self, ring_id: u32) -> Result<(), Error> {
        self.call(Operation::RingClose, &Request::RingClose { ring_id }, empty)
    }

    /// Takes the oldest queued event, or reads the events already waiting on the socket, without blocking.
    /// `Ok(None)`: no event now.
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        self.event(Wait::Never)
    }

    /// Takes the oldest queued event, waiting for one if the queue is empty.
    pub fn next_event(&mut self) -> Result<Event, Error> {
        match self.event(Wait::Block)? {
            Some(e) => Ok(e),
            None => Err(self.fail(Operation::Event, errno::ETIMEDOUT, "no event within the socket timeout")),
        }
    }

    /// Takes the oldest queued event, waiting at most `timeout` for one. `Ok(None)`: none came in time.
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.event(Wait::Until(Instant::now() + timeout))
    }

    /// Events queued and not yet taken.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    fn event(&mut self, wait: Wait) -> Result<Option<Event>, Error> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        self.check_usable(Operation::Event)?;
        loop {
            let Some(h) = self.fill_frame(Operation::Event, wait)? else {
                return Ok(None);
            };
            if h.flags != FLAG_EVENT {
                return Err(self.fail(Operation::Event, errno::EPROTO, "a reply with no request outstanding"));
            }
            self.take_event(&h)?;
            self.rx_fds.clear();
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
        }
    }

    fn check_usable(&self, op: Operation) -> Result<(), Error> {
        match &self.broken {
            None => Ok(()),
            Some((e, why)) => Err(Error::connection(op, *e, format!("the connection failed earlier: {why}"))),
        }
    }

    /// Marks the connection failed and returns the error.
    fn fail(&mut self, op: Operation, e: i32, why: impl Into<String>) -> Error {
        let why = why.into();
        if self.broken.is_none() {
            self.broken = Some((e, why.clone()));
            // Best effort: the socket is useless now, and closing it releases the daemon's side.
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        Error::connection(op, e, why)
    }

    /// Sends `req`, waits for its reply, queues the events before it, and decodes a success payload with
    /// `decode` (`None`: a malformed reply, `EPROTO`).
    fn call<T>(
        &mut self,
        op: Operation,
        req: &Request<'_>,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<T, Error> {
        self.check_usable(op)?;
        let max = self.info.max_payload as usize;
        if req.payload_len() > max {
            let why = format!("a {}-byte payload exceeds max_payload {max}", req.payload_len());
            return Err(Error::client(op, errno::EMSGSIZE, why));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.rx_fds.clear();
        let mut tx = std::mem::take(&mut self.tx);
        tx.clear();
        if req.encode_into(id, &mut tx).is_err() {
            // Unreachable after the max_payload check above, but reported, never a panic.
            return Err(Error::client(op, errno::EMSGSIZE, "a frame longer than u32::MAX bytes"));
        }
        let sent = self.send_all(op, &tx);
        if tx.capacity() <= RX_INITIAL {
            self.tx = tx;
        }
        sent?;
        loop {
            let Some(h) = self.fill_frame(op, Wait::Block)? else {
                // A blocking wait returns a frame or an error; anything else is this client's bug, reported.
                return Err(self.fail(op, errno::EPROTO, "a blocking wait returned no frame"));
            };
            if h.flags == FLAG_EVENT {
                self.take_event(&h)?;
                continue;
            }
            if h.flags != FLAG_REPLY || h.id != id || h.opcode != req.opcode() {
                let why = format!(
                    "expected the reply to opcode {} id {id}, got flags {} opcode {} id {}",
                    req.opcode(),
                    h.flags,
                    h.opcode,
                    h.id
                );
                return Err(self.fail(op, errno::EPROTO, why));
            }
            let start = self.rx_start + HEADER_SIZE;
            let payload = &self.rx[start..self.rx_start + h.length as usize];
            let result = if h.status == 0 {
                decode(payload).ok_or(None)
            } else if (-4095..0).contains(&h.status) {
                Err(error_reply(op, req.opcode(), -h.status, payload))
            } else {
                Err(None)
            };
            self.consume(h.length as usize);
            if !matches!(h.opcode, opcode::RING_SETUP | opcode::MAP_REGION) || h.status != 0 {
                self.rx_fds.clear(); // descriptors with any other frame are closed
            }
            return match result {
                Ok(v) => Ok(v),
                Err(Some(e)) => Err(e),
                Err(None) => {
                    let why = format!("malformed reply (status {}, {}-byte payload)", h.status, h.length - 16);
                    Err(self.fail(op, errno::EPROTO, why))
                }
            };
        }
    }

    fn send_all(&mut self, op: Operation, mut buf: &[u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            match sys::send_nosignal(self.stream.as_raw_fd(), buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(self.fail(op, errno::ETIMEDOUT, "the daemon accepted no bytes within the timeout"));
                }
                Err(e) => return Err(self.fail(op, io_errno(&e), format!("send: {e}"))),
            }
        }
        Ok(())
    }

    /// Decodes the buffered event frame `h`, queues it and consumes it.
    fn take_event(&mut self, h: &Header) -> Result<(), Error> {
        let start = self.rx_start + HEADER_SIZE;
        let payload = &self.rx[start..self.rx_start + h.length as usize];
        let event = if h.id == 0 && h.status == 0 { Event::decode(h.opcode, payload) } else { None };
        self.consume(h.length as usize);
        match event {
            Some(e) => {
                self.events.push_back(e);
                Ok(())
            }
            None => Err(self.fail(Operation::Event, errno::EPROTO, format!("malformed event {:#x}", h.opcode))),
        }
    }

    fn consume(&mut self, n: usize) {
        self.rx_start += n;
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        }
    }

    /// Buffers one whole frame at `rx[rx_start..]` and returns its header; `None` when `wait` ran out first.
    fn fill_frame(&mut self, op: Operation, wait: Wait) -> Result<Option<Header>, Error> {
        loop {
            let avail = self.rx_end - self.rx_start;
            let need = match Header::decode(&self.rx[self.rx_start..self.rx_end]) {
                None => HEADER_SIZE,
                Some(h) => {
                    let bound = HEADER_SIZE + self.info.max_payload as usize;
                    if (h.length as usize) < HEADER_SIZE || h.length as usize > bound {
                        let why = format!("frame length {} outside 16..={bound}", h.length);
                        return Err(self.fail(op, errno::EPROTO, why));
                    }
                    if avail >= h.length as usize {
                        return Ok(Some(h));
                    }
                    h.length as usize
                }
            };
            // Room for at least the rest of this frame.
            if self.rx_start + need > self.rx.len() {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end = avail;
                self.rx_start = 0;
                if need > self.rx.len() {
                    self.rx.resize(need.max(RX_INITIAL), 0);
                }
            }
            let fd = self.stream.as_raw_fd();
            let nonblocking = match wait {
                Wait::Block => false,
                Wait::Never => true,
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match sys::wait_readable(fd, Some(left)) {
                        Ok(true) => true,
                        Ok(false) if left.is_zero() => return Ok(None),
                        Ok(false) => continue,
                        Err(e) => return Err(self.fail(op, io_errno(&e), format!("poll: {e}"))),
                    }
                }
            };
            match sys::recv_with_fds(fd, &mut self.rx[self.rx_end..], nonblocking, &mut self.rx_fds) {
                Ok(0) => return Err(self.fail(op, errno::ECONNRESET, "the daemon closed the connection")),
                Ok(n) => self.rx_end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !nonblocking {
                        return Err(self.fail(op, errno::ETIMEDOUT, "no reply within the timeout"));
                    }
                    if let Wait::Never = wait {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(self.fail(op, io_errno(&e), format!("recv: {e}"))),
            }
        }
    }
}

impl AsRawFd for Client {
    /// The socket: readable when event (or other) bytes wait in it. See [Events](Client#events).
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// The error of a failed reply with status `-e` and `payload`; `None` if the payload breaks the protocol.
fn error_reply(op: Operation, opcode: u16, e: i32, payload: &[u8]) -> Option<Error> {
    let err = Error::daemon(op, e);
    match (opcode, payload.len()) {
        (_, 0) => Some(err),
        (opcode::READ | opcode::WRITE, 8) => wire::decode_u64(payload).map(|n| err.with_bytes(n)),
        (opcode::READV | opcode::WRITEV, 16) => VectorProgress::decode(payload).map(|p| err.with_vector(p)),
        (opcode::HELLO, 4) if e == errno::EPROTONOSUPPORT => Some(err.with_version(wire::le_u32(payload, 0))),
        _ => None,
    }
}

fn empty(p: &[u8]) -> Option<()> {
    p.is_empty().then_some(())
}

fn copy_exact(p: &[u8], buf: &mut [u8]) -> Option<()> {
    (p.len() == buf.len()).then(|| buf.copy_from_slice(p))
}

fn len32(op: Operation, n: usize) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::client(op, errno::EMSGSIZE, format!("{n} bytes cannot be framed")))
}

fn check_total(op: Operation, segments: &[Segment], n: usize) -> Result<(), Error> {
    let total: u64 = segments.iter().map(|s| u64::from(s.len)).sum();
    if total != n as u64 {
        let why = format!("the buffer has {n} bytes, the segments {total}");
        return Err(Error::client(op, errno::EINVAL, why));
    }
    Ok(())
}

/// The errno of an I/O error; `EIO` when it has none.
fn io_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(errno::EIO)
}

// A Client may move to, and be shared with, other threads (see "Threads" above).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
};
