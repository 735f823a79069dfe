//! The values the client API takes and returns.

use crate::wire::{self, RawAtomic, atomic_op, feature, le_u32, le_u64, page_flag, region_flag};

/// What the HELLO reply told about the daemon, its region and this connection (PROTOCOL.md 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// The protocol version, 1.
    pub version: u32,
    /// [`feature`](crate::wire::feature) bits granted.
    pub features: u32,
    /// The unit of alignment of SET_ATTRIBUTES, DISCARD and PAGE_STATE, and the bound of a GPC.
    pub page_size: u32,
    /// The size of the blocks backing the region; a multiple of `page_size`.
    pub folio_size: u32,
    /// Valid addresses are `0 <= gpa < region_size`.
    pub region_size: u64,
    /// Identifies the region instance.
    pub region_id: u64,
    /// The largest payload of any frame, either direction.
    pub max_payload: u32,
    /// The most GPCs this connection may have active at once.
    pub max_gpcs: u32,
    /// [`region_flag`](crate::wire::region_flag) bits.
    pub region_flags: u32,
    /// The most segments of a READV or WRITEV (0 without DEVICE_OPS).
    pub max_segments: u32,
}

impl Info {
    /// Decodes the 48-byte HELLO reply payload.
    pub fn decode(p: &[u8]) -> Option<Info> {
        if p.len() != 48 {
            return None;
        }
        Some(Info {
            version: le_u32(p, 0),
            features: le_u32(p, 4),
            page_size: le_u32(p, 8),
            folio_size: le_u32(p, 12),
            region_size: le_u64(p, 16),
            region_id: le_u64(p, 24),
            max_payload: le_u32(p, 32),
            max_gpcs: le_u32(p, 36),
            region_flags: le_u32(p, 40),
            max_segments: le_u32(p, 44),
        })
    }

    /// The 48-byte HELLO reply payload.
    pub fn encode(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..8].copy_from_slice(&self.features.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.folio_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.region_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.region_id.to_le_bytes());
        b[32..36].copy_from_slice(&self.max_payload.to_le_bytes());
        b[36..40].copy_from_slice(&self.max_gpcs.to_le_bytes());
        b[40..44].copy_from_slice(&self.region_flags.to_le_bytes());
        b[44..48].copy_from_slice(&self.max_segments.to_le_bytes());
        b
    }

    /// The server sends events on this connection.
    pub fn events(&self) -> bool {
        self.features & feature::EVENTS != 0
    }

    /// The server serves READV, WRITEV, ATOMIC and GPC_ATOMIC.
    pub fn device_ops(&self) -> bool {
        self.features & feature::DEVICE_OPS != 0
    }

    /// This connection may only read.
    pub fn read_only(&self) -> bool {
        self.region_flags & region_flag::READ_ONLY != 0
    }

    /// Private pages are inaccessible in the daemon's mapping except while referenced.
    pub fn no_direct_map(&self) -> bool {
        self.region_flags & region_flag::NO_DIRECT_MAP != 0
    }

    /// The region is backed by `memfd_secret`.
    pub fn secretmem(&self) -> bool {
        self.region_flags & region_flag::SECRETMEM != 0
    }

    /// The daemon re-attached an existing region after a restart.
    pub fn recovered(&self) -> bool {
        self.region_flags & region_flag::RECOVERED != 0
    }

    /// This connection may call [`Client::map_region`](crate::Client::map_region).
    pub fn may_map(&self) -> bool {
        self.region_flags & region_flag::MAY_MAP != 0
    }
}

/// One segment of a READV or WRITEV: `len` bytes at `gpa`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Segment {
    /// First byte.
    pub gpa: u64,
    /// Bytes; 0 transfers nothing but `gpa` must still lie inside the region.
    pub len: u32,
}

impl Segment {
    /// A segment of `len` bytes at `gpa`.
    pub const fn new(gpa: u64, len: u32) -> Segment {
        Segment { gpa, len }
    }
}

/// Names an active guest page cache of one connection (never 0 when the daemon returns it).
///
/// A handle is only meaningful on the [`Client`](crate::Client) that activated it. Dropping it does not
/// deactivate the GPC; closing the connection deactivates all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpcHandle(u64);

impl GpcHandle {
    /// A handle from its wire value (for example one received in an event, or a test's made-up handle).
    pub const fn from_raw(raw: u64) -> GpcHandle {
        GpcHandle(raw)
    }

    /// The wire value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// The width of an atomic operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// One byte.
    U8 = 1,
    /// Two bytes.
    U16 = 2,
    /// Four bytes.
    U32 = 4,
    /// Eight bytes.
    U64 = 8,
}

impl Width {
    /// The width in bytes.
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    /// The width of `bytes` bytes, if it is 1, 2, 4 or 8.
    pub const fn from_bytes(bytes: u64) -> Option<Width> {
        match bytes {
            1 => Some(Width::U8),
            2 => Some(Width::U16),
            4 => Some(Width::U32),
            8 => Some(Width::U64),
            _ => None,
        }
    }
}

/// An atomic operation on guest memory (PROTOCOL.md 5.16); its operands are values of the chosen [`Width`].
///
/// The result of every operation is the value before it, zero-extended (LOAD: the value; STORE: 0).
/// Read-modify-write operations are sequentially consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// Acquire load.
    Load,
    /// Release store of the value; returns 0.
    Store(u64),
    /// Stores the value; returns the old one.
    Xchg(u64),
    /// Stores `new` if the memory equals `expected`; returns the old value, equal to `expected` exactly when
    /// the store happened.
    CmpXchg {
        /// The comparand.
        expected: u64,
        /// The value stored on a match.
        new: u64,
    },
    /// Adds the value, wrapping at the width.
    FetchAdd(u64),
    /// Ors the value in.
    FetchOr(u64),
    /// Ands with the value.
    FetchAnd(u64),
}

impl AtomicOp {
    /// The wire fields of this operation at `width`.
    pub fn raw(self, width: Width) -> RawAtomic {
        let (op, operand, expected) = match self {
            AtomicOp::Load => (atomic_op::LOAD, 0, 0),
            AtomicOp::Store(v) => (atomic_op::STORE, v, 0),
            AtomicOp::Xchg(v) => (atomic_op::XCHG, v, 0),
            AtomicOp::CmpXchg { expected, new } => (atomic_op::CMPXCHG, new, expected),
            AtomicOp::FetchAdd(v) => (atomic_op::FETCH_ADD, v, 0),
            AtomicOp::FetchOr(v) => (atomic_op::FETCH_OR, v, 0),
            AtomicOp::FetchAnd(v) => (atomic_op::FETCH_AND, v, 0),
        };
        RawAtomic { op, width: width.bytes(), operand, expected }
    }
}

/// The attributes SET_ATTRIBUTES gives pages: [`Attributes::PRIVATE`] or [`Attributes::SHARED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes(u64);

impl Attributes {
    /// Shared pages (no attribute bit).
    pub const SHARED: Attributes = Attributes(0);
    /// Private pages.
    pub const PRIVATE: Attributes = Attributes(wire::ATTRIBUTE_PRIVATE);

    /// Attributes from their wire value, sent as they are (bits other than PRIVATE are refused with `EINVAL`).
    pub const fn from_raw(raw: u64) -> Attributes {
        Attributes(raw)
    }

    /// The wire value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// One page's entry in a PAGE_STATE reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageState {
    /// References held on the page (accesses in progress, GPCs); saturates at 65535.
    pub refcount: u16,
    /// [`page_flag`](crate::wire::page_flag) bits.
    pub state: u8,
}

impl PageState {
    /// The page is private.
    pub fn private(&self) -> bool {
        self.state & page_flag::PRIVATE != 0
    }

    /// The page is mapped in the daemon right now.
    pub fn accessible(&self) -> bool {
        self.state & page_flag::ACCESSIBLE != 0
    }

    /// Decodes a PAGE_STATE reply payload: 4 bytes per page, reserved bytes 0.
    pub fn decode_all(p: &[u8]) -> Option<Vec<PageState>> {
        if p.len() % 4 != 0 {
            return None;
        }
        p.chunks_exact(4)
            .map(|e| (e[3] == 0).then(|| PageState { refcount: u16::from_le_bytes([e[0], e[1]]), state: e[2] }))
            .collect()
    }
}

/// The daemon's counters, from STATS (PROTOCOL.md 5.12), in the daemon's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    entries: Vec<(String, u64)>,
}

impl Stats {
    /// The counter called `name`, if the daemon reported it.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// Every counter, in the daemon's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Decodes a STATS reply payload; `None` if an entry is malformed or a name repeats.
    pub fn decode(mut p: &[u8]) -> Option<Stats> {
        let mut entries: Vec<(String, u64)> = Vec::new();
        while let Some((&n, rest)) = p.split_first() {
            let n = n as usize;
            if n == 0 || rest.len() < n + 8 {
                return None;
            }
            let name = &rest[..n];
            if !name.iter().all(|c| (0x21..=0x7e).contains(c)) {
                return None;
            }
            let name = String::from_utf8(name.to_vec()).ok()?;
            if entries.iter().any(|(e, _)| *e == name) {
                return None;
            }
            entries.push((name, le_u64(rest, n)));
            p = &rest[n + 8..];
        }
        Some(Stats { entries })
    }
}

/// Why a GPC was invalidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidationReason {
    /// SET_ATTRIBUTES changed its page's attribute (reason 1).
    AttributesChanged,
    /// DISCARD discarded its page (reason 2).
    Discarded,
    /// A reason this crate does not know; treat it like any other invalidation.
    Other(u32),
}

impl InvalidationReason {
    /// The reason of wire value `raw`.
    pub fn from_raw(raw: u32) -> InvalidationReason {
        match raw {
            wire::reason::ATTRIBUTES_CHANGED => InvalidationReason::AttributesChanged,
            wire::reason::DISCARDED => InvalidationReason::Discarded,
            other => InvalidationReason::Other(other),
        }
    }

    /// The wire value.
    pub fn raw(self) -> u32 {
        match self {
            InvalidationReason::AttributesChanged => wire::reason::ATTRIBUTES_CHANGED,
            InvalidationReason::Discarded => wire::reason::DISCARDED,
            InvalidationReason::Other(r) => r,
        }
    }
}

/// An event frame from the daemon (PROTOCOL.md section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// GPC_INVALIDATED: the GPC lost its mapping; GPC_READ and GPC_WRITE on it fail with `ESTALE` until a
    /// GPC_REFRESH succeeds.
    GpcInvalidated {
        /// The GPC.
        handle: GpcHandle,
        /// Why.
        reason: InvalidationReason,
    },
    /// RING_FAILED: the daemon found the ring's shared indices corrupt and stopped serving it; it closes the
    /// connection right after this event.
    RingFailed {
        /// The ring.
        ring_id: u32,
        /// Why, a negative errno (`-EPROTO`).
        status: i32,
    },
    /// An event opcode this crate does not know, with its payload.
    Unknown {
        /// The event's opcode.
        opcode: u16,
        /// Its payload.
        payload: Vec<u8>,
    },
}

impl Event {
    /// Decodes the payload of an event frame of `opcode`; `None` if it is malformed.
    pub fn decode(opcode: u16, p: &[u8]) -> Option<Event> {
        match opcode {
            wire::opcode::GPC_INVALIDATED => {
                if p.len() != 16 || le_u32(p, 12) != 0 {
                    return None;
                }
                Some(Event::GpcInvalidated {
                    handle: GpcHandle(le_u64(p, 0)),
                    reason: InvalidationReason::from_raw(le_u32(p, 8)),
                })
            }
            wire::opcode::RING_FAILED => {
                if p.len() != 16 || le_u64(p, 8) != 0 {
                    return None;
                }
                Some(Event::RingFailed { ring_id: le_u32(p, 0), status: le_u32(p, 4) as i32 })
            }
            _ => Some(Event::Unknown { opcode, payload: p.to_vec() }),
        }
    }
}

/// How far a READV or WRITEV got before it failed (PROTOCOL.md 5.14).
///
/// Segments `0 .. segment` were transferred whole, then `segment_bytes` bytes of segment `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VectorProgress {
    /// Bytes transferred in all, counted in segment order.
    pub bytes_completed: u64,
    /// The first segment not transferred whole.
    pub segment: u32,
    /// Bytes of that segment transferred.
    pub segment_bytes: u32,
}

impl VectorProgress {
    /// Decodes the 16-byte progress payload.
    pub fn decode(p: &[u8]) -> Option<VectorProgress> {
        (p.len() == 16).then(|| VectorProgress {
            bytes_completed: le_u64(p, 0),
            segment: le_u32(p, 8),
            segment_bytes: le_u32(p, 12),
        })
    }
}
