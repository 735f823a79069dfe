//! The few C library functions the crate calls, declared by hand (the crate has no dependencies), each wrapped
//! in a safe function. The only other `unsafe` code is `ring.rs`'s access to the shared ring memory.
//!
//! Constants and struct layouts are Linux's (the same on x86_64 and aarch64, the platforms gmemd runs on).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_int, c_long, c_short, c_uint, c_ulong, c_void};
use std::ptr::NonNull;
use std::time::Duration;

/// `send(2)` flag: do not raise SIGPIPE when the peer has closed; fail with `EPIPE` instead.
const MSG_NOSIGNAL: c_int = 0x4000;
/// `recvmsg(2)` flag: do not block.
const MSG_DONTWAIT: c_int = 0x40;
/// `recvmsg(2)` flag: receive descriptors with close-on-exec set.
const MSG_CMSG_CLOEXEC: c_int = 0x4000_0000;
/// `poll(2)` event: data to read.
const POLLIN: c_short = 0x1;
/// `poll(2)` revent: error condition.
const POLLERR: c_short = 0x8;
/// `poll(2)` revent: hung up (the peer closed, or both directions are shut down).
const POLLHUP: c_short = 0x10;
/// `poll(2)` revent: the fd is not open.
const POLLNVAL: c_short = 0x20;
/// Control message level and type of passed descriptors.
const SOL_SOCKET: c_int = 1;
const SCM_RIGHTS: c_int = 1;
/// `mmap(2)` arguments.
const PROT_READ: c_int = 0x1;
const PROT_WRITE: c_int = 0x2;
const MAP_SHARED: c_int = 0x1;

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

/// `struct msghdr` of Linux (glibc and musl agree on little-endian 64-bit hosts; `socklen_t` is 32 bits).
#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

/// The size of `struct cmsghdr` (`size_t cmsg_len; int cmsg_level; int cmsg_type;`), and the alignment of
/// control messages.
const CMSG_HDR: usize = std::mem::size_of::<usize>() + 8;
const CMSG_ALIGN: usize = std::mem::size_of::<usize>();
/// Descriptors one receive accepts; more are discarded by the kernel (MSG_CTRUNC).
pub(crate) const MAX_RX_FDS: usize = 8;

// SAFETY: these are the C library's declarations of these functions on Linux (glibc and musl), with the same
// argument and return types; every caller below passes pointers valid for the lengths it passes.
unsafe extern "C" {
    fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn getuid() -> c_uint;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: c_long) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
}

/// Sends `buf` on the stream socket `fd` without raising SIGPIPE; returns the bytes sent.
pub(crate) fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice, readable for `buf.len()` bytes for the duration of the call; `send` only
    // reads it. An invalid `fd` makes `send` fail with EBADF, it cannot corrupt memory.
    let n = unsafe { send(fd, buf.as_ptr().cast(), buf.len(), MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Receives into `buf` from the stream socket `fd`, with any descriptors passed along (`SCM_RIGHTS`, received
/// close-on-exec) appended to `fds`; `nonblocking` fails with `WouldBlock` instead of waiting. Returns the bytes
/// received, 0 at end of stream.
pub(crate) fn recv_with_fds(fd: RawFd, buf: &mut [u8], nonblocking: bool, fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    // Room for MAX_RX_FDS descriptors: CMSG_SPACE(MAX_RX_FDS * sizeof(int)), in u64s for the alignment.
    let mut control = [0u64; (CMSG_HDR + MAX_RX_FDS * 4).div_ceil(8) + 1];
    let mut iov = IoVec { base: buf.as_mut_ptr().cast(), len: buf.len() };
    let mut msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: std::mem::size_of_val(&control),
        flags: 0,
    };
    let flags = MSG_CMSG_CLOEXEC | if nonblocking { MSG_DONTWAIT } else { 0 };
    // SAFETY: `msg` points to one iovec describing `buf` (live, exclusively borrowed, writable for its length)
    // and to `control` (live, writable for `controllen` bytes); recvmsg writes only within those and into `msg`.
    let n = unsafe { recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // Walk the control messages the kernel wrote (CMSG_FIRSTHDR / CMSG_NXTHDR), taking ownership of every
    // descriptor so that none leaks, even ones this client did not expect.
    let bytes: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let used = msg.controllen.min(bytes.len());
    let mut at = 0;
    while at + CMSG_HDR <= used {
        let mut len = [0u8; std::mem::size_of::<usize>()];
        len.copy_from_slice(&bytes[at..at + CMSG_ALIGN]);
        let len = usize::from_ne_bytes(len);
        let word = |k: usize| c_int::from_ne_bytes([bytes[k], bytes[k + 1], bytes[k + 2], bytes[k + 3]]);
        let (level, kind) = (word(at + CMSG_ALIGN), word(at + CMSG_ALIGN + 4));
        if len < CMSG_HDR || at + len > used {
            break;
        }
        if level == SOL_SOCKET && kind == SCM_RIGHTS {
            for k in (at + CMSG_HDR..at + len).step_by(4).take_while(|k| k + 4 <= at + len) {
                let raw = word(k);
                // SAFETY: the kernel just installed this descriptor in our table for this message; nothing
                // else owns it, so OwnedFd becomes its only owner and closes it once.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        at += len.next_multiple_of(CMSG_ALIGN);
    }
    Ok(n as usize)
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

/// What `wait_two` saw.
pub(crate) struct Ready {
    /// `first` is readable.
    pub(crate) first: bool,
    /// `second` hung up, failed or is closed (it is not polled for input).
    pub(crate) second_gone: bool,
}

/// Waits until `first` is readable or `second` hangs up, or `timeout` passes (`None`: forever).
pub(crate) fn wait_two(first: RawFd, second: RawFd, timeout: Option<Duration>) -> io::Result<Ready> {
    let ms = match timeout {
        None => -1,
        Some(d) => c_int::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX),
    };
    let mut p = [PollFd { fd: first, events: POLLIN, revents: 0 }, PollFd { fd: second, events: 0, revents: 0 }];
    // SAFETY: `p` is a live, exclusively borrowed array of two pollfds and we pass nfds = 2; poll writes only
    // their `revents` fields.
    let n = unsafe { poll(p.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(Ready { first: false, second_gone: false })
        } else {
            Err(e)
        };
    }
    Ok(Ready {
        first: p[0].revents & (POLLIN | POLLERR | POLLHUP) != 0,
        second_gone: p[1].revents & (POLLERR | POLLHUP | POLLNVAL) != 0,
    })
}

/// A shared, read-write mapping of a file; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread is as sound as moving a
// Box. Sharing happens only through the raw pointer, whose users synchronise (atomics) as the ring protocol says.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `&Mapping` only hands out the raw pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, `PROT_READ | PROT_WRITE`, `MAP_SHARED`.
    pub(crate) fn shared(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(22));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr null): it cannot overlap any memory Rust owns.
        // Failure returns MAP_FAILED (-1), checked below.
        let p = unsafe { mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_SHARED, fd.as_raw_fd(), 0) };
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(12))?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned and was asked for, and the mapping is unmapped
        // only here, once; the ring that used it is being dropped, so no reference into it remains.
        unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The real user id of the process.
pub(crate) fn uid() -> u32 {
    // SAFETY: getuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { getuid() }
}
