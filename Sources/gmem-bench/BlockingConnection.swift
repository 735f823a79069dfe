import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One client connection on a blocking Unix socket, framed with GmemProtocol's encoders and decoder.
///
/// Not thread-safe: one thread owns a connection. ``readFrame()`` returns views into the receive buffer that are
/// valid until the next read.
final class BlockingConnection {
    let fd: Int32
    private(set) var hello: HelloReply
    private var decoder: FrameDecoder
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var scratch: [UInt8] = []
    private var nextID: UInt32 = 1

    /// Connects and completes HELLO.
    init(path: String, features: HelloReply.Features = [], receiveCapacity: Int = 0) throws {
        self.fd = try UnixSocket.connect(path: path)
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
            let reply = try self.call(.hello(version: WireProtocol.version, features: features.rawValue))
            self.hello = try reply.decodePayload(as: HelloReply.self)
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

    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        Glibc.close(self.fd)
    }

    /// A fresh request id.
    func takeID() -> UInt32 {
        defer { self.nextID &+= 1 }
        return self.nextID
    }

    /// Encodes `request` with a fresh id and appends it to `frames`; returns the id.
    @discardableResult
    func append(_ request: Request, to frames: inout [UInt8]) throws -> UInt32 {
        let id = self.takeID()
        try request.encode(id: id, into: &frames)
        return id
    }

    func send(_ frames: [UInt8]) throws {
        try writeAll(self.fd, frames)
    }

    /// The next frame off the socket: its header and a view of its payload, valid until the next call.
    @inline(__always)
    func readFrame() throws -> (FrameHeader, UnsafeRawBufferPointer) {
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
                throw BenchError("server sent a frame with a bad length: \(header)")
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
                throw BenchError("a \(total)-byte frame does not fit the \(self.buffer.count)-byte receive buffer")
            }
        }
        while self.end - self.start < total {
            let count = try readSome(self.fd, self.buffer.baseAddress! + self.end, self.buffer.count - self.end)
            guard count > 0 else { throw BenchError("the server closed the connection") }
            self.end += count
        }
    }

    /// Sends one request and waits for its reply (skipping events). Not for use while requests are pipelined.
    func call(_ request: Request) throws -> ReplyFrame {
        self.scratch.removeAll(keepingCapacity: true)
        let id = try self.append(request, to: &self.scratch)
        try self.send(self.scratch)
        return try self.awaitReply(id: id)
    }

    /// Reads frames until the reply with `id`, validating it with ``ReplyFrame``.
    func awaitReply(id: UInt32) throws -> ReplyFrame {
        while true {
            let (header, payload) = try self.readFrame()
            let frame = try ReplyFrame(header: header, payload: Array(payload)).validated()
            if frame.isEvent { continue }
            guard header.id == id else { throw BenchError("reply id \(header.id) while waiting for \(id)") }
            return frame
        }
    }

    /// Sends one request and fails unless it succeeds.
    @discardableResult
    func callChecked(_ request: Request, _ what: @autoclosure () -> String) throws -> ReplyFrame {
        let reply = try self.call(request)
        if let errno = reply.errno { throw BenchError("\(what()) failed: \(errno)") }
        return reply
    }

    /// The daemon's STATS counters.
    func stats() throws -> StatsReply {
        try self.callChecked(.stats, "STATS").decodePayload(as: StatsReply.self)
    }

    /// Activates a GPC; returns its handle.
    func activateGPC(gpa: UInt64, length: UInt32) throws -> UInt64 {
        try self.callChecked(.gpcActivate(gpa: gpa, length: length), "GPC_ACTIVATE gpa=0x\(String(gpa, radix: 16))")
            .decodePayload(as: GpcActivateReply.self).handle
    }

    /// Activates many GPCs with pipelined requests (`window` in flight); returns the handles in order.
    func activateGPCs(_ windows: [(gpa: UInt64, length: UInt32)], window: Int = 64) throws -> [UInt64] {
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
            if let errno = reply.errno {
                let failed = windows[handles.count]
                throw BenchError(
                    "GPC_ACTIVATE #\(handles.count) gpa=0x\(String(failed.gpa, radix: 16)) failed: \(errno)"
                )
            }
            handles.append(try reply.decodePayload(as: GpcActivateReply.self).handle)
        }
        return handles
    }

    /// Whether the page at `gpa` is private, from PAGE_STATE.
    func pageIsPrivate(gpa: UInt64) throws -> Bool {
        let page = gpa & ~UInt64(self.hello.pageSize - 1)
        let reply = try self.callChecked(.pageState(gpa: page, pageCount: 1), "PAGE_STATE")
        return try reply.decodePayload(as: PageStateReply.self).entries.first?.isPrivate ?? false
    }
}

extension ReplyFrame {
    /// Re-checks a frame built from a header and payload with the codec's rules (round trip through the decoder).
    func validated() throws -> ReplyFrame {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(FrameHeader.size + self.payload.count)
        self.encode(into: &bytes)
        return try ReplyFrame(decoding: bytes)
    }
}

/// Counters of a STATS reply the harness reads before and after a measurement.
struct DaemonCounters: Sendable {
    var values: [String: UInt64] = [:]

    init(_ reply: StatsReply) {
        for pair in reply.pairs { self.values[pair.name] = pair.value }
    }

    init() {}

    subscript(_ name: String) -> UInt64 { self.values[name] ?? 0 }

    /// `after - before` for every counter (wrapping).
    static func - (after: DaemonCounters, before: DaemonCounters) -> DaemonCounters {
        var delta = DaemonCounters()
        for (name, value) in after.values { delta.values[name] = value &- before[name] }
        return delta
    }
}
