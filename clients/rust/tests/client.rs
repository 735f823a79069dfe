//! Every Client method against a real gmemd (GMEMD_BINARY), with a sample of each error rule, events, and the
//! daemon dying under the client.

mod common;

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Daemon;
use gmem::wire::{RawAtomic, errno};
use gmem::{
    AtomicOp, Attributes, Client, Error, Event, GpcHandle, InvalidationReason, Operation, Origin, Segment, Width,
};

const MIB: u64 = 1 << 20;

fn errno_of<T: std::fmt::Debug>(r: Result<T, Error>) -> i32 {
    let e = r.expect_err("expected an error");
    assert_eq!(e.origin(), Origin::Daemon, "{e}");
    e.errno()
}

#[test]
fn hello_info_ping_echo() {
    let d = Daemon::start(&["--max-gpcs", "16"]);
    let mut c = d.connect();
    let i = *c.info();
    assert_eq!(i.version, 1);
    assert!(i.events() && i.device_ops(), "EVENTS|DEVICE_OPS granted: {i:?}");
    assert_eq!(i.region_size, 64 * MIB);
    assert!(i.page_size >= 4096 && i.page_size.is_power_of_two());
    assert_eq!(i.folio_size % i.page_size, 0);
    assert_eq!(i.max_payload, 1 << 20);
    assert_eq!(i.max_gpcs, 16);
    assert!(i.max_segments >= 64);
    assert!(i.no_direct_map() && !i.read_only() && !i.secretmem() && !i.recovered());
    c.ping().unwrap();
    assert_eq!(c.echo(b"gmemd").unwrap(), b"gmemd");
    let big = vec![0x5a; i.max_payload as usize];
    assert_eq!(c.echo(&big).unwrap(), big);
    // A second connection sees the same region.
    assert_eq!(d.connect().info().region_id, i.region_id);
}

#[test]
fn read_write() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let max = c.info().max_payload as usize;
    let mut buf = [0xffu8; 16];
    c.read(0x1000, &mut buf).unwrap();
    assert_eq!(buf, [0; 16], "fresh memory is zero");
    c.write(0x1ffc, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let mut eight = [0u8; 8];
    c.read(0x1ffc, &mut eight).unwrap();
    assert_eq!(eight, [1, 2, 3, 4, 5, 6, 7, 8], "across a page boundary");
    c.read(64 * MIB - 1, &mut []).unwrap();
    c.write(64 * MIB - 1, &[]).unwrap();
    // The largest single transfers.
    let data: Vec<u8> = (0..max - 16).map(|k| k as u8).collect();
    c.write(MIB, &data).unwrap();
    let mut back = vec![0u8; max];
    c.read(MIB, &mut back).unwrap();
    assert_eq!(&back[..max - 16], &data[..]);
    assert_eq!(&back[max - 16..], &[0; 16]);
}

#[test]
fn readv_writev() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let segs = [Segment::new(0x2000, 2), Segment::new(0x4000, 3)];
    c.writev(&segs, &[0x11, 0x22, 0x33, 0x44, 0x55]).unwrap();
    let mut out = [0u8; 5];
    c.readv(&segs, &mut out).unwrap();
    assert_eq!(out, [0x11, 0x22, 0x33, 0x44, 0x55]);
    // Overlapping segments: the later wins; empty segments transfer nothing.
    c.writev(&[Segment::new(0x2000, 2), Segment::new(0x2001, 2)], &[0xaa, 0xbb, 0xcc, 0xdd]).unwrap();
    let mut out = [0u8; 4];
    c.readv(&[Segment::new(0x2000, 3), Segment::new(0x4000, 0), Segment::new(0x4000, 1)], &mut out).unwrap();
    assert_eq!(out, [0xaa, 0xcc, 0xdd, 0x33]);
    // A chain of max_segments segments.
    let n = c.info().max_segments as usize;
    let chain: Vec<Segment> = (0..n).map(|k| Segment::new(0x10000 + 8 * k as u64, 1)).collect();
    let bytes: Vec<u8> = (0..n).map(|k| k as u8).collect();
    c.writev(&chain, &bytes).unwrap();
    let mut back = vec![0u8; n];
    c.readv(&chain, &mut back).unwrap();
    assert_eq!(back, bytes);
    // Rules: nsegs 0 and over max_segments (EINVAL), Σ len over max_payload (EMSGSIZE), outside (EFAULT).
    assert_eq!(errno_of(c.readv(&[], &mut [])), errno::EINVAL);
    assert_eq!(errno_of(c.writev(&[], &[])), errno::EINVAL);
    let too_many = vec![Segment::new(0, 0); n + 1];
    assert_eq!(errno_of(c.readv(&too_many, &mut [])), errno::EINVAL);
    let half = c.info().max_payload / 2;
    let mut big = vec![0u8; 2 * half as usize + 1];
    assert_eq!(errno_of(c.readv(&[Segment::new(0, half), Segment::new(0, half + 1)], &mut big)), errno::EMSGSIZE);
    let e = c.writev(&[Segment::new(0x3000, 2), Segment::new(64 * MIB, 1)], &[1, 2, 3]).unwrap_err();
    assert_eq!((e.errno(), e.bytes_completed()), (errno::EFAULT, None), "nothing written, no progress");
    let mut two = [9u8; 2];
    c.read(0x3000, &mut two).unwrap();
    assert_eq!(two, [0, 0]);
    // The buffer must match the table: refused by the client, nothing sent.
    let e = c.readv(&segs, &mut [0u8; 4]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EINVAL, Origin::Client));
    let e = c.writev(&segs, &[0u8; 6]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EINVAL, Origin::Client));
    c.ping().unwrap();
}

#[test]
fn gpc_lifecycle() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let h = c.gpc_activate(0x5000, 64).unwrap();
    assert_ne!(h.raw(), 0);
    c.gpc_write(h, 8, &[0xde, 0xad, 0xbe, 0xef]).unwrap();
    let mut four = [0u8; 4];
    c.gpc_read(h, 8, &mut four).unwrap();
    assert_eq!(four, [0xde, 0xad, 0xbe, 0xef]);
    c.read(0x5008, &mut four).unwrap();
    assert_eq!(four, [0xde, 0xad, 0xbe, 0xef], "a GPC writes guest memory");
    c.gpc_read(h, 64, &mut []).unwrap();
    assert_eq!(c.gpc_atomic(h, 8, Width::U32, AtomicOp::CmpXchg { expected: 0xefbeadde, new: 7 }).unwrap(), 0xefbeadde);
    assert_eq!(c.gpc_atomic(h, 8, Width::U32, AtomicOp::Load).unwrap(), 7);
    // The GPC holds a reference on its page.
    let pages = c.page_state(0x5000, 2).unwrap();
    assert_eq!((pages[0].refcount, pages[1].refcount), (1, 0));
    // Refresh moves the window.
    c.write(0x1000, b"0123456789abcdef").unwrap();
    c.gpc_refresh(h, 0x1000, 16).unwrap();
    let mut sixteen = [0u8; 16];
    c.gpc_read(h, 0, &mut sixteen).unwrap();
    assert_eq!(&sixteen, b"0123456789abcdef");
    // Window rules (EINVAL), then the handle (ENOENT).
    assert_eq!(errno_of(c.gpc_read(h, 12, &mut [0u8; 8])), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_write(h, 16, &[1])), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_atomic(h, 2, Width::U32, AtomicOp::Load)), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_activate(0x5000, 0)), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_activate(0x5ff0, 32)), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_refresh(h, 0x5ff0, 32)), errno::EINVAL);
    assert_eq!(errno_of(c.gpc_activate(64 * MIB, 1)), errno::EFAULT);
    assert_eq!(errno_of(c.gpc_refresh(h, 64 * MIB, 1)), errno::EFAULT);
    let mut over = vec![0u8; c.info().max_payload as usize + 1];
    assert_eq!(errno_of(c.gpc_read(h, 0, &mut over)), errno::EMSGSIZE);
    c.gpc_deactivate(h).unwrap();
    let bogus = GpcHandle::from_raw(0xdead_beef);
    assert_eq!(errno_of(c.gpc_deactivate(h)), errno::ENOENT);
    assert_eq!(errno_of(c.gpc_read(bogus, 0, &mut four)), errno::ENOENT);
    assert_eq!(errno_of(c.gpc_write(h, 0, &[1])), errno::ENOENT);
    assert_eq!(errno_of(c.gpc_refresh(h, 0x1000, 16)), errno::ENOENT);
    assert_eq!(errno_of(c.gpc_atomic(bogus, 0, Width::U8, AtomicOp::Load)), errno::ENOENT);
    assert_eq!(c.page_state(0x5000, 1).unwrap()[0].refcount, 0);
    // Closing the connection deactivates its GPCs.
    let h2 = c.gpc_activate(0x7000, 8).unwrap();
    assert_eq!(c.stats().unwrap().get("gpc_active"), Some(1));
    drop(c);
    let mut other = d.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.stats().unwrap().get("gpc_active") != Some(0) {
        assert!(Instant::now() < deadline, "the closed connection's GPC stayed active");
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(errno_of(other.gpc_deactivate(h2)), errno::ENOENT, "handles are per connection");
}

#[test]
fn max_gpcs_enospc() {
    let d = Daemon::start(&["--max-gpcs", "2"]);
    let mut c = d.connect();
    let a = c.gpc_activate(0x7000, 8).unwrap();
    let b = c.gpc_activate(0x7000, 8).unwrap();
    assert_ne!(a, b);
    assert_eq!(errno_of(c.gpc_activate(0x7008, 8)), errno::ENOSPC);
    c.gpc_deactivate(a).unwrap();
    c.gpc_activate(0x7008, 8).unwrap();
}

#[test]
fn atomics_every_op_and_width() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let g = 0x6000;
    assert_eq!(c.atomic(g, Width::U64, AtomicOp::Store(41)).unwrap(), 0);
    assert_eq!(c.atomic(g, Width::U64, AtomicOp::FetchAdd(1)).unwrap(), 41);
    assert_eq!(c.atomic(g, Width::U64, AtomicOp::Load).unwrap(), 42);
    assert_eq!(c.atomic(g, Width::U32, AtomicOp::CmpXchg { expected: 5, new: 7 }).unwrap(), 42);
    assert_eq!(c.atomic(g, Width::U32, AtomicOp::CmpXchg { expected: 42, new: 7 }).unwrap(), 42);
    assert_eq!(c.atomic(g, Width::U16, AtomicOp::Xchg(0xffff)).unwrap(), 7);
    assert_eq!(c.atomic(g, Width::U8, AtomicOp::FetchOr(0x80)).unwrap(), 0xff);
    assert_eq!(c.atomic(g, Width::U64, AtomicOp::FetchAnd(0xff00)).unwrap(), 0xffff);
    let mut eight = [0u8; 8];
    c.read(g, &mut eight).unwrap();
    assert_eq!(eight, [0, 0xff, 0, 0, 0, 0, 0, 0], "little-endian in guest memory");
    assert_eq!(c.atomic(g + 1, Width::U8, AtomicOp::FetchAdd(2)).unwrap(), 0xff);
    assert_eq!(c.atomic(g + 1, Width::U8, AtomicOp::Load).unwrap(), 1, "wraps at the width");
    // Rule 4 (raw fields), rule 6 (alignment), rule 7 (bounds).
    let raw = |op, width, operand, expected| RawAtomic { op, width, operand, expected };
    assert_eq!(errno_of(c.atomic_raw(g, raw(0, 3, 0, 0))), errno::EINVAL, "width 3");
    assert_eq!(errno_of(c.atomic_raw(g, raw(7, 8, 0, 0))), errno::EINVAL, "op 7");
    assert_eq!(errno_of(c.atomic(g, Width::U8, AtomicOp::Store(0x100))), errno::EINVAL, "operand too wide");
    assert_eq!(errno_of(c.atomic_raw(g, raw(4, 4, 1, 1))), errno::EINVAL, "expected unused");
    assert_eq!(errno_of(c.atomic(g + 2, Width::U32, AtomicOp::Load)), errno::EINVAL, "misaligned");
    assert_eq!(errno_of(c.atomic(64 * MIB, Width::U64, AtomicOp::Load)), errno::EFAULT);
    let h = c.gpc_activate(g, 16).unwrap();
    assert_eq!(c.gpc_atomic_raw(h, 8, AtomicOp::FetchAdd(3).raw(Width::U64)).unwrap(), 0);
    assert_eq!(errno_of(c.gpc_atomic_raw(h, 8, raw(0, 3, 0, 0))), errno::EINVAL);
}

#[test]
fn attributes_discard_page_state_stats() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let ps = u64::from(c.info().page_size);
    let p = c.page_state(0x5000, 1).unwrap()[0];
    assert!(p.private() && !p.accessible(), "pages start private and zapped: {p:?}");
    c.set_attributes(0x5000, ps, Attributes::SHARED).unwrap();
    let p = c.page_state(0x5000, 1).unwrap()[0];
    assert!(!p.private() && p.accessible(), "{p:?}");
    c.set_attributes(0x5000, ps, Attributes::PRIVATE).unwrap();
    assert!(c.page_state(0x5000, 1).unwrap()[0].private());
    assert!(c.page_state(0x1000, 0).unwrap().is_empty());
    c.write(0x5010, &[1, 2, 3]).unwrap();
    c.discard(0x5000, ps).unwrap();
    let mut three = [9u8; 3];
    c.read(0x5010, &mut three).unwrap();
    assert_eq!(three, [0, 0, 0]);
    // Shape (EINVAL), payload bound (EMSGSIZE), bounds (EFAULT).
    assert_eq!(errno_of(c.set_attributes(0x100, ps, Attributes::SHARED)), errno::EINVAL);
    assert_eq!(errno_of(c.set_attributes(0, ps / 2, Attributes::SHARED)), errno::EINVAL);
    assert_eq!(errno_of(c.set_attributes(0, 0, Attributes::SHARED)), errno::EINVAL);
    assert_eq!(errno_of(c.set_attributes(0, ps, Attributes::from_raw(9))), errno::EINVAL);
    assert_eq!(errno_of(c.set_attributes(64 * MIB - ps, 2 * ps, Attributes::SHARED)), errno::EFAULT);
    assert_eq!(errno_of(c.discard(0x100, ps)), errno::EINVAL);
    assert_eq!(errno_of(c.discard(0, 0)), errno::EINVAL);
    assert_eq!(errno_of(c.discard(64 * MIB, ps)), errno::EFAULT);
    assert_eq!(errno_of(c.page_state(0x10, 1)), errno::EINVAL);
    assert_eq!(errno_of(c.page_state(0, c.info().max_payload / 4 + 1)), errno::EMSGSIZE);
    assert_eq!(errno_of(c.page_state(64 * MIB - ps, 2)), errno::EFAULT);
    let s = c.stats().unwrap();
    for name in ["reads", "writes", "bytes_read", "bytes_written", "restores", "zaps", "errors", "connections"] {
        assert!(s.get(name).is_some(), "STATS lacks {name}: {s:?}");
    }
    assert_eq!(s.get("writes"), Some(1));
    assert_eq!(s.get("bytes_read"), Some(3));
    assert_eq!(s.get("errors"), Some(11));
}

#[test]
fn read_write_error_rules() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let max = c.info().max_payload as usize;
    assert_eq!(errno_of(c.read(64 * MIB, &mut [])), errno::EFAULT, "len 0 at the end");
    assert_eq!(errno_of(c.read(64 * MIB - 4, &mut [0u8; 8])), errno::EFAULT);
    assert_eq!(errno_of(c.read(u64::MAX - 7, &mut [0u8; 16])), errno::EFAULT, "overflow");
    assert_eq!(errno_of(c.write(64 * MIB - 2, &[1, 2, 3, 4])), errno::EFAULT);
    assert_eq!(errno_of(c.read(0, &mut vec![0u8; max + 1])), errno::EMSGSIZE, "rule 6: the daemon's");
    let e = c.write(0, &vec![0u8; max - 15]).unwrap_err();
    assert_eq!((e.errno(), e.origin(), e.operation()), (errno::EMSGSIZE, Origin::Client, Operation::Write));
    let e = c.echo(&vec![0u8; max + 1]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EMSGSIZE, Origin::Client));
    // None of these broke the connection; the failed WRITE wrote nothing.
    let mut two = [9u8; 2];
    c.read(64 * MIB - 2, &mut two).unwrap();
    assert_eq!(two, [0, 0]);
    // Display names the operation and the errno; io::Error keeps the errno.
    let e = c.read(64 * MIB, &mut []).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("READ") && text.contains("EFAULT"), "{text}");
    let io: std::io::Error = e.into();
    assert_eq!(io.raw_os_error(), Some(errno::EFAULT));
}

#[test]
fn read_only_connection_eperm() {
    let d = Daemon::start(&["--read-only-gid", "0"]);
    let mut c = d.connect();
    assert!(c.info().read_only());
    let mut buf = [0u8; 4];
    c.read(0x1000, &mut buf).unwrap();
    assert_eq!(c.atomic(0x1000, Width::U32, AtomicOp::Load).unwrap(), 0);
    assert_eq!(errno_of(c.write(0x1000, &[1])), errno::EPERM);
    assert_eq!(errno_of(c.writev(&[Segment::new(0x1000, 1)], &[1])), errno::EPERM);
    assert_eq!(errno_of(c.set_attributes(0, 0x1000, Attributes::SHARED)), errno::EPERM);
    assert_eq!(errno_of(c.discard(0, 0x1000)), errno::EPERM);
    assert_eq!(errno_of(c.atomic(0x1000, Width::U32, AtomicOp::FetchAdd(1))), errno::EPERM);
    let h = c.gpc_activate(0x1000, 8).unwrap();
    assert_eq!(errno_of(c.gpc_write(h, 0, &[1])), errno::EPERM);
    assert_eq!(errno_of(c.gpc_atomic(h, 0, Width::U8, AtomicOp::Store(1))), errno::EPERM);
    c.gpc_read(h, 0, &mut buf).unwrap();
}

#[test]
fn connection_limit_ebusy_and_connect_errors() {
    let d = Daemon::start(&["--max-connections", "1"]);
    // The readiness probe's connection may still count for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let _first = loop {
        match Client::connect(&d.socket) {
            Ok(c) => break c,
            Err(e) if e.errno() == errno::EBUSY && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let e = Client::connect(&d.socket).unwrap_err();
    assert_eq!((e.errno(), e.operation()), (errno::EBUSY, Operation::Hello), "{e}");
    let e = Client::connect(d.socket.with_file_name("absent.sock")).unwrap_err();
    assert_eq!((e.errno(), e.operation()), (2 /* ENOENT */, Operation::Connect));
}

#[test]
fn own_conversion_invalidates_gpc_event_then_estale() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let h = c.gpc_activate(0x5000, 64).unwrap();
    let other = c.gpc_activate(0x9000, 64).unwrap();
    assert_eq!(c.poll_event().unwrap(), None);
    c.set_attributes(0x5000, 0x1000, Attributes::SHARED).unwrap();
    // The event preceded the reply, so it is queued when set_attributes returns.
    assert_eq!(c.pending_events(), 1);
    assert_eq!(
        c.poll_event().unwrap(),
        Some(Event::GpcInvalidated { handle: h, reason: InvalidationReason::AttributesChanged })
    );
    assert_eq!(c.poll_event().unwrap(), None, "only the GPC on the converted page");
    let mut four = [0u8; 4];
    assert_eq!(errno_of(c.gpc_read(h, 0, &mut four)), errno::ESTALE);
    assert_eq!(errno_of(c.gpc_write(h, 0, &[1])), errno::ESTALE);
    assert_eq!(errno_of(c.gpc_atomic(h, 0, Width::U32, AtomicOp::Load)), errno::ESTALE);
    c.gpc_read(other, 0, &mut four).unwrap();
    c.gpc_refresh(h, 0x5000, 64).unwrap();
    c.gpc_read(h, 0, &mut four).unwrap();
    c.discard(0x5000, 0x1000).unwrap();
    assert_eq!(c.next_event().unwrap(), Event::GpcInvalidated { handle: h, reason: InvalidationReason::Discarded });
    assert_eq!(errno_of(c.gpc_read(h, 0, &mut four)), errno::ESTALE);
    c.gpc_deactivate(h).unwrap();
}

/// poll(2) on one fd for readability, for testing AsRawFd as an application's event loop would use it.
fn fd_readable(fd: i32, timeout_ms: i32) -> bool {
    #[repr(C)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    unsafe extern "C" {
        fn poll(fds: *mut PollFd, nfds: std::os::raw::c_ulong, timeout: i32) -> i32;
    }
    let mut p = PollFd { fd, events: 1, revents: 0 };
    // SAFETY: one live pollfd, nfds 1; poll writes only its revents.
    unsafe { poll(&mut p, 1, timeout_ms) > 0 }
}

#[test]
fn events_from_another_connection_wake_the_fd() {
    let d = Daemon::start(&[]);
    let mut a = d.connect();
    let mut b = d.connect();
    let h = a.gpc_activate(0x8000, 16).unwrap();
    assert!(!fd_readable(a.as_raw_fd(), 0), "nothing pending yet");
    assert_eq!(a.next_event_timeout(Duration::from_millis(50)).unwrap(), None);
    b.set_attributes(0x8000, 0x1000, Attributes::SHARED).unwrap();
    // Another connection's conversion: a's socket becomes readable, and the event is read from it.
    assert!(fd_readable(a.as_raw_fd(), 10_000), "the event made the socket readable");
    assert_eq!(a.pending_events(), 0, "not read yet");
    assert_eq!(
        a.next_event_timeout(Duration::from_secs(10)).unwrap(),
        Some(Event::GpcInvalidated { handle: h, reason: InvalidationReason::AttributesChanged })
    );
    assert_eq!(b.poll_event().unwrap(), None, "b has no GPC");
    // Events that arrive while a waits for a reply are queued, and no longer make the socket readable.
    a.gpc_refresh(h, 0x8000, 16).unwrap();
    b.discard(0x8000, 0x1000).unwrap();
    thread::sleep(Duration::from_millis(50));
    a.ping().unwrap();
    assert_eq!(a.pending_events(), 1);
    assert!(!fd_readable(a.as_raw_fd(), 0));
    assert_eq!(
        a.poll_event().unwrap(),
        Some(Event::GpcInvalidated { handle: h, reason: InvalidationReason::Discarded })
    );
}

#[test]
fn sigkill_between_calls() {
    let mut d = Daemon::start(&[]);
    let mut c = d.connect();
    c.write(0x1000, &[1, 2, 3]).unwrap();
    d.kill();
    let started = Instant::now();
    let e = c.read(0x1000, &mut [0u8; 3]).unwrap_err();
    assert!([errno::ECONNRESET, errno::EPIPE].contains(&e.errno()), "{e}");
    assert!(e.is_fatal() && e.operation() == Operation::Read);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection stays failed, with the same errno, for every method.
    assert_eq!(c.ping().unwrap_err().errno(), e.errno());
    assert_eq!(c.stats().unwrap_err().errno(), e.errno());
    assert!(c.poll_event().unwrap_err().is_fatal());
    let e = Client::connect(&d.socket).unwrap_err();
    assert_eq!(e.operation(), Operation::Connect, "{e}");
}

#[test]
fn sigkill_mid_call() {
    let mut d = Daemon::start(&[]);
    let mut c = d.connect();
    c.ping().unwrap();
    // Stop the daemon so that the call is surely in flight, then kill it under the waiting call.
    d.stop();
    let (tx, rx) = mpsc::channel();
    let caller = thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        tx.send(c.read(0, &mut buf)).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the call waits while the daemon is stopped");
    d.kill();
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("the call returned after SIGKILL");
    let e = r.unwrap_err();
    assert!([errno::ECONNRESET, errno::EPIPE].contains(&e.errno()), "{e}");
    caller.join().unwrap();
}

#[test]
fn timeout_on_a_stopped_daemon() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    c.set_timeout(Some(Duration::from_millis(200))).unwrap();
    c.ping().unwrap();
    d.stop();
    let started = Instant::now();
    let e = c.ping().unwrap_err();
    d.signal("CONT");
    assert_eq!(e.errno(), errno::ETIMEDOUT, "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(e.is_fatal());
    assert_eq!(c.ping().unwrap_err().errno(), errno::ETIMEDOUT);
}

#[test]
fn client_is_shareable_across_threads() {
    let d = Daemon::start(&[]);
    let shared = std::sync::Arc::new(std::sync::Mutex::new(d.connect()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let c = shared.clone();
            thread::spawn(move || {
                for _ in 0..100 {
                    c.lock().unwrap().atomic(0x100, Width::U64, AtomicOp::FetchAdd(1)).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Connection per thread, too: atomics are atomic across connections.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = d.connect();
            thread::spawn(move || {
                for _ in 0..100 {
                    c.atomic(0x100, Width::U64, AtomicOp::FetchAdd(1)).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(shared.lock().unwrap().atomic(0x100, Width::U64, AtomicOp::Load).unwrap(), 800);
}

#[test]
fn map_region_only_when_named() {
    use std::os::unix::fs::FileExt;

    // Refused by default, whoever asks.
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    assert!(!c.info().may_map());
    assert_eq!(errno_of(c.map_region()), errno::EPERM);

    let uid = common::own_uid().to_string();
    let d = Daemon::start(&["--allow-map-uid", &uid]);
    let mut c = d.connect();
    assert!(c.info().may_map());
    c.write(0x7000, b"via gmemd").unwrap();
    let (memfd, size) = c.map_region().unwrap();
    assert_eq!(size, c.info().region_size);
    let file = std::fs::File::from(memfd);
    assert_eq!(file.metadata().unwrap().len(), size);
    let mut seen = [0u8; 9];
    file.read_exact_at(&mut seen, 0x7000).unwrap();
    assert_eq!(&seen, b"via gmemd");
    file.write_all_at(b"via the memfd", 0x8000).unwrap();
    let mut back = [0u8; 13];
    c.read(0x8000, &mut back).unwrap();
    assert_eq!(&back, b"via the memfd");
}
