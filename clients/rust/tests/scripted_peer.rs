//! The golden frames of `proto/vectors/frames.txt` without a daemon: every request this crate can send is
//! encoded and compared byte for byte, and every reply and event is decoded, through a real `Client` talking
//! to a scripted peer on a socket pair.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

use common::{frame_map, frames};
use gmem::wire::{self, FLAG_EVENT, FLAG_REPLY, HEADER_SIZE, Header, RawAtomic, Request, errno};
use gmem::{AtomicOp, Attributes, Client, Event, GpcHandle, InvalidationReason, Origin, Segment, Width};

fn seg(gpa: u64, len: u32) -> Segment {
    Segment::new(gpa, len)
}

/// Every `request.<x>` of the file, as this crate encodes it.
fn golden_requests() -> Vec<(&'static str, u32, Request<'static>)> {
    const SEGS_READV: &[Segment] = &[Segment::new(0x1000, 4), Segment::new(0x3000, 2)];
    const SEGS_WRITEV: &[Segment] = &[Segment::new(0x2000, 2), Segment::new(0x4000, 3)];
    const SEGS_WRITEV_PARTIAL: &[Segment] = &[Segment::new(0x1000, 4), Segment::new(0x8000, 4)];
    vec![
        ("hello", 1, Request::Hello { version: 1, features: wire::feature::EVENTS }),
        ("ping", 2, Request::Ping { payload: b"gmemd" }),
        ("read", 3, Request::Read { gpa: 0x1000, len: 16 }),
        ("write", 4, Request::Write { gpa: 0x2000, data: &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88] }),
        ("gpc_activate", 5, Request::GpcActivate { gpa: 0x3000, len: 64 }),
        ("gpc_deactivate", 6, Request::GpcDeactivate { handle: 1 }),
        ("gpc_read", 7, Request::GpcRead { handle: 1, offset: 8, len: 4 }),
        ("gpc_write", 8, Request::GpcWrite { handle: 1, offset: 0, data: &[1, 2, 3, 4] }),
        ("gpc_refresh", 9, Request::GpcRefresh { handle: 1, gpa: 0x5000, len: 64 }),
        ("set_attributes", 10, Request::SetAttributes { gpa: 0x200000, size: 0x200000, attributes: 8 }),
        ("discard", 11, Request::Discard { gpa: 0x400000, size: 0x1000 }),
        ("stats", 12, Request::Stats),
        ("page_state", 13, Request::PageState { gpa: 0x200000, npages: 3 }),
        ("readv", 14, Request::Readv { segments: SEGS_READV }),
        ("writev", 15, Request::Writev { segments: SEGS_WRITEV, data: &[0x11, 0x22, 0x33, 0x44, 0x55] }),
        ("atomic", 16, Request::Atomic { gpa: 0x6000, atomic: AtomicOp::FetchAdd(1).raw(Width::U64) }),
        (
            "gpc_atomic",
            17,
            Request::GpcAtomic {
                handle: 1,
                offset: 8,
                atomic: AtomicOp::CmpXchg { expected: 5, new: 7 }.raw(Width::U32),
            },
        ),
        ("hello_device_ops", 18, Request::Hello { version: 1, features: 3 }),
        ("hello_version_2", 100, Request::Hello { version: 2, features: 0 }),
        ("read_before_hello", 101, Request::Read { gpa: 0, len: 8 }),
        ("write_partial", 102, Request::Write { gpa: 0x1ffc, data: &[0, 1, 2, 3, 4, 5, 6, 7] }),
        ("writev_partial", 110, Request::Writev { segments: SEGS_WRITEV_PARTIAL, data: &[0, 1, 2, 3, 4, 5, 6, 7] }),
        ("ring_setup", 19, Request::RingSetup { entries: 64, data_size: 0x100000 }),
        ("ring_close", 20, Request::RingClose { ring_id: 1 }),
        ("map_region", 21, Request::MapRegion),
    ]
}

#[test]
fn every_golden_request_encodes_byte_exact() {
    let map = frame_map();
    let requests = golden_requests();
    for (name, id, req) in &requests {
        let Some(golden) = map.get(&format!("request.{name}")) else {
            // The ring frames joined the file with the ring transport (PROTOCOL.md 5.18, 5.19).
            assert!(name.starts_with("ring_"), "request.{name} is missing from frames.txt");
            continue;
        };
        assert_eq!(&req.encode(*id).expect("a golden frame fits"), golden, "request.{name}");
        assert_eq!(req.payload_len() + HEADER_SIZE, golden.len(), "request.{name} length");
    }
    let covered: Vec<String> = requests.iter().map(|(n, _, _)| format!("request.{n}")).collect();
    for name in map.keys().filter(|n| n.starts_with("request.")) {
        assert!(covered.contains(name), "{name} is not encoded by this test");
    }
}

#[test]
fn invalid_frames_that_the_encoder_can_express() {
    let map = frame_map();
    // Bad atomic width and bad attribute bits are encodable on purpose: RawAtomic and Attributes::from_raw.
    let bad_width = Request::Atomic { gpa: 0x6000, atomic: RawAtomic { op: 0, width: 3, operand: 0, expected: 0 } };
    assert_eq!(bad_width.encode(111).expect("fits"), map["invalid.atomic_bad_width"]);
    let bad_bits = Request::SetAttributes { gpa: 0, size: 0x1000, attributes: Attributes::from_raw(9).raw() };
    assert_eq!(bad_bits.encode(105).expect("fits"), map["invalid.set_attributes_bad_bits"]);
}

#[test]
fn every_golden_reply_and_event_header_decodes() {
    for (name, bytes) in frames() {
        let h = Header::decode(&bytes).expect("16 header bytes");
        assert_eq!(h.encode().as_slice(), &bytes[..HEADER_SIZE], "{name}");
        if name.starts_with("reply.") {
            assert_eq!(h.flags, FLAG_REPLY, "{name}");
            assert_eq!(h.length as usize, bytes.len(), "{name}");
            assert!(h.status <= 0 && h.status >= -4095, "{name}");
        } else if name.starts_with("event.") {
            assert_eq!((h.flags, h.id, h.status), (FLAG_EVENT, 0, 0), "{name}");
            let ev = Event::decode(h.opcode, &bytes[HEADER_SIZE..]).expect("an event");
            let expected = match name.as_str() {
                "event.gpc_invalidated" => {
                    Event::GpcInvalidated { handle: GpcHandle::from_raw(1), reason: InvalidationReason::Discarded }
                }
                "event.ring_failed" => Event::RingFailed { ring_id: 1, status: -errno::EPROTO },
                other => panic!("{other}: an event this test does not know"),
            };
            assert_eq!(ev, expected);
        } else if name.starts_with("request.") {
            assert_eq!((h.flags, h.status, h.length as usize), (0, 0, bytes.len()), "{name}");
        }
    }
}

#[test]
fn golden_error_statuses_are_the_named_errnos() {
    let map = frame_map();
    let status = |n: &str| -Header::decode(&map[n]).unwrap().status;
    assert_eq!(status("reply.hello_version_2"), errno::EPROTONOSUPPORT);
    assert_eq!(status("reply.read_before_hello"), errno::EPROTO);
    assert_eq!(status("reply.write_partial"), errno::EIO);
    assert_eq!(status("reply.writev_partial"), errno::ENOMEM);
    assert_eq!(status("reply.read_nonzero_flags"), errno::EINVAL);
    assert_eq!(status("reply.unknown_opcode"), errno::EOPNOTSUPP);
    assert_eq!(status("reply.length_too_small"), errno::EMSGSIZE);
    assert_eq!(errno::from_name("ESTALE"), Some(errno::ESTALE));
}

/// A scripted daemon on the other end of a socket pair: for each step it reads one request, checks it equals
/// the golden request (ignoring the id), sends the named frames (reply ids patched to the request's), and
/// finally closes.
fn scripted(steps: Vec<(&'static str, Vec<&'static str>)>) -> (UnixStream, thread::JoinHandle<()>) {
    let map = frame_map();
    let (client_end, mut server) = UnixStream::pair().unwrap();
    let join = thread::spawn(move || {
        for (request, sends) in steps {
            let mut head = [0u8; HEADER_SIZE];
            server.read_exact(&mut head).unwrap();
            let h = Header::decode(&head).unwrap();
            let mut frame = head.to_vec();
            frame.resize(h.length as usize, 0);
            server.read_exact(&mut frame[HEADER_SIZE..]).unwrap();
            let mut golden = map[&format!("request.{request}")].clone();
            golden[8..12].copy_from_slice(&h.id.to_le_bytes());
            assert_eq!(frame, golden, "request.{request}");
            for name in sends {
                let mut out = map[name].clone();
                if name.starts_with("reply.") {
                    out[8..12].copy_from_slice(&h.id.to_le_bytes());
                }
                server.write_all(&out).unwrap();
            }
        }
    });
    (client_end, join)
}

#[test]
fn client_decodes_every_golden_reply() {
    let (stream, server) = scripted(vec![
        ("hello_device_ops", vec!["reply.hello_device_ops"]),
        ("ping", vec!["reply.ping"]),
        ("read", vec!["reply.read"]),
        ("write", vec!["reply.write"]),
        ("gpc_activate", vec!["reply.gpc_activate"]),
        ("gpc_read", vec!["reply.gpc_read"]),
        ("gpc_write", vec!["reply.gpc_write"]),
        ("gpc_refresh", vec!["reply.gpc_refresh"]),
        ("set_attributes", vec!["event.gpc_invalidated", "reply.set_attributes"]),
        ("discard", vec!["reply.discard"]),
        ("stats", vec!["reply.stats"]),
        ("page_state", vec!["reply.page_state"]),
        ("readv", vec!["reply.readv"]),
        ("writev", vec!["reply.writev"]),
        ("atomic", vec!["reply.atomic"]),
        ("gpc_atomic", vec!["reply.gpc_atomic"]),
        ("gpc_deactivate", vec!["reply.gpc_deactivate"]),
        ("write_partial", vec!["reply.write_partial"]),
        ("writev_partial", vec!["reply.writev_partial"]),
        ("ping", vec!["event.gpc_invalidated", "reply.ping"]),
    ]);
    let mut c = Client::from_stream(stream).unwrap();
    let i = *c.info();
    assert_eq!((i.version, i.features, i.page_size, i.folio_size), (1, 3, 4096, 2 << 20));
    assert_eq!((i.region_size, i.region_id, i.max_payload), (1 << 30, 0x0123456789abcdef, 1 << 20));
    assert_eq!((i.max_gpcs, i.region_flags, i.max_segments), (64, 3, 64));
    assert!(i.events() && i.device_ops() && i.no_direct_map() && i.secretmem() && !i.read_only());

    assert_eq!(c.echo(b"gmemd").unwrap(), b"gmemd");
    let mut buf = [0u8; 16];
    c.read(0x1000, &mut buf).unwrap();
    assert_eq!(buf, core::array::from_fn(|k| 0x10 + k as u8));
    c.write(0x2000, &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]).unwrap();
    let h = c.gpc_activate(0x3000, 64).unwrap();
    assert_eq!(h, GpcHandle::from_raw(1));
    let mut four = [0u8; 4];
    c.gpc_read(h, 8, &mut four).unwrap();
    assert_eq!(four, [0xaa, 0xbb, 0xcc, 0xdd]);
    c.gpc_write(h, 0, &[1, 2, 3, 4]).unwrap();
    c.gpc_refresh(h, 0x5000, 64).unwrap();
    assert_eq!(c.pending_events(), 0);
    c.set_attributes(0x200000, 0x200000, Attributes::PRIVATE).unwrap();
    assert_eq!(c.pending_events(), 1, "the event before the reply is queued");
    assert_eq!(
        c.poll_event().unwrap(),
        Some(Event::GpcInvalidated { handle: h, reason: InvalidationReason::Discarded })
    );
    c.discard(0x400000, 0x1000).unwrap();
    let stats = c.stats().unwrap();
    assert_eq!(stats.iter().count(), 14);
    assert_eq!(stats.get("reads"), Some(3));
    assert_eq!(stats.get("bytes_read"), Some(20));
    assert_eq!(stats.get("connections_total"), Some(5));
    assert_eq!(stats.get("no_such_counter"), None);
    let pages = c.page_state(0x200000, 3).unwrap();
    assert_eq!(pages.iter().map(|p| p.refcount).collect::<Vec<_>>(), [2, 0, 65535]);
    assert!(pages[0].accessible() && !pages[0].private());
    assert!(pages[1].private() && !pages[1].accessible());
    let mut six = [0u8; 6];
    c.readv(&[seg(0x1000, 4), seg(0x3000, 2)], &mut six).unwrap();
    assert_eq!(six, [0xaa, 0xbb, 0xcc, 0xdd, 1, 2]);
    c.writev(&[seg(0x2000, 2), seg(0x4000, 3)], &[0x11, 0x22, 0x33, 0x44, 0x55]).unwrap();
    assert_eq!(c.atomic(0x6000, Width::U64, AtomicOp::FetchAdd(1)).unwrap(), 41);
    assert_eq!(c.gpc_atomic(h, 8, Width::U32, AtomicOp::CmpXchg { expected: 5, new: 7 }).unwrap(), 5);
    c.gpc_deactivate(h).unwrap();

    let e = c.write(0x1ffc, &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap_err();
    assert_eq!((e.errno(), e.origin(), e.bytes_completed()), (errno::EIO, Origin::Daemon, Some(4)));
    assert!(e.to_string().contains("WRITE") && e.to_string().contains("4 bytes completed"), "{e}");
    let e = c.writev(&[seg(0x1000, 4), seg(0x8000, 4)], &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
    let p = e.vector_progress().unwrap();
    assert_eq!((p.bytes_completed, p.segment, p.segment_bytes), (4, 1, 0));
    assert_eq!(e.bytes_completed(), Some(4));

    // An event before a reply of another request is queued, too.
    assert_eq!(c.echo(b"gmemd").unwrap(), b"gmemd");
    assert!(matches!(c.poll_event().unwrap(), Some(Event::GpcInvalidated { .. })));
    assert_eq!(c.pending_events(), 0);
    server.join().unwrap();

    // The script is over and the peer closed: polling for events reports it, and every later call fails with
    // ECONNRESET or EPIPE.
    assert_eq!(c.poll_event().unwrap_err().errno(), errno::ECONNRESET);
    let e = c.ping().unwrap_err();
    assert!([errno::ECONNRESET, errno::EPIPE].contains(&e.errno()), "{e}");
    assert!(e.is_fatal());
    assert_eq!(c.ping().unwrap_err().errno(), e.errno());
}

#[test]
fn hello_refused_with_the_highest_version() {
    let (stream, server) = scripted(vec![("hello_device_ops", vec!["reply.hello_version_2"])]);
    let e = Client::from_stream(stream).unwrap_err();
    assert_eq!((e.errno(), e.supported_version()), (errno::EPROTONOSUPPORT, Some(1)));
    assert_eq!(e.operation(), gmem::Operation::Hello);
    server.join().unwrap();
}

#[test]
fn malformed_replies_are_eproto() {
    // A READ's reply to the PING: wrong opcode and id.
    let (stream, server) =
        scripted(vec![("hello_device_ops", vec!["reply.hello_device_ops"]), ("ping", vec!["reply.read"])]);
    let mut c = Client::from_stream(stream).unwrap();
    let e = c.echo(b"gmemd").unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EPROTO, Origin::Connection));
    server.join().unwrap();

    // A non-empty error payload where none is allowed (READ's progress payload on a GPC_WRITE).
    let (stream, mut peer) = UnixStream::pair().unwrap();
    let map = frame_map();
    let mut hello = map["reply.hello_device_ops"].clone();
    hello[8..12].copy_from_slice(&1u32.to_le_bytes());
    peer.write_all(&hello).unwrap();
    let mut bad = map["reply.write_partial"].clone();
    bad[4..6].copy_from_slice(&wire::opcode::GPC_WRITE.to_le_bytes());
    bad[8..12].copy_from_slice(&2u32.to_le_bytes());
    peer.write_all(&bad).unwrap();
    let mut c = Client::from_stream(stream).unwrap();
    let e = c.gpc_write(GpcHandle::from_raw(1), 0, &[1]).unwrap_err();
    assert_eq!(e.errno(), errno::EPROTO, "{e}");
}

#[test]
fn ring_setup_reply_without_descriptors_is_eproto() {
    let (stream, mut peer) = UnixStream::pair().unwrap();
    let mut hello = frame_map()["reply.hello_device_ops"].clone();
    hello[8..12].copy_from_slice(&1u32.to_le_bytes());
    peer.write_all(&hello).unwrap();
    // RING_SETUP reply id=2: ring_id=1 entries=64 data_size=1 MiB mmap_size=0x103000, and no descriptors.
    let header = Header { length: 40, opcode: wire::opcode::RING_SETUP, flags: FLAG_REPLY, id: 2, status: 0 };
    peer.write_all(&header.encode()).unwrap();
    for v in [1u32, 64] {
        peer.write_all(&v.to_le_bytes()).unwrap();
    }
    for v in [0x100000u64, 0x103000] {
        peer.write_all(&v.to_le_bytes()).unwrap();
    }
    let mut c = Client::from_stream(stream).unwrap();
    let e = c.ring(64, 1 << 20).unwrap_err();
    assert_eq!((e.errno(), e.origin(), e.operation()), (errno::EPROTO, Origin::Connection, gmem::Operation::RingSetup));
}

#[test]
fn oversized_frames_are_refused_before_sending() {
    let (stream, server) = scripted(vec![("hello_device_ops", vec!["reply.hello_device_ops"])]);
    let mut c = Client::from_stream(stream).unwrap();
    let max = c.info().max_payload as usize;
    let e = c.write(0, &vec![0u8; max - 15]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EMSGSIZE, Origin::Client));
    let e = c.readv(&[seg(0, 4)], &mut [0u8; 3]).unwrap_err();
    assert_eq!((e.errno(), e.origin()), (errno::EINVAL, Origin::Client));
    assert!(!e.is_fatal());
    let io: std::io::Error = e.into();
    assert_eq!(io.raw_os_error(), Some(errno::EINVAL));
    server.join().unwrap();
}

#[test]
fn ring_layout_matches_the_golden_reply() {
    // RING_SETUP reply: entries=64 data_size=0x100000 mmap_size=0x103000 (PROTOCOL.md 5.18).
    assert_eq!(wire::ring::layout(64, 0x100000), (0x2000, 0x3000, 0x103000));
    assert_eq!(wire::ring::layout(1, 4096), (0x2000, 0x3000, 0x4000));
    assert_eq!(
        wire::ring::layout(4096, 64 << 20),
        (0x1000 + 0x40000, 0x1000 + 0x40000 + 0x20000, 0x61000 + (64 << 20))
    );
    if let Some(reply) = frame_map().get("reply.ring_setup") {
        let p = &reply[HEADER_SIZE..];
        let le32 = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap());
        let le64 = |at: usize| u64::from_le_bytes(p[at..at + 8].try_into().unwrap());
        assert_eq!((le32(0), le32(4), le64(8)), (1, 64, 0x100000));
        assert_eq!(le64(16), wire::ring::layout(64, 0x100000).2);
    }
}

#[test]
fn default_socket_path_order() {
    // Only reads the environment; the cases that depend on it are checked in one test to avoid races.
    let p = gmem::default_socket_path();
    if let Some(s) = std::env::var_os("GMEMD_SOCKET").filter(|s| !s.is_empty()) {
        assert_eq!(p, std::path::PathBuf::from(s));
    } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|s| !s.is_empty()) {
        assert_eq!(p, std::path::PathBuf::from(d).join("gmemd.sock"));
    } else if common::own_uid() == 0 {
        assert_eq!(p, std::path::PathBuf::from("/run/gmemd/gmemd.sock"));
    } else {
        assert_eq!(p, std::path::PathBuf::from("./gmemd.sock"));
    }
}
