//! `gmem`: a client for gmemd, the daemon that owns a virtual machine's guest memory and serves it over a
//! Unix socket.
//!
//! The crate speaks protocol version 1 as `proto/PROTOCOL.md` specifies it, with the standard library only.
//! A [`Client`] is one connection: it completes HELLO (asking for events and the device operations), then
//! sends one request per method call and waits for its reply.
//!
//! ```no_run
//! use gmem::{AtomicOp, Attributes, Client, Event, Segment, Width};
//!
//! fn main() -> Result<(), gmem::Error> {
//!     // $GMEMD_SOCKET, $XDG_RUNTIME_DIR/gmemd.sock, /run/gmemd/gmemd.sock (root) or ./gmemd.sock.
//!     let mut gmem = Client::connect_default()?;
//!     println!("{} bytes of guest memory", gmem.info().region_size);
//!
//!     gmem.write(0x1000, b"hello")?;
//!     let mut buf = [0u8; 5];
//!     gmem.read(0x1000, &mut buf)?;
//!     assert_eq!(&buf, b"hello");
//!
//!     // A descriptor chain in one round trip.
//!     let mut chain = [0u8; 6];
//!     gmem.readv(&[Segment::new(0x1000, 2), Segment::new(0x1003, 4)], &mut chain)?;
//!
//!     // Atomics are atomic with respect to the guest and every other client.
//!     let old = gmem.atomic(0x2000, Width::U32, AtomicOp::FetchAdd(1))?;
//!     println!("counter was {old}");
//!
//!     // A guest page cache is invalidated when its page is converted; the event says so.
//!     let gpc = gmem.gpc_activate(0x3000, 64)?;
//!     gmem.set_attributes(0x3000, 0x1000, Attributes::SHARED)?;
//!     if let Some(Event::GpcInvalidated { handle, reason }) = gmem.poll_event()? {
//!         assert_eq!(handle, gpc);
//!         println!("invalidated: {reason:?}");
//!         gmem.gpc_refresh(gpc, 0x3000, 64)?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Rings
//!
//! [`Client::ring`] sets up the shared-memory ring transport (PROTOCOL.md section 10): a [`Ring`] carries the
//! data path (READ, WRITE, READV, WRITEV, GPC_READ, GPC_WRITE, ATOMIC, GPC_ATOMIC, PING) through memory shared
//! with the daemon, one entry at a time or in a [`Batch`].
//!
//! ```no_run
//! # fn main() -> Result<(), gmem::Error> {
//! use gmem::{AtomicOp, Client, Width};
//! let mut gmem = Client::connect_default()?;
//! let mut ring = gmem.ring(64, 1 << 20)?;
//! ring.write(0x1000, b"abc")?;
//! let mut batch = ring.batch();
//! let read = batch.read(0x1000, 3)?;
//! let add = batch.atomic(0x2000, Width::U64, AtomicOp::FetchAdd(1));
//! let results = batch.submit()?;
//! // The outer `?` is the ring's error; each entry has its own result.
//! if let Ok(read) = &results[read] {
//!     println!("read {:?}", read.data);
//! }
//! if let Ok(add) = &results[add] {
//!     println!("counter was {}", add.value);
//! }
//! gmem.ring_close(ring)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every method returns [`Error`], which carries the operation, the positive Linux errno
//! ([`Error::errno`]) and, for READ, WRITE, READV and WRITEV that failed midway, the progress the daemon
//! reported. It converts into [`std::io::Error`] with that errno as the OS error.
//!
//! # Modules
//!
//! [`wire`] is the byte layout (the Rust mirror of `proto/gmem_wire.h`), public for tools that need exact
//! frames. `sys` (private) declares the few C functions the crate calls; it and the ring's shared-memory accesses
//! hold all the crate's `unsafe` code, each block with its `SAFETY` argument.

#![deny(missing_docs)]

mod client;
mod error;
mod ring;
mod sys;
mod types;
pub mod wire;

pub use client::{Client, default_socket_path};
pub use error::{Error, Operation, Origin};
pub use ring::{Batch, Output, Ring};
pub use types::{
    AtomicOp, Attributes, Event, GpcHandle, Info, InvalidationReason, PageState, Segment, Stats, VectorProgress, Width,
};
pub use wire::RawAtomic;
