//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// PipelinedConnection: a lean blocking client that keeps many requests in flight, for load generators.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A client connection on a blocking Unix socket for measuring loops (gmem-bench): requests are encoded by the
/// caller into a batch and sent with one write, replies are read as views into a fixed receive buffer.
///
/// Where ``RawConnection`` gives a test control over every byte and bounds every wait, this type is lean: no
/// timeout, no clock read, no copy and no allocation per reply (``readFrame()``); a daemon that stops answering
/// blocks it. HELLO is done on connect. Not thread-safe: one thread owns a connection. ``readFrame()`` returns views
/// into the receive buffer that are valid until the next read.
public final class PipelinedConnection {
    /// The socket.
    public let descriptor: Int32
    /// The daemon's HELLO reply.
    public private(set) var hello: HelloReply
    private var decoder: FrameDecoder
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var scratch: [UInt8] = []
    private var nextID: UInt32 = 1

    /// Connects and completes HELLO.
    ///
    /// - Parameter receiveCapacity: the receive buffer, which must hold the largest reply expected (the replies
    ///   of a pipelined burst are read from it in place); 0 for 64 KiB, at least 4 KiB.
    public init(path: String, features: HelloReply.Features = [], receiveCapacity: Int = 0) throws {
        self.descriptor = try UnixSocket.connect(to: path)
        self.decoder = FrameDecoder(maxPayload: WireProtocol.largestRepresentablePayload)
        // The buffer must hold the largest reply expected: the caller sizes it (64 KiB by default).
        let capacity = receiveCapacity > 0 ? max(receiveCapacity, 4096) : 64 << 10
        self.buffer = .allocate(byteCount: capacity, alignment: 64)
        self.hello = HelloReply(
            features: [],
            pageSize: 4096,
            folioSize: 4096,
            regionSize: 0,
            regionID: 0,
            maxPayload: 0,
            maxGpcs: 0,
            regionFlags: []
        )
        do {
            let reply = try self.callSucceeding(.hello(version: WireProtocol.version, features: features.rawValue))
            self.hello = try RawConnection.decode(HelloReply.self, from: reply)
        } catch {
            self.close()
            throw error
        }
        self.decoder = FrameDecoder(maxPayload: Int(self.hello.maxPayload))
    }

    deinit {
        self.close()
        self.buffer.deallocate()
    }

    private var isClosed = false

    /// Closes the connection (the daemon releases its GPCs); later calls fail with `EBADF`.
    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        Glibc.close(self.descriptor)
    }

    /// A fresh request id.
    public func takeID() -> UInt32 {
        defer { self.nextID &+= 1 }
        return self.nextID
    }

    /// Encodes `request` with a fresh id and appends it to `frames`; returns the id.
    @discardableResult
    public func append(_ request: Request, to frames: inout [UInt8]) throws -> UInt32 {
        let id = self.takeID()
        try request.encode(id: id, into: &frames)
        return id
    }

    /// Writes a batch of encoded frames, blocking until all is written.
    public func send(_ frames: [UInt8]) throws {
        try UnixSocket.writeAll(self.descriptor, frames)
    }

    /// The next frame off the socket: its header and a view of its payload, valid until the next call.
    ///
    /// - Throws: ``GmemTestingError/protocolViolation(_:)`` for an impossible length,
    ///   ``GmemTestingError/connectionClosed(_:)`` at end of stream.
    @inline(__always)
    public func readFrame() throws -> (FrameHeader, UnsafeRawBufferPointer) {
        while true {
            let pending = UnsafeRawBufferPointer(rebasing: self.buffer[self.start..<self.end])
            switch self.decoder.decodeNext(pending) {
            case .frame(let header):
                let length = Int(header.length)
                let payload = UnsafeRawBufferPointer(rebasing: pending[FrameHeader.size..<length])
                self.start += length
                if self.start == self.end {
                    self.start = 0
                    self.end = 0
                }
                return (header, payload)
            case .badLength(let header):
                throw GmemTestingError.protocolViolation("a frame with a bad length: \(header)")
            case .needMoreBytes(let total):
                try self.fill(toHold: total)
            }
        }
    }

    /// Reads until at least `total` bytes are buffered from `start`.
    private func fill(toHold total: Int) throws {
        if self.start + total > self.buffer.count {
            // Move the partial frame to the front.
            let count = self.end - self.start
            if self.start > 0 && count > 0 {
                memmove(self.buffer.baseAddress!, self.buffer.baseAddress! + self.start, count)
            }
            self.start = 0
            self.end = count
            guard total <= self.buffer.count else {
                throw GmemTestingError.protocolViolation(
                    "a \(total)-byte frame does not fit the \(self.buffer.count)-byte receive buffer"
                )
            }
        }
        while self.end - self.start < total {
            let count = try UnixSocket.readSome(
                self.descriptor,
                into: UnsafeMutableRawBufferPointer(rebasing: self.buffer[self.end...])
            )
            guard count > 0 else {
                throw GmemTestingError.connectionClosed("\(self.end - self.start) of \(total) bytes read")
            }
            self.end += count
        }
    }

    /// Sends one request and waits for its reply (skipping events). Not for use while requests are pipelined.
    public func call(_ request: Request) throws -> ReplyFrame {
        self.scratch.removeAll(keepingCapacity: true)
        let id = try self.append(request, to: &self.scratch)
        try self.send(self.scratch)
        return try self.awaitReply(id: id)
    }

    /// Reads frames until the reply with `id`, checked with ``RawConnection/validated(_:_:)``; events are skipped.
    public func awaitReply(id: UInt32) throws -> ReplyFrame {
        while true {
            let (header, payload) = try self.readFrame()
            let frame = try RawConnection.validated(header, Array(payload))
            if frame.isEvent { continue }
            guard header.id == id else {
                throw GmemTestingError.unexpectedFrame(
                    header,
                    payload: frame.payload,
                    expected: "the reply to id \(id)"
                )
            }
            return frame
        }
    }

    /// Sends one request and returns its reply.
    ///
    /// - Throws: ``GmemTestingError/errorReply(_:_:)`` if the daemon refuses it.
    @discardableResult
    public func callSucceeding(_ request: Request) throws -> ReplyFrame {
        let reply = try self.call(request)
        try reply.requireSuccess()
        return reply
    }

    /// The daemon's STATS counters.
    public func stats() throws -> StatsReply {
        try RawConnection.decode(StatsReply.self, from: try self.callSucceeding(.stats))
    }

    /// Activates many GPCs with pipelined requests (`window` in flight); returns the handles in order.
    ///
    /// - Throws: ``GmemTestingError/errorReply(_:_:)`` at the first refusal.
    public func activateGPCs(_ windows: [(gpa: UInt64, length: UInt32)], window: Int = 64) throws -> [UInt64] {
        var handles: [UInt64] = []
        handles.reserveCapacity(windows.count)
        var sent = 0
        var ids: [UInt32] = []
        ids.reserveCapacity(windows.count)
        while handles.count < windows.count {
            self.scratch.removeAll(keepingCapacity: true)
            while sent < windows.count && sent - handles.count < window {
                ids.append(
                    try self.append(
                        .gpcActivate(gpa: windows[sent].gpa, length: windows[sent].length),
                        to: &self.scratch
                    )
                )
                sent += 1
            }
            if !self.scratch.isEmpty { try self.send(self.scratch) }
            let reply = try self.awaitReply(id: ids[handles.count])
            if let errno = reply.errno { throw GmemTestingError.errorReply(.gpcActivate, errno) }
            handles.append(try RawConnection.decode(GpcActivateReply.self, from: reply).handle)
        }
        return handles
    }

    /// Whether the page at `gpa` is private, from PAGE_STATE.
    public func pageIsPrivate(gpa: UInt64) throws -> Bool {
        let page = gpa & ~UInt64(self.hello.pageSize - 1)
        let reply = try self.callSucceeding(.pageState(gpa: page, pageCount: 1))
        return try RawConnection.decode(PageStateReply.self, from: reply).entries.first?.isPrivate ?? false
    }
}
