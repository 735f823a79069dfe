//! Starts a real gmemd for the integration tests: the binary named by `GMEMD_BINARY`, on a socket in a private
//! directory, killed (SIGKILL) and cleaned up when the `Daemon` drops.

#![allow(dead_code)]

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gmem::Client;

/// The gmemd binary the tests start. Fails the test (never skips it) when `GMEMD_BINARY` is not set.
pub fn binary() -> PathBuf {
    match std::env::var_os("GMEMD_BINARY").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "GMEMD_BINARY={} is not a file", p.display());
            p
        }
        None => panic!(
            "GMEMD_BINARY is not set: the integration tests start a real gmemd and need its path, e.g. \
             `GMEMD_BINARY=/path/to/gmemd cargo test --offline` (clients/rust/test.sh sets it)"
        ),
    }
}

/// A running gmemd.
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    /// Its socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts gmemd with `--size 64M --threads 1` and `extra` arguments (later arguments win), and waits until
    /// it accepts connections.
    pub fn start(extra: &[&str]) -> Daemon {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "gmem-rs-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("gmemd.sock");
        let log = fs::File::create(dir.join("gmemd.log")).unwrap();
        let child = Command::new(binary())
            .arg("--socket")
            .arg(&socket)
            .args(["--size", "64M", "--threads", "1", "--log-level", "warning"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        let mut daemon = Daemon { child, dir, socket };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("gmemd exited during startup ({status}): {}", self.log());
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "gmemd did not listen within 20 s: {}", self.log());
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// What gmemd wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("gmemd.log")).unwrap_or_default()
    }

    /// A new connection, HELLO done.
    pub fn connect(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("{e}; gmemd log: {}", self.log()))
    }

    /// A raw socket to the daemon, nothing sent.
    pub fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name such as STOP or CONT) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{signal} failed");
    }

    /// SIGSTOP, and wait until every thread of the daemon is stopped (the signal is delivered asynchronously:
    /// a thread busy on another core may run on for a moment).
    pub fn stop(&self) {
        self.signal("STOP");
        let deadline = Instant::now() + Duration::from_secs(10);
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid()));
        loop {
            let all_stopped = fs::read_dir(&tasks).unwrap().flatten().all(|t| {
                let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't'])).unwrap_or(true)
            });
            if all_stopped {
                return;
            }
            assert!(Instant::now() < deadline, "gmemd did not stop within 10 s");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The frames of `proto/vectors/frames.txt`, by name, in file order.
pub fn frames() -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/vectors/frames.txt");
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bytes_text = if line.starts_with([' ', '\t']) {
            trimmed
        } else {
            let (name, rest) = line.split_once(':').expect("a frame name line");
            out.push((name.to_string(), Vec::new()));
            rest
        };
        let frame = &mut out.last_mut().expect("bytes before the first name").1;
        frame.extend(bytes_text.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("a hex byte")));
    }
    out
}

/// [`frames`] by name.
pub fn frame_map() -> std::collections::BTreeMap<String, Vec<u8>> {
    frames().into_iter().collect()
}

/// This process's real uid, from /proc (the crate's own libc declarations are private).
pub fn own_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("Uid:")).expect("a Uid: line");
    line.split_whitespace().nth(1).and_then(|u| u.parse().ok()).expect("the real uid")
}
