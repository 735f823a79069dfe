//! The golden frames of proto/vectors/frames.txt put on a raw socket to the real gmemd (GMEMD_BINARY): every
//! malformed request is refused with exactly the golden reply, and the well-formed requests get the golden
//! replies' headers (and bytes, where they do not depend on memory contents).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::{Daemon, frame_map as frames};
use gmem::wire::{FLAG_REPLY, HEADER_SIZE, Header, errno};

/// Reads one frame; `None` at end of stream.
fn read_frame(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut head = [0u8; HEADER_SIZE];
    match s.read(&mut head[..1]) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("{e}"),
    }
    s.read_exact(&mut head[1..]).unwrap();
    let h = Header::decode(&head).unwrap();
    let mut frame = head.to_vec();
    frame.resize(h.length as usize, 0);
    s.read_exact(&mut frame[HEADER_SIZE..]).unwrap();
    Some(frame)
}

fn hello(s: &mut UnixStream, f: &BTreeMap<String, Vec<u8>>) {
    s.write_all(&f["request.hello_device_ops"]).unwrap();
    let reply = read_frame(s).unwrap();
    let h = Header::decode(&reply).unwrap();
    assert_eq!((h.length, h.flags, h.id, h.status), (64, FLAG_REPLY, 18, 0));
}

#[test]
fn malformed_requests_get_the_golden_replies() {
    let f = frames();
    let d = Daemon::start(&[]);
    let invalid: Vec<&String> = f.keys().filter(|n| n.starts_with("invalid.")).collect();
    assert!(invalid.len() >= 9, "{invalid:?}");
    for name in invalid {
        let x = &name["invalid.".len()..];
        let mut s = d.raw();
        hello(&mut s, &f);
        s.write_all(&f[name.as_str()]).unwrap();
        let reply = read_frame(&mut s).unwrap_or_else(|| panic!("{name}: no reply"));
        assert_eq!(reply, f[&format!("reply.{x}")], "{name}");
        let status = Header::decode(&reply).unwrap().status;
        if status == -errno::EMSGSIZE {
            assert_eq!(read_frame(&mut s), None, "{name}: the connection is closed");
        } else {
            s.write_all(&f["request.ping"]).unwrap();
            assert_eq!(read_frame(&mut s).unwrap(), f["reply.ping"], "{name}: the connection stays open");
        }
    }
}

#[test]
fn hello_rules() {
    let f = frames();
    let d = Daemon::start(&[]);
    // Version 2: EPROTONOSUPPORT with {u32 1}, then close.
    let mut s = d.raw();
    s.write_all(&f["request.hello_version_2"]).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), f["reply.hello_version_2"]);
    assert_eq!(read_frame(&mut s), None);
    // A request before HELLO: EPROTO, then close.
    let mut s = d.raw();
    s.write_all(&f["request.read_before_hello"]).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), f["reply.read_before_hello"]);
    assert_eq!(read_frame(&mut s), None);
    // A second HELLO: EALREADY, the connection stays open.
    let mut s = d.raw();
    hello(&mut s, &f);
    s.write_all(&f["request.hello"]).unwrap();
    let h = Header::decode(&read_frame(&mut s).unwrap()).unwrap();
    assert_eq!((h.length, h.opcode, h.id, h.status), (16, 1, 1, -errno::EALREADY));
    s.write_all(&f["request.ping"]).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), f["reply.ping"]);
}

#[test]
fn well_formed_requests_get_the_golden_reply_headers() {
    let f = frames();
    let d = Daemon::start(&[]);
    let mut s = d.raw();
    hello(&mut s, &f);
    // (name, whole reply byte-exact; otherwise only the header, since the data depends on memory contents)
    let order = [
        ("ping", true),
        ("read", false),
        ("write", true),
        ("gpc_activate", true),
        ("gpc_read", false),
        ("gpc_write", true),
        ("gpc_refresh", true),
        ("set_attributes", true),
        ("discard", true),
        ("page_state", false),
        ("readv", false),
        ("writev", true),
        ("atomic", false),
        ("gpc_atomic", false),
        ("gpc_deactivate", true),
    ];
    for (name, exact) in order {
        s.write_all(&f[&format!("request.{name}")]).unwrap();
        let mut reply = read_frame(&mut s).unwrap();
        while Header::decode(&reply).unwrap().flags != FLAG_REPLY {
            reply = read_frame(&mut s).unwrap(); // an event (the GPC invalidated by DISCARD or SET_ATTRIBUTES)
        }
        let golden = &f[&format!("reply.{name}")];
        if exact {
            assert_eq!(&reply, golden, "reply.{name}");
        } else {
            assert_eq!(reply[..HEADER_SIZE], golden[..HEADER_SIZE], "reply.{name} header");
        }
    }
    // The ring frames, where the file has them (the reply's three descriptors are discarded by the plain read).
    if f.contains_key("request.ring_setup") {
        for name in ["ring_setup", "ring_close"] {
            s.write_all(&f[&format!("request.{name}")]).unwrap();
            assert_eq!(read_frame(&mut s).unwrap(), f[&format!("reply.{name}")], "reply.{name}");
        }
    }
    s.write_all(&f["request.stats"]).unwrap();
    let h = Header::decode(&read_frame(&mut s).unwrap()).unwrap();
    assert_eq!((h.opcode, h.flags, h.id, h.status), (12, FLAG_REPLY, 12, 0));
}
