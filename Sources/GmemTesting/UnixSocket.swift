//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// UnixSocket: blocking AF_UNIX stream socket calls with timeouts, on Glibc alone.
//
//===----------------------------------------------------------------------===//

import CGmemSys
import GmemErrno

#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the socket calls the harness needs. Descriptors are close-on-exec so that spawned daemons
/// and helper processes never inherit a test's connection (an inherited descriptor would keep it open).
public enum UnixSocket {
    /// What a bounded receive produced.
    public enum ReceiveResult: Equatable, Sendable {
        /// `count` bytes were stored.
        case bytes(Int)
        /// The peer closed the connection (end of stream, or `ECONNRESET`: Linux reports a reset once the queued
        /// data is read when the peer closed with unread input).
        case closed
        /// Nothing arrived before the timeout.
        case timedOut
    }

    /// Connects a new stream socket to `path`.
    ///
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` with the `connect` errno (`ENOENT`, `ECONNREFUSED`,
    ///   `EACCES`, ...); the descriptor is closed then.
    public static func connect(to path: String) throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw GmemTestingError.systemCall("socket(AF_UNIX)", errno: errno) }
        var address = try self.address(path)
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let saved = errno
            close(descriptor)
            throw GmemTestingError.systemCall("connect(\(path))", errno: saved)
        }
        return descriptor
    }

    /// Binds a socket to `path` and closes it without listening, leaving a socket file nobody serves: what a
    /// crashed daemon leaves behind.
    public static func createStaleSocketFile(at path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw GmemTestingError.systemCall("socket(AF_UNIX)", errno: errno) }
        defer { close(descriptor) }
        var address = try self.address(path)
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else { throw GmemTestingError.systemCall("bind(\(path))", errno: errno) }
    }

    /// Whether a socket bound to `path` is listening, from `/proc/net/unix` (whose `Flags` column has
    /// `__SO_ACCEPTCON`, 0x10000, for listening sockets); `nil` if that file cannot be read.
    ///
    /// Unlike a probe connection, this leaves no trace in the server.
    public static func isListening(at path: String) -> Bool? {
        guard let table = try? ProcMaps.readFile("/proc/net/unix") else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            // Num RefCount Protocol Flags Type St Inode Path
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 8, fields[7] == path, let flags = UInt32(fields[3], radix: 16) else { continue }
            if flags & 0x10000 != 0 { return true }
        }
        return false
    }

    /// Whether a file of type socket exists at `path`.
    public static func socketFileExists(at path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK
    }

    /// Sends every byte, retrying short writes; never raises SIGPIPE.
    ///
    /// - Throws: ``GmemTestingError/connectionClosed(_:)`` on `EPIPE`/`ECONNRESET`,
    ///   ``GmemTestingError/timedOut(_:)`` if the peer stops reading for longer than `timeout`.
    public static func sendAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, timeout: Duration) throws {
        let deadline = Deadline(after: timeout)
        var offset = 0
        while offset < bytes.count {
            let sent = SystemCall.retryingOnInterrupt {
                send(
                    descriptor,
                    bytes.baseAddress! + offset,
                    bytes.count - offset,
                    Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
                )
            }
            if sent > 0 {
                offset += sent
                continue
            }
            switch errno {
            case EAGAIN:
                var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&entry, 1, deadline.remainingMilliseconds)
                if ready == 0 { throw GmemTestingError.timedOut("sending \(bytes.count) bytes (\(offset) sent)") }
            case EPIPE, ECONNRESET:
                throw GmemTestingError.connectionClosed("while sending (\(offset) of \(bytes.count) bytes sent)")
            case let code:
                throw GmemTestingError.systemCall("send", errno: code)
            }
        }
    }

    /// Receives up to `buffer.count` bytes, waiting at most until `deadline`.
    ///
    /// The wait is a blocking `recv` bounded by `SO_RCVTIMEO`, set to the time left before each call.
    public static func receive(
        _ descriptor: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        deadline: Deadline
    ) throws -> ReceiveResult {
        var descriptors: [Int32] = []
        defer { for fd in descriptors { Glibc.close(fd) } }
        return try self.receive(descriptor, into: buffer, deadline: deadline, descriptors: &descriptors)
    }

    /// ``receive(_:into:deadline:)`` with recvmsg(2): descriptors that arrive with the bytes (SCM_RIGHTS, as
    /// RING_SETUP's reply carries) are appended to `descriptors`, close-on-exec. A plain recv would discard them.
    public static func receive(
        _ descriptor: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        deadline: Deadline,
        descriptors: inout [Int32]
    ) throws -> ReceiveResult {
        while true {
            let remaining = deadline.remaining
            // SO_RCVTIMEO of 0 would mean "wait forever": poll instead once the deadline is this close.
            try self.setReceiveTimeout(descriptor, max(remaining, .milliseconds(1)))
            var fds = [Int32](repeating: -1, count: 8)
            var received: UInt32 = 0
            // A signal does not end the wait; the retried recvmsg keeps the timeout set above.
            let count = fds.withUnsafeMutableBufferPointer { fds in
                SystemCall.retryingOnInterrupt {
                    cgmem_receive_with_fds(
                        descriptor,
                        buffer.baseAddress,
                        UInt(buffer.count),
                        fds.baseAddress,
                        8,
                        &received
                    )
                }
            }
            descriptors.append(contentsOf: fds[..<Int(received)])
            if count > 0 { return .bytes(count) }
            if count == 0 { return .closed }
            switch errno {
            case EAGAIN: if deadline.hasPassed { return .timedOut }
            case ECONNRESET: return .closed
            case let code: throw GmemTestingError.systemCall("recvmsg", errno: code)
            }
        }
    }

    /// Sets `SO_RCVTIMEO`, so that a plain blocking `recv` on the descriptor also gives up after `timeout`.
    public static func setReceiveTimeout(_ descriptor: Int32, _ timeout: Duration) throws {
        let (seconds, attoseconds) = timeout.components
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        guard setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw GmemTestingError.systemCall("setsockopt(SO_RCVTIMEO)", errno: errno)
        }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw GmemTestingError.systemCall("socket path \(path) too long", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8)
        }
        return address
    }
}
