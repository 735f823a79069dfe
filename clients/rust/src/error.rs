//! The error type: an operation, a Linux errno, where it came from, and partial progress.

use std::fmt;
use std::io;

use crate::types::VectorProgress;
use crate::wire::errno;

/// The operation an [`Error`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Connecting to the socket.
    Connect,
    /// HELLO.
    Hello,
    /// PING.
    Ping,
    /// READ.
    Read,
    /// WRITE.
    Write,
    /// GPC_ACTIVATE.
    GpcActivate,
    /// GPC_DEACTIVATE.
    GpcDeactivate,
    /// GPC_READ.
    GpcRead,
    /// GPC_WRITE.
    GpcWrite,
    /// GPC_REFRESH.
    GpcRefresh,
    /// SET_ATTRIBUTES.
    SetAttributes,
    /// DISCARD.
    Discard,
    /// STATS.
    Stats,
    /// PAGE_STATE.
    PageState,
    /// READV.
    Readv,
    /// WRITEV.
    Writev,
    /// ATOMIC.
    Atomic,
    /// GPC_ATOMIC.
    GpcAtomic,
    /// RING_SETUP.
    RingSetup,
    /// RING_CLOSE.
    RingClose,
    /// MAP_REGION.
    MapRegion,
    /// Waiting for a ring's completions.
    Ring,
    /// Waiting for or reading an event.
    Event,
    /// Changing a socket option (timeouts).
    Configure,
}

impl Operation {
    /// The protocol's name of the operation (`READ`, `GPC_ACTIVATE`, ...), or a lower-case description of a
    /// client-side step (`connect`, `event`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Hello => "HELLO",
            Operation::Ping => "PING",
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::GpcActivate => "GPC_ACTIVATE",
            Operation::GpcDeactivate => "GPC_DEACTIVATE",
            Operation::GpcRead => "GPC_READ",
            Operation::GpcWrite => "GPC_WRITE",
            Operation::GpcRefresh => "GPC_REFRESH",
            Operation::SetAttributes => "SET_ATTRIBUTES",
            Operation::Discard => "DISCARD",
            Operation::Stats => "STATS",
            Operation::PageState => "PAGE_STATE",
            Operation::Readv => "READV",
            Operation::Writev => "WRITEV",
            Operation::Atomic => "ATOMIC",
            Operation::GpcAtomic => "GPC_ATOMIC",
            Operation::RingSetup => "RING_SETUP",
            Operation::RingClose => "RING_CLOSE",
            Operation::MapRegion => "MAP_REGION",
            Operation::Ring => "ring",
            Operation::Event => "event",
            Operation::Configure => "configure",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an [`Error`] was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The daemon refused the request: the errno is the negated reply status.
    Daemon,
    /// The client refused the request without sending it, because it cannot be framed (a WRITE longer than
    /// `max_payload - 16`, a data buffer that does not match the segment table, ...). The errno is the one
    /// the daemon would have replied.
    Client,
    /// The connection failed: a socket error, the daemon closing it (`ECONNRESET`, `EPIPE`), a timeout
    /// (`ETIMEDOUT`), or a frame that breaks the protocol (`EPROTO`). The client is unusable afterwards.
    Connection,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Detail {
    None,
    Bytes(u64),
    Vector(VectorProgress),
    Version(u32),
}

/// A failed operation: which one, the Linux errno, and any progress the daemon reported.
///
/// `errno()` is positive, so `std::io::Error::from_raw_os_error(e.errno())` rebuilds the OS error; the
/// `From<Error> for io::Error` conversion does exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    op: Operation,
    errno: i32,
    origin: Origin,
    detail: Detail,
    message: Option<String>,
}

impl Error {
    pub(crate) fn daemon(op: Operation, errno: i32) -> Error {
        Error { op, errno, origin: Origin::Daemon, detail: Detail::None, message: None }
    }

    pub(crate) fn client(op: Operation, errno: i32, message: impl Into<String>) -> Error {
        Error { op, errno, origin: Origin::Client, detail: Detail::None, message: Some(message.into()) }
    }

    pub(crate) fn connection(op: Operation, errno: i32, message: impl Into<String>) -> Error {
        Error { op, errno, origin: Origin::Connection, detail: Detail::None, message: Some(message.into()) }
    }

    pub(crate) fn with_bytes(mut self, n: u64) -> Error {
        self.detail = Detail::Bytes(n);
        self
    }

    pub(crate) fn with_vector(mut self, p: VectorProgress) -> Error {
        self.detail = Detail::Vector(p);
        self
    }

    pub(crate) fn with_version(mut self, v: u32) -> Error {
        self.detail = Detail::Version(v);
        self
    }

    /// The Linux errno, positive (`EFAULT` is 14).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The errno's symbolic name (`"EFAULT"`), if the protocol uses it.
    pub fn errno_name(&self) -> Option<&'static str> {
        errno::name(self.errno)
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.op
    }

    /// Whether the daemon, the client or the connection decided the error.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// True when the connection is unusable after this error (origin [`Origin::Connection`]).
    pub fn is_fatal(&self) -> bool {
        self.origin == Origin::Connection
    }

    /// For a READ, WRITE, READV or WRITEV that failed after partial progress: the bytes transferred from the
    /// start on. `None` when nothing was transferred (the reply had no progress payload).
    pub fn bytes_completed(&self) -> Option<u64> {
        match self.detail {
            Detail::Bytes(n) => Some(n),
            Detail::Vector(p) => Some(p.bytes_completed),
            _ => None,
        }
    }

    /// For a READV or WRITEV that failed after partial progress: how far it got.
    pub fn vector_progress(&self) -> Option<VectorProgress> {
        match self.detail {
            Detail::Vector(p) => Some(p),
            _ => None,
        }
    }

    /// For a HELLO refused with `EPROTONOSUPPORT`: the highest version the daemon supports.
    pub fn supported_version(&self) -> Option<u32> {
        match self.detail {
            Detail::Version(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        let name = self.errno_name().unwrap_or("errno");
        let by = match self.origin {
            Origin::Daemon => "refused by gmemd",
            Origin::Client => "refused by the client",
            Origin::Connection => "connection failed",
        };
        write!(f, "gmem {} failed, {by}: {name}: {os}", self.op)?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        match self.detail {
            Detail::None => Ok(()),
            Detail::Bytes(n) => write!(f, "; {n} bytes completed"),
            Detail::Vector(p) => write!(
                f,
                "; {} bytes completed, segment {} after {} bytes",
                p.bytes_completed, p.segment, p.segment_bytes
            ),
            Detail::Version(v) => write!(f, "; the daemon supports version {v} at most"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// The OS error of the errno, so `raw_os_error()` is `Some(e.errno())` (the operation is not kept).
    fn from(e: Error) -> io::Error {
        io::Error::from_raw_os_error(e.errno)
    }
}
