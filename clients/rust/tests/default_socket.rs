//! `Client::connect_default` and `default_socket_path`: `$GMEMD_SOCKET`, else `$XDG_RUNTIME_DIR/gmemd.sock`,
//! else `/run/gmemd/gmemd.sock` for root, else `./gmemd.sock` (empty variables count as unset).
//!
//! This file holds a single test because it changes the process environment.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Daemon;
use gmem::{Client, default_socket_path};

fn set(name: &str, value: Option<&std::ffi::OsStr>) {
    // SAFETY: this test binary runs exactly one test, on one thread, and no other thread of the process reads
    // or writes the environment while it runs (the daemon is a separate process, spawned from this thread).
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn default_socket_resolution() {
    let d = Daemon::start(&[]);
    let dir = d.socket.parent().unwrap().to_path_buf();
    assert_eq!(d.socket.file_name().unwrap(), "gmemd.sock");

    set("XDG_RUNTIME_DIR", Some("/nonexistent".as_ref()));
    set("GMEMD_SOCKET", Some(d.socket.as_os_str()));
    assert_eq!(default_socket_path(), d.socket);
    Client::connect_default().unwrap().ping().unwrap();

    set("GMEMD_SOCKET", Some("".as_ref()));
    set("XDG_RUNTIME_DIR", Some(dir.as_os_str()));
    assert_eq!(default_socket_path(), dir.join("gmemd.sock"));
    Client::connect_default().unwrap().ping().unwrap();

    set("GMEMD_SOCKET", None);
    set("XDG_RUNTIME_DIR", None);
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let expected = if root { "/run/gmemd/gmemd.sock" } else { "./gmemd.sock" };
    assert_eq!(default_socket_path(), PathBuf::from(expected));
}
