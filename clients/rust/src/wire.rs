//! The bytes of protocol version 1: constants, the frame header, request encoding and reply decoding.
//!
//! This module mirrors `proto/gmem_wire.h` and is checked against the golden frames of
//! `proto/vectors/frames.txt`. [`Client`](crate::Client) is built on it; it is public for tools and tests that
//! need to put exact bytes on a socket (malformed frames included).
//!
//! Everything on the wire is little-endian; the encoders and decoders here do the byte order themselves, so
//! they work on any host.

use crate::types::Segment;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes in a frame header.
pub const HEADER_SIZE: usize = 16;
/// gmemd's default `max_payload` (1 MiB).
pub const DEFAULT_MAX_PAYLOAD: u32 = 1 << 20;
/// The least `max_payload` a server may report; also the bound this crate applies before HELLO completes.
pub const MIN_MAX_PAYLOAD: u32 = 4096;
/// The least `max_segments` a server granting [`feature::DEVICE_OPS`] reports.
pub const MIN_MAX_SEGMENTS: u32 = 64;

/// Request opcodes (1 to 17) and event opcodes (0x80 and up), header offset 4.
pub mod opcode {
    /// HELLO: negotiates version and features; the first request of a connection.
    pub const HELLO: u16 = 1;
    /// PING: echoes its payload.
    pub const PING: u16 = 2;
    /// READ: reads guest memory.
    pub const READ: u16 = 3;
    /// WRITE: writes guest memory.
    pub const WRITE: u16 = 4;
    /// GPC_ACTIVATE: activates a guest page cache.
    pub const GPC_ACTIVATE: u16 = 5;
    /// GPC_DEACTIVATE: deactivates a guest page cache.
    pub const GPC_DEACTIVATE: u16 = 6;
    /// GPC_READ: reads through a guest page cache.
    pub const GPC_READ: u16 = 7;
    /// GPC_WRITE: writes through a guest page cache.
    pub const GPC_WRITE: u16 = 8;
    /// GPC_REFRESH: re-points a guest page cache and makes it valid.
    pub const GPC_REFRESH: u16 = 9;
    /// SET_ATTRIBUTES: converts pages between private and shared.
    pub const SET_ATTRIBUTES: u16 = 10;
    /// DISCARD: discards the contents of pages.
    pub const DISCARD: u16 = 11;
    /// STATS: the daemon's counters.
    pub const STATS: u16 = 12;
    /// PAGE_STATE: reference counts and state bits of pages.
    pub const PAGE_STATE: u16 = 13;
    /// READV: reads several segments.
    pub const READV: u16 = 14;
    /// WRITEV: writes several segments.
    pub const WRITEV: u16 = 15;
    /// ATOMIC: an atomic operation on guest memory.
    pub const ATOMIC: u16 = 16;
    /// GPC_ATOMIC: an atomic operation through a guest page cache.
    pub const GPC_ATOMIC: u16 = 17;
    /// RING_SETUP: creates a shared-memory ring; the reply carries three descriptors.
    pub const RING_SETUP: u16 = 18;
    /// RING_CLOSE: stops serving a ring.
    pub const RING_CLOSE: u16 = 19;
    /// MAP_REGION: the guest memfd itself, for the process that stands in for KVM.
    pub const MAP_REGION: u16 = 20;
    /// Event GPC_INVALIDATED: a guest page cache lost its mapping.
    pub const GPC_INVALIDATED: u16 = 0x80;
    /// Event RING_FAILED: the server found a ring's indices corrupt, stopped it and closes the connection.
    pub const RING_FAILED: u16 = 0x81;
}

/// Header `flags` bit: the frame is a reply.
pub const FLAG_REPLY: u16 = 1 << 0;
/// Header `flags` bit: the frame is an event.
pub const FLAG_EVENT: u16 = 1 << 1;

/// HELLO feature bits.
pub mod feature {
    /// The server sends event frames on this connection.
    pub const EVENTS: u32 = 1 << 0;
    /// The server serves READV, WRITEV, ATOMIC and GPC_ATOMIC and reports `max_segments`.
    pub const DEVICE_OPS: u32 = 1 << 1;
    /// The server serves RING_SETUP and RING_CLOSE: the shared-memory transport.
    pub const RINGS: u32 = 1 << 2;
}

/// The shared-memory ring transport (PROTOCOL.md section 10): limits and the layout of the ring memfd.
pub mod ring {
    /// The most entries of a ring; entries are a power of two from 1.
    pub const MAX_ENTRIES: u32 = 4096;
    /// The largest data area; data sizes are multiples of 4096 from 4096.
    pub const MAX_DATA_SIZE: u64 = 64 << 20;
    /// The header page's `magic`, `"GMRG"` in memory order.
    pub const MAGIC: u32 = 0x4752_4d47;
    /// The ring layout version.
    pub const VERSION: u32 = 1;
    /// Bytes of a submission entry.
    pub const SQE_SIZE: usize = 64;
    /// Bytes of a completion entry.
    pub const CQE_SIZE: usize = 32;
    /// Offset of the submission queue.
    pub const SQ_OFFSET: u64 = 4096;
    /// Header offsets of the index and flag words (each on its own cache line).
    pub const SQ_TAIL: usize = 64;
    /// Written by the server: the next SQ entry it consumes.
    pub const SQ_HEAD: usize = 128;
    /// Written by the server: the next CQ slot it fills.
    pub const CQ_TAIL: usize = 192;
    /// Written by the client: the next CQ entry it consumes.
    pub const CQ_HEAD: usize = 256;
    /// Written by the server: [`NEED_WAKEUP`].
    pub const SERVER_FLAGS: usize = 320;
    /// Written by the client, cleared by the server: [`WANT_WAKEUP`].
    pub const CLIENT_FLAGS: usize = 384;
    /// `server_flags`: the server's poller sleeps; ring the submit doorbell.
    pub const NEED_WAKEUP: u32 = 1;
    /// `client_flags`: the client sleeps; ring the completion doorbell.
    pub const WANT_WAKEUP: u32 = 1;

    /// `(cq_offset, data_offset, mmap_size)` of a ring of `entries` entries and `data_size` data bytes.
    pub fn layout(entries: u32, data_size: u64) -> (u64, u64, u64) {
        let cq = SQ_OFFSET + (u64::from(entries) * SQE_SIZE as u64).next_multiple_of(4096);
        let data = cq + (u64::from(entries) * CQE_SIZE as u64).next_multiple_of(4096);
        (cq, data, data + data_size)
    }
}

/// HELLO reply `region_flags` bits.
pub mod region_flag {
    /// Private pages are inaccessible in the daemon's own mapping except while a reference holds them.
    pub const NO_DIRECT_MAP: u32 = 1 << 0;
    /// The memory is backed by `memfd_secret`.
    pub const SECRETMEM: u32 = 1 << 1;
    /// This connection is read-only.
    pub const READ_ONLY: u32 = 1 << 2;
    /// The daemon re-attached an existing region after a restart.
    pub const RECOVERED: u32 = 1 << 3;
    /// This connection may send MAP_REGION.
    pub const MAY_MAP: u32 = 1 << 4;
}

/// SET_ATTRIBUTES `attributes`: the only defined bit, PRIVATE.
pub const ATTRIBUTE_PRIVATE: u64 = 1 << 3;

/// PAGE_STATE entry `state` bits.
pub mod page_flag {
    /// The page is private.
    pub const PRIVATE: u8 = 1 << 0;
    /// The page is mapped in the daemon right now.
    pub const ACCESSIBLE: u8 = 1 << 1;
}

/// GPC_INVALIDATED `reason` values.
pub mod reason {
    /// SET_ATTRIBUTES changed the page's attribute.
    pub const ATTRIBUTES_CHANGED: u32 = 1;
    /// DISCARD discarded the page.
    pub const DISCARDED: u32 = 2;
}

/// ATOMIC and GPC_ATOMIC `op` codes.
pub mod atomic_op {
    /// Acquire load.
    pub const LOAD: u8 = 0;
    /// Release store.
    pub const STORE: u8 = 1;
    /// Exchange.
    pub const XCHG: u8 = 2;
    /// Compare and exchange.
    pub const CMPXCHG: u8 = 3;
    /// Wrapping add.
    pub const FETCH_ADD: u8 = 4;
    /// Bitwise or.
    pub const FETCH_OR: u8 = 5;
    /// Bitwise and.
    pub const FETCH_AND: u8 = 6;
}

/// Linux errno values used by the protocol (section 8), positive; a reply status is their negation.
pub mod errno {
    /// Operation not permitted (read-only connection).
    pub const EPERM: i32 = 1;
    /// No such GPC.
    pub const ENOENT: i32 = 2;
    /// Input/output error.
    pub const EIO: i32 = 5;
    /// Bad file descriptor.
    pub const EBADF: i32 = 9;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Out of memory, or the kernel refused a protection change.
    pub const ENOMEM: i32 = 12;
    /// Permission denied (not admitted).
    pub const EACCES: i32 = 13;
    /// Bad address (outside the region).
    pub const EFAULT: i32 = 14;
    /// Busy (too many connections).
    pub const EBUSY: i32 = 16;
    /// Exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Broken pipe: client side, sending on a connection the daemon closed.
    pub const EPIPE: i32 = 32;
    /// A limit was reached.
    pub const ENOSPC: i32 = 28;
    /// Out of range.
    pub const ERANGE: i32 = 34;
    /// Protocol error.
    pub const EPROTO: i32 = 71;
    /// Message too long.
    pub const EMSGSIZE: i32 = 90;
    /// Protocol version not supported.
    pub const EPROTONOSUPPORT: i32 = 93;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Connection reset: client side.
    pub const ECONNRESET: i32 = 104;
    /// The daemon shut down: client side.
    pub const ESHUTDOWN: i32 = 108;
    /// Timed out: client side.
    pub const ETIMEDOUT: i32 = 110;
    /// HELLO on a connection that already completed HELLO.
    pub const EALREADY: i32 = 114;
    /// The GPC was invalidated.
    pub const ESTALE: i32 = 116;

    /// The symbolic name of a Linux errno value, if the protocol or this crate uses it.
    pub fn name(errno: i32) -> Option<&'static str> {
        Some(match errno {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            EIO => "EIO",
            EBADF => "EBADF",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            EINVAL => "EINVAL",
            EPIPE => "EPIPE",
            ENOSPC => "ENOSPC",
            ERANGE => "ERANGE",
            EPROTO => "EPROTO",
            EMSGSIZE => "EMSGSIZE",
            EPROTONOSUPPORT => "EPROTONOSUPPORT",
            EOPNOTSUPP => "EOPNOTSUPP",
            ECONNRESET => "ECONNRESET",
            ESHUTDOWN => "ESHUTDOWN",
            ETIMEDOUT => "ETIMEDOUT",
            EALREADY => "EALREADY",
            ESTALE => "ESTALE",
            _ => return None,
        })
    }

    /// The value of a symbolic errno name known to [`name`].
    pub fn from_name(name: &str) -> Option<i32> {
        (1..=4095).find(|&e| self::name(e) == Some(name))
    }
}

/// The 16-byte header that starts every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Bytes in the whole frame, header included.
    pub length: u32,
    /// The operation or event.
    pub opcode: u16,
    /// [`FLAG_REPLY`], [`FLAG_EVENT`] or 0.
    pub flags: u16,
    /// Chosen by the client, echoed in the reply, 0 in events.
    pub id: u32,
    /// 0, or a negative errno in a failed reply.
    pub status: i32,
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.length.to_le_bytes());
        b[4..6].copy_from_slice(&self.opcode.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.id.to_le_bytes());
        b[12..16].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    /// Reads a header from the first 16 bytes of `bytes`; `None` if there are fewer. The length is not checked.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_SIZE {
            return None;
        }
        Some(Header {
            length: le_u32(bytes, 0),
            opcode: u16::from_le_bytes([bytes[4], bytes[5]]),
            flags: u16::from_le_bytes([bytes[6], bytes[7]]),
            id: le_u32(bytes, 8),
            status: le_u32(bytes, 12) as i32,
        })
    }

    /// The payload size the header announces, if `length` is at least 16.
    pub fn payload_len(&self) -> Option<usize> {
        (self.length as usize).checked_sub(HEADER_SIZE)
    }
}

/// One request, with the fields of its payload (PROTOCOL.md section 5).
///
/// The encoder writes the fields as given: it does not check them against the protocol's rules, so it can
/// produce requests the daemon refuses. `flags` and `reserved` fields are always 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// HELLO.
    Hello {
        /// The protocol version; [`PROTOCOL_VERSION`].
        version: u32,
        /// [`feature`] bits requested.
        features: u32,
    },
    /// PING with any payload.
    Ping {
        /// Echoed back.
        payload: &'a [u8],
    },
    /// READ.
    Read {
        /// First byte.
        gpa: u64,
        /// Bytes to read.
        len: u32,
    },
    /// WRITE.
    Write {
        /// First byte.
        gpa: u64,
        /// The bytes; `len` is their count.
        data: &'a [u8],
    },
    /// GPC_ACTIVATE.
    GpcActivate {
        /// First byte of the window.
        gpa: u64,
        /// Window size.
        len: u32,
    },
    /// GPC_DEACTIVATE.
    GpcDeactivate {
        /// The GPC.
        handle: u64,
    },
    /// GPC_READ.
    GpcRead {
        /// The GPC.
        handle: u64,
        /// From the start of the window.
        offset: u32,
        /// Bytes to read.
        len: u32,
    },
    /// GPC_WRITE.
    GpcWrite {
        /// The GPC.
        handle: u64,
        /// From the start of the window.
        offset: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// GPC_REFRESH.
    GpcRefresh {
        /// The GPC.
        handle: u64,
        /// First byte of the new window.
        gpa: u64,
        /// New window size.
        len: u32,
    },
    /// SET_ATTRIBUTES.
    SetAttributes {
        /// Page-aligned start.
        gpa: u64,
        /// Page-aligned size.
        size: u64,
        /// [`ATTRIBUTE_PRIVATE`] or 0.
        attributes: u64,
    },
    /// DISCARD.
    Discard {
        /// Page-aligned start.
        gpa: u64,
        /// Page-aligned size.
        size: u64,
    },
    /// STATS.
    Stats,
    /// PAGE_STATE.
    PageState {
        /// Page-aligned start.
        gpa: u64,
        /// Pages to report.
        npages: u32,
    },
    /// READV.
    Readv {
        /// The segment table.
        segments: &'a [Segment],
    },
    /// WRITEV.
    Writev {
        /// The segment table.
        segments: &'a [Segment],
        /// Every segment's bytes, back to back.
        data: &'a [u8],
    },
    /// ATOMIC.
    Atomic {
        /// The operand's address.
        gpa: u64,
        /// The raw operation.
        atomic: RawAtomic,
    },
    /// GPC_ATOMIC.
    GpcAtomic {
        /// The GPC.
        handle: u64,
        /// From the start of the window.
        offset: u32,
        /// The raw operation.
        atomic: RawAtomic,
    },
    /// RING_SETUP.
    RingSetup {
        /// Slots of each queue.
        entries: u32,
        /// Bytes of the data area.
        data_size: u64,
    },
    /// RING_CLOSE.
    RingClose {
        /// From RING_SETUP.
        ring_id: u32,
    },
    /// MAP_REGION.
    MapRegion,
}

/// The fields of an ATOMIC or GPC_ATOMIC request, sent exactly as given (see
/// [`AtomicOp`](crate::AtomicOp) for the checked form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawAtomic {
    /// An [`atomic_op`] code.
    pub op: u8,
    /// Width in bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// The value stored, added, or-ed, and-ed or exchanged; 0 for LOAD.
    pub operand: u64,
    /// CMPXCHG's comparand; 0 for every other op.
    pub expected: u64,
}

impl Request<'_> {
    /// The request's opcode.
    pub fn opcode(&self) -> u16 {
        match self {
            Request::Hello { .. } => opcode::HELLO,
            Request::Ping { .. } => opcode::PING,
            Request::Read { .. } => opcode::READ,
            Request::Write { .. } => opcode::WRITE,
            Request::GpcActivate { .. } => opcode::GPC_ACTIVATE,
            Request::GpcDeactivate { .. } => opcode::GPC_DEACTIVATE,
            Request::GpcRead { .. } => opcode::GPC_READ,
            Request::GpcWrite { .. } => opcode::GPC_WRITE,
            Request::GpcRefresh { .. } => opcode::GPC_REFRESH,
            Request::SetAttributes { .. } => opcode::SET_ATTRIBUTES,
            Request::Discard { .. } => opcode::DISCARD,
            Request::Stats => opcode::STATS,
            Request::PageState { .. } => opcode::PAGE_STATE,
            Request::Readv { .. } => opcode::READV,
            Request::Writev { .. } => opcode::WRITEV,
            Request::Atomic { .. } => opcode::ATOMIC,
            Request::GpcAtomic { .. } => opcode::GPC_ATOMIC,
            Request::RingSetup { .. } => opcode::RING_SETUP,
            Request::RingClose { .. } => opcode::RING_CLOSE,
            Request::MapRegion => opcode::MAP_REGION,
        }
    }

    /// The payload size of the encoded request, in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Request::Hello { .. } | Request::GpcDeactivate { .. } | Request::RingClose { .. } | Request::MapRegion => 8,
            Request::Ping { payload } => payload.len(),
            Request::Read { .. }
            | Request::GpcActivate { .. }
            | Request::GpcRead { .. }
            | Request::Discard { .. }
            | Request::PageState { .. }
            | Request::RingSetup { .. } => 16,
            Request::Write { data, .. } | Request::GpcWrite { data, .. } => 16 + data.len(),
            Request::GpcRefresh { .. } | Request::SetAttributes { .. } => 24,
            Request::Stats => 0,
            Request::Readv { segments } => 8 + 16 * segments.len(),
            Request::Writev { segments, data } => 8 + 16 * segments.len() + data.len(),
            Request::Atomic { .. } | Request::GpcAtomic { .. } => 32,
        }
    }

    /// Appends the whole frame, header included, with request id `id`, to `out`.
    ///
    /// # Errors
    ///
    /// [`FrameTooLong`] if the frame would be longer than `u32::MAX` bytes (nothing is appended then).
    pub fn encode_into(&self, id: u32, out: &mut Vec<u8>) -> Result<(), FrameTooLong> {
        let length = u32::try_from(HEADER_SIZE + self.payload_len()).map_err(|_| FrameTooLong)?;
        let header = Header { length, opcode: self.opcode(), flags: 0, id, status: 0 };
        out.reserve(length as usize);
        out.extend_from_slice(&header.encode());
        // Every data length and segment count is part of the frame, which fits in u32: none truncates.
        let len32 = |n: usize| n as u32;
        match *self {
            Request::Hello { version, features } => {
                put32(out, version);
                put32(out, features);
            }
            Request::Ping { payload } => out.extend_from_slice(payload),
            Request::Read { gpa, len } | Request::GpcActivate { gpa, len } => {
                put64(out, gpa);
                put32(out, len);
                put32(out, 0);
            }
            Request::Write { gpa, data } => {
                put64(out, gpa);
                put32(out, len32(data.len()));
                put32(out, 0);
                out.extend_from_slice(data);
            }
            Request::GpcDeactivate { handle } => put64(out, handle),
            Request::GpcRead { handle, offset, len } => {
                put64(out, handle);
                put32(out, offset);
                put32(out, len);
            }
            Request::GpcWrite { handle, offset, data } => {
                put64(out, handle);
                put32(out, offset);
                put32(out, len32(data.len()));
                out.extend_from_slice(data);
            }
            Request::GpcRefresh { handle, gpa, len } => {
                put64(out, handle);
                put64(out, gpa);
                put32(out, len);
                put32(out, 0);
            }
            Request::SetAttributes { gpa, size, attributes } => {
                put64(out, gpa);
                put64(out, size);
                put64(out, attributes);
            }
            Request::Discard { gpa, size } => {
                put64(out, gpa);
                put64(out, size);
            }
            Request::Stats => {}
            Request::PageState { gpa, npages } => {
                put64(out, gpa);
                put32(out, npages);
                put32(out, 0);
            }
            Request::Readv { segments } => put_segments(out, segments, len32(segments.len())),
            Request::Writev { segments, data } => {
                put_segments(out, segments, len32(segments.len()));
                out.extend_from_slice(data);
            }
            Request::Atomic { gpa, atomic } => {
                put64(out, gpa);
                put64(out, atomic.operand);
                put64(out, atomic.expected);
                out.push(atomic.op);
                out.push(atomic.width);
                out.extend_from_slice(&0u16.to_le_bytes());
                put32(out, 0);
            }
            Request::GpcAtomic { handle, offset, atomic } => {
                put64(out, handle);
                put64(out, atomic.operand);
                put64(out, atomic.expected);
                put32(out, offset);
                out.push(atomic.op);
                out.push(atomic.width);
                out.extend_from_slice(&0u16.to_le_bytes());
            }
            Request::RingSetup { entries, data_size } => {
                put32(out, entries);
                put32(out, 0);
                put64(out, data_size);
            }
            Request::RingClose { ring_id } => {
                put32(out, ring_id);
                put32(out, 0);
            }
            Request::MapRegion => {
                put32(out, 0);
                put32(out, 0);
            }
        }
        Ok(())
    }

    /// The whole frame, header included, with request id `id`.
    ///
    /// # Errors
    ///
    /// As [`encode_into`](Self::encode_into).
    pub fn encode(&self, id: u32) -> Result<Vec<u8>, FrameTooLong> {
        let mut out = Vec::new();
        self.encode_into(id, &mut out)?;
        Ok(out)
    }
}

/// A request whose frame would exceed the wire's `u32` length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLong;

impl std::fmt::Display for FrameTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the frame would be longer than u32::MAX bytes")
    }
}

impl std::error::Error for FrameTooLong {}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_segments(out: &mut Vec<u8>, segments: &[Segment], nsegs: u32) {
    put32(out, nsegs);
    put32(out, 0);
    for s in segments {
        put64(out, s.gpa);
        put32(out, s.len);
        put32(out, 0);
    }
}

/// The little-endian `u32` at `at`; the caller has checked the bounds.
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The little-endian `u64` at `at`; the caller has checked the bounds.
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// The `{u64 handle}` of a GPC_ACTIVATE reply, or the `{u64 value}` of an ATOMIC reply.
pub fn decode_u64(payload: &[u8]) -> Option<u64> {
    (payload.len() == 8).then(|| le_u64(payload, 0))
}
