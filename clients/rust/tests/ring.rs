//! The shared-memory ring transport against a real gmemd (GMEMD_BINARY): every ring operation, batches larger than
//! the ring, the entry error rules, setup and close rules, the doorbell path, and the daemon dying under a ring.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Daemon;
use gmem::wire::{RawAtomic, errno};
use gmem::{AtomicOp, Attributes, Event, GpcHandle, InvalidationReason, Origin, Segment, Width};

const MIB: u64 = 1 << 20;

#[test]
fn ring_data_path() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let mut r = c.ring(64, 1 << 20).unwrap();
    assert_eq!((r.entries(), r.data_size()), (64, 1 << 20));
    r.ping().unwrap();
    r.write(0x1ffc, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let mut eight = [0u8; 8];
    r.read(0x1ffc, &mut eight).unwrap();
    assert_eq!(eight, [1, 2, 3, 4, 5, 6, 7, 8]);
    c.read(0x1ffc, &mut eight).unwrap();
    assert_eq!(eight, [1, 2, 3, 4, 5, 6, 7, 8], "the socket sees the ring's write");
    let segs = [Segment::new(0x2000, 2), Segment::new(0x4000, 3)];
    r.writev(&segs, &[0x11, 0x22, 0x33, 0x44, 0x55]).unwrap();
    let mut five = [0u8; 5];
    r.readv(&segs, &mut five).unwrap();
    assert_eq!(five, [0x11, 0x22, 0x33, 0x44, 0x55]);
    assert_eq!(r.atomic(0x6000, Width::U64, AtomicOp::Store(41)).unwrap(), 0);
    assert_eq!(r.atomic(0x6000, Width::U64, AtomicOp::FetchAdd(1)).unwrap(), 41);
    assert_eq!(c.atomic(0x6000, Width::U64, AtomicOp::Load).unwrap(), 42);
    let h = c.gpc_activate(0x5000, 64).unwrap();
    r.gpc_write(h, 8, &[0xde, 0xad, 0xbe, 0xef]).unwrap();
    let mut four = [0u8; 4];
    r.gpc_read(h, 8, &mut four).unwrap();
    assert_eq!(four, [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(r.gpc_atomic(h, 8, Width::U32, AtomicOp::CmpXchg { expected: 0xefbeadde, new: 7 }).unwrap(), 0xefbeadde);
    // A conversion invalidates the GPC: ESTALE on the ring, the event on the socket.
    c.set_attributes(0x5000, 0x1000, Attributes::SHARED).unwrap();
    assert_eq!(
        c.poll_event().unwrap(),
        Some(Event::GpcInvalidated { handle: h, reason: InvalidationReason::AttributesChanged })
    );
    assert_eq!(r.gpc_read(h, 8, &mut four).unwrap_err().errno(), errno::ESTALE);
    c.gpc_refresh(h, 0x5000, 64).unwrap();
    r.gpc_read(h, 8, &mut four).unwrap();
    assert_eq!(four, [7, 0, 0, 0]);
    c.ring_close(r).unwrap();
    c.ping().unwrap();
}

#[test]
fn ring_batches_and_entry_errors() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let mut r = c.ring(4, 64 * 1024).unwrap();
    // More entries than slots: submitted as completions free them; results in order.
    let mut b = r.batch();
    let mut reads = Vec::new();
    for k in 0..20u64 {
        b.write(0x10000 + 16 * k, &[k as u8; 16]).unwrap();
        reads.push(b.read(0x10000 + 16 * k, 16).unwrap());
    }
    let adds: Vec<usize> = (0..10).map(|_| b.atomic(0x100, Width::U32, AtomicOp::FetchAdd(1))).collect();
    let ping = b.ping();
    assert_eq!(b.len(), 51);
    let results = b.submit().unwrap();
    assert_eq!(results.len(), 51);
    for (k, &i) in reads.iter().enumerate() {
        assert_eq!(results[i].as_ref().unwrap().data, vec![k as u8; 16]);
    }
    let olds: Vec<u64> = adds.iter().map(|&i| results[i].as_ref().unwrap().value).collect();
    assert_eq!(olds, (0..10).collect::<Vec<u64>>(), "in order, each once");
    assert_eq!(results[ping].as_ref().unwrap().len, 0);

    // Each entry gets its socket request's error; one failing entry does not fail the others.
    let mut b = r.batch();
    let outside = b.read(64 * MIB - 4, 8).unwrap();
    let fine = b.read(0, 4).unwrap();
    let stale_handle = b.gpc_read(GpcHandle::from_raw(0xdead), 0, 4).unwrap();
    let bad_width = b.atomic_raw(0x100, RawAtomic { op: 0, width: 3, operand: 0, expected: 0 });
    let misaligned = b.atomic(0x102, Width::U32, AtomicOp::Load);
    let no_segments = b.readv(&[]).unwrap();
    let results = b.submit().unwrap();
    let errno_of = |i: usize| results[i].as_ref().unwrap_err().errno();
    assert_eq!(errno_of(outside), errno::EFAULT);
    assert!(results[fine].is_ok());
    assert_eq!(errno_of(stale_handle), errno::ENOENT);
    assert_eq!(errno_of(bad_width), errno::EINVAL);
    assert_eq!(errno_of(misaligned), errno::EINVAL);
    assert_eq!(errno_of(no_segments), errno::EINVAL);
    assert_eq!(results[outside].as_ref().unwrap_err().origin(), Origin::Daemon);
    // Larger than the data area: refused before submission.
    let e = r.read(0, &mut vec![0u8; 64 * 1024 + 1]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EMSGSIZE, Origin::Client));
    r.ping().unwrap();
}

#[test]
fn ring_setup_and_close_rules() {
    let d = Daemon::start(&["--max-rings", "2"]);
    let mut c = d.connect();
    for (entries, size) in [(0, 4096), (3, 4096), (8192, 4096), (4, 0), (4, 100), (4, (64 << 20) + 4096)] {
        let e = c.ring(entries, size).unwrap_err();
        assert_eq!((e.errno(), e.origin()), (errno::EINVAL, Origin::Daemon), "entries {entries} size {size}");
    }
    let a = c.ring(1, 4096).unwrap();
    let b = c.ring(4096, 64 << 20).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(c.ring(1, 4096).unwrap_err().errno(), errno::ENOSPC);
    let id = a.id();
    c.ring_close(a).unwrap();
    assert_eq!(c.ring_close_id(id).unwrap_err().errno(), errno::ENOENT);
    let mut again = c.ring(2, 8192).unwrap();
    again.ping().unwrap();
    // A ring of another connection is refused without sending.
    let mut other = d.connect();
    let e = other.ring_close(b).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EINVAL, Origin::Client));
}

#[test]
fn ring_doorbell_path_and_read_only() {
    // --ring-poll-us 0: the poller sleeps as soon as the rings are empty, so every submission rings the doorbell
    // and every wait sleeps on the completion doorbell.
    let d = Daemon::start(&["--ring-poll-us", "0", "--read-only-gid", "0"]);
    let mut c = d.connect();
    let mut r = c.ring(8, 4096).unwrap();
    for _ in 0..50 {
        r.ping().unwrap();
        thread::sleep(Duration::from_micros(200));
    }
    let mut buf = [0u8; 4];
    r.read(0, &mut buf).unwrap();
    assert_eq!(r.write(0, &[1]).unwrap_err().errno(), errno::EPERM, "read-only on the ring too");
    assert_eq!(r.atomic(0, Width::U8, AtomicOp::FetchAdd(1)).unwrap_err().errno(), errno::EPERM);
    assert_eq!(r.atomic(0, Width::U8, AtomicOp::Load).unwrap(), 0);
}

#[test]
fn ring_threads() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let rings: Vec<_> = (0..3).map(|_| c.ring(16, 4096).unwrap()).collect();
    let workers: Vec<_> = rings
        .into_iter()
        .map(|mut r| {
            thread::spawn(move || {
                for _ in 0..200 {
                    r.atomic(0x200, Width::U64, AtomicOp::FetchAdd(1)).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(c.atomic(0x200, Width::U64, AtomicOp::Load).unwrap(), 600);
}

#[test]
fn ring_sigkill_mid_wait() {
    let mut d = Daemon::start(&[]);
    let mut c = d.connect();
    let mut r = c.ring(8, 4096).unwrap();
    r.ping().unwrap();
    d.stop();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let mut buf = [0u8; 8];
        tx.send(r.read(0, &mut buf)).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the entry waits while the daemon is stopped");
    let started = Instant::now();
    d.kill();
    let e = rx.recv_timeout(Duration::from_secs(10)).expect("the ring call returned after SIGKILL").unwrap_err();
    assert_eq!(e.errno(), errno::ECONNRESET, "{e}");
    assert!(e.is_fatal() && started.elapsed() < Duration::from_secs(10));
    waiter.join().unwrap();
    let e = c.ping().unwrap_err();
    assert!([errno::ECONNRESET, errno::EPIPE].contains(&e.errno()), "{e}");
}

#[test]
fn ring_timeout() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let mut r = c.ring(8, 4096).unwrap();
    r.set_timeout(Some(Duration::from_millis(200)));
    r.ping().unwrap();
    d.stop();
    let e = r.ping().unwrap_err();
    d.signal("CONT");
    assert_eq!(e.errno(), errno::ETIMEDOUT);
    assert_eq!(r.ping().unwrap_err().errno(), errno::ETIMEDOUT, "a timed-out ring stays failed");
    c.ping().unwrap();
}
