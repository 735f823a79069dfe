//! The few C library functions the crate calls, declared by hand (the crate has no dependencies), each wrapped
//! in a safe function. This is the only module with `unsafe` code.
//!
//! Constants and struct layouts are Linux's (the same on x86_64 and aarch64, the platforms gmemd runs on).

use std::io;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_short, c_uint, c_ulong, c_void};
use std::time::Duration;

/// `send(2)` flag: do not raise SIGPIPE when the peer has closed; fail with `EPIPE` instead.
const MSG_NOSIGNAL: c_int = 0x4000;
/// `recv(2)` flag: do not block.
const MSG_DONTWAIT: c_int = 0x40;
/// `poll(2)` event: data to read.
const POLLIN: c_short = 0x1;

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

// SAFETY: these are the C library's declarations of these functions on Linux (glibc and musl), with the same
// argument and return types; every caller below passes pointers valid for the lengths it passes.
unsafe extern "C" {
    fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn getuid() -> c_uint;
}

/// Sends `buf` on the stream socket `fd` without raising SIGPIPE; returns the bytes sent.
pub(crate) fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice, readable for `buf.len()` bytes for the duration of the call; `send` only
    // reads it. An invalid `fd` makes `send` fail with EBADF, it cannot corrupt memory.
    let n = unsafe { send(fd, buf.as_ptr().cast(), buf.len(), MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Receives into `buf` from the stream socket `fd`; `nonblocking` fails with `WouldBlock` instead of waiting.
/// Returns the bytes received, 0 at end of stream.
pub(crate) fn recv_into(fd: RawFd, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    let flags = if nonblocking { MSG_DONTWAIT } else { 0 };
    // SAFETY: `buf` is a live, exclusively borrowed slice, writable for `buf.len()` bytes during the call;
    // `recv` writes at most that many bytes into it.
    let n = unsafe { recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Waits until `fd` is readable (or has hung up) or `timeout` passes (`None`: forever). Returns whether it is
/// readable; `EINTR` counts as not yet.
pub(crate) fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let ms = match timeout {
        None => -1,
        // Round up, so a short positive timeout does not become a busy poll of 0 ms.
        Some(d) => c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX),
    };
    let mut p = PollFd { fd, events: POLLIN, revents: 0 };
    // SAFETY: `p` is one live, exclusively borrowed `pollfd` and we pass nfds = 1; `poll` writes only its
    // `revents` field.
    let n = unsafe { poll(&mut p, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
    }
    Ok(n > 0)
}

/// The real user id of the process.
pub(crate) fn uid() -> u32 {
    // SAFETY: getuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { getuid() }
}
