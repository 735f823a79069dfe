//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RawConnection: a blocking client with byte-level control over what it sends.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A blocking Unix-socket client for tests that need control over every byte: malformed headers, truncated frames,
/// pipelined requests, connections dropped mid-frame.
///
/// Nothing is validated on the way out; frames on the way in are delimited by their length, which is sanity-checked
/// first (a length below 16 or above 16 + 64 MiB is a ``GmemTestingError/protocolViolation(_:)``). Higher-level
/// helpers (``hello(features:version:)``, ``request(opcode:payload:flags:status:timeout:)`` and the typed requests)
/// live in extensions.
///
/// Every receive is bounded by a timeout (`SO_RCVTIMEO`), so a daemon that never answers fails a test instead of
/// hanging it. Not `Sendable`: one test task owns a connection. The descriptor is closed on `deinit`.
public final class RawConnection {
    /// The socket.
    public let descriptor: Int32
    /// The socket path it is connected to.
    public let path: String
    /// The id the next ``request(opcode:payload:flags:status:timeout:)`` uses; incremented per request.
    public var nextID: UInt32 = 1
    /// Event frames received while waiting for a reply, oldest first.
    public var events: [ReplyFrame] = []
    /// The largest frame accepted from the daemon.
    public static let maximumFrameLength = 16 + (64 << 20)

    /// Descriptors that arrived with received bytes (RING_SETUP's reply), oldest first; the connection closes any
    /// left on `deinit`.
    public var receivedDescriptors: [Int32] = []

    private var buffered: [UInt8] = []
    private var isClosed = false

    /// Connects to the daemon's socket at `path`.
    ///
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` if `connect` fails.
    public init(connectingTo path: String) throws {
        self.descriptor = try UnixSocket.connect(to: path)
        self.path = path
    }

    /// Connects to the daemon's socket at `path`.
    public static func connect(_ path: String) throws -> RawConnection {
        try RawConnection(connectingTo: path)
    }

    deinit {
        if !self.isClosed { Glibc.close(self.descriptor) }
        for fd in self.receivedDescriptors { Glibc.close(fd) }
    }

    /// Closes the connection; later calls fail with `EBADF`.
    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        Glibc.close(self.descriptor)
    }

    /// Shuts down the sending direction: the daemon sees end of stream but can still reply.
    public func shutdownWrite() {
        Glibc.shutdown(self.descriptor, Int32(SHUT_WR))
    }

    // MARK: Sending

    /// Sends raw bytes.
    public func send(_ bytes: [UInt8], timeout: Duration = .seconds(10)) throws {
        try bytes.withUnsafeBytes { try UnixSocket.sendAll(self.descriptor, $0, timeout: timeout) }
    }

    /// Sends one frame built from the given header fields and payload.
    ///
    /// - Parameter length: the header's length field; by default `16 + payload.count`. Pass another value to send
    ///   a header that lies about its length.
    public func sendFrame(
        opcode: Opcode,
        id: UInt32,
        flags: UInt16 = 0,
        status: Int32 = 0,
        payload: [UInt8] = [],
        length: UInt32? = nil
    ) throws {
        try self.send(
            Self.frame(opcode: opcode, id: id, flags: flags, status: status, payload: payload, length: length)
        )
    }

    /// The bytes of one frame, for tests that concatenate several frames into one send.
    public static func frame(
        opcode: Opcode,
        id: UInt32,
        flags: UInt16 = 0,
        status: Int32 = 0,
        payload: [UInt8] = [],
        length: UInt32? = nil
    ) -> [UInt8] {
        let header = FrameHeader(
            length: length ?? UInt32(truncatingIfNeeded: FrameHeader.size + payload.count),
            opcode: opcode,
            flags: FrameFlags(rawValue: flags),
            id: id,
            status: status
        )
        var bytes: [UInt8] = []
        bytes.reserveCapacity(FrameHeader.size + payload.count)
        header.write(to: &bytes)
        bytes.writeBytes(payload)
        return bytes
    }

    // MARK: Receiving

    /// Receives the next frame.
    ///
    /// - Returns: the header and payload, or `nil` if the daemon closed the connection before a frame began.
    /// - Throws: ``GmemTestingError/timedOut(_:)`` if no complete frame arrives within `timeout`;
    ///   ``GmemTestingError/connectionClosed(_:)`` if the connection ends in the middle of a frame;
    ///   ``GmemTestingError/protocolViolation(_:)`` for an impossible length.
    public func receiveFrame(timeout: Duration = .seconds(5)) throws -> (header: FrameHeader, payload: [UInt8])? {
        let deadline = Deadline(after: timeout)
        guard try self.fill(FrameHeader.size, deadline: deadline) else {
            guard self.buffered.isEmpty else {
                throw GmemTestingError.connectionClosed("after \(self.buffered.count) bytes of a frame header")
            }
            return nil
        }
        let header = self.buffered.withUnsafeBytes { FrameHeader(decoding: $0)! }
        guard header.length >= FrameHeader.size, Int(header.length) <= Self.maximumFrameLength else {
            throw GmemTestingError.protocolViolation("frame length \(header.length) in \(header)")
        }
        let length = Int(header.length)
        guard try self.fill(length, deadline: deadline) else {
            throw GmemTestingError.connectionClosed("after \(self.buffered.count) of \(length) bytes of \(header)")
        }
        let payload = Array(self.buffered[FrameHeader.size..<length])
        self.buffered.removeFirst(length)
        return (header, payload)
    }

    /// Waits until the daemon closes the connection.
    ///
    /// - Returns: `true` once closed, `false` if still open after `timeout`.
    /// - Throws: ``GmemTestingError/unexpectedFrame(_:payload:expected:)`` if bytes arrive instead.
    public func waitForClose(timeout: Duration) throws -> Bool {
        let deadline = Deadline(after: timeout)
        if !self.buffered.isEmpty { try self.failOnBufferedBytes() }
        var scratch = [UInt8](repeating: 0, count: 4096)
        let result = try scratch.withUnsafeMutableBytes {
            try UnixSocket.receive(self.descriptor, into: $0, deadline: deadline)
        }
        switch result {
        case .closed:
            return true
        case .timedOut:
            return false
        case .bytes(let count):
            self.buffered.append(contentsOf: scratch[..<count])
            try self.failOnBufferedBytes()
            return false
        }
    }

    /// Expects the daemon to close the connection within `timeout` without sending anything more.
    public func expectClosed(timeout: Duration = .seconds(5)) throws {
        guard try self.waitForClose(timeout: timeout) else {
            throw GmemTestingError.timedOut("the daemon to close the connection")
        }
    }

    private func failOnBufferedBytes() throws {
        if self.buffered.count >= FrameHeader.size, let frame = try? self.receiveFrame(timeout: .milliseconds(200)) {
            throw GmemTestingError.unexpectedFrame(
                frame.header,
                payload: frame.payload,
                expected: "the connection to close"
            )
        }
        throw GmemTestingError.protocolViolation(
            "\(self.buffered.count) stray bytes: \(hexString(self.buffered.prefix(32)))"
        )
    }

    /// Buffers at least `count` bytes; `false` if the connection closed first.
    private func fill(_ count: Int, deadline: Deadline) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while self.buffered.count < count {
            let result = try chunk.withUnsafeMutableBytes {
                try UnixSocket.receive(
                    self.descriptor,
                    into: $0,
                    deadline: deadline,
                    descriptors: &self.receivedDescriptors
                )
            }
            switch result {
            case .bytes(let received):
                self.buffered.append(contentsOf: chunk[..<received])
            case .closed:
                return false
            case .timedOut:
                throw GmemTestingError.timedOut("a frame (\(self.buffered.count) of \(count) bytes received)")
            }
        }
        return true
    }
}
