//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// UnixSocket+Blocking: untimed blocking calls for load generators and baseline servers.
//
//===----------------------------------------------------------------------===//

import GmemErrno

#if canImport(Glibc)
import Glibc
#endif

extension UnixSocket {
    /// A listening stream socket bound to `path`; a file already there is removed first.
    ///
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` if `socket`, `bind` or `listen` fails.
    public static func listen(at path: String, backlog: Int32 = 4096) throws -> Int32 {
        var address = try self.address(path)
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw GmemTestingError.systemCall("socket(AF_UNIX)", errno: errno) }
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, Glibc.listen(descriptor, backlog) == 0 else {
            let saved = errno
            close(descriptor)
            throw GmemTestingError.systemCall("bind and listen(\(path))", errno: saved)
        }
        return descriptor
    }

    /// Writes every byte with blocking `write` calls, without a timeout: for a measuring loop, which must not pay
    /// for a clock read or a `poll` per request (``sendAll(_:_:timeout:)`` bounds the wait instead).
    ///
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` with `write`'s errno.
    @inline(__always)
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = SystemCall.retryingOnInterrupt {
                write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            }
            guard written >= 0 else { throw GmemTestingError.systemCall("write", errno: errno) }
            offset += written
        }
    }

    /// ``writeAll(_:_:)`` of an array.
    @inline(__always)
    public static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try self.writeAll(descriptor, $0) }
    }

    /// One blocking `read`, without a timeout: the byte count, 0 at end of stream.
    ///
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` with `read`'s errno.
    @inline(__always)
    public static func readSome(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = SystemCall.retryingOnInterrupt { read(descriptor, buffer.baseAddress, buffer.count) }
        guard count >= 0 else { throw GmemTestingError.systemCall("read", errno: errno) }
        return count
    }
}
