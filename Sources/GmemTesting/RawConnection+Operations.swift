//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RawConnection operations: one typed helper per request of protocol v1.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

/// Builds a payload with the little-endian ``WireWriter`` of `[UInt8]`, for requests a test crafts by hand.
///
/// ```swift
/// let payload = wireBytes { $0.writeInteger(UInt64(0x1000)); $0.writeInteger(UInt32(16)); $0.writeInteger(UInt32(1)) }
/// ```
public func wireBytes(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
    var bytes: [UInt8] = []
    body(&bytes)
    return bytes
}

extension RawConnection {
    // Each helper encodes a well-formed request with GmemProtocol's encoder and returns the reply as it came:
    // tests inspect `errno`, `payload` and `isSuccess`. The `require`-style helpers further down throw instead.

    /// PING with `bytes`.
    public func ping(_ bytes: [UInt8] = []) throws -> ReplyFrame {
        try self.request({ id in try bytes.withUnsafeBytes { try Request.ping($0).encoded(id: id) } }, opcode: .ping)
    }

    /// READ `len` bytes at `gpa`.
    public func read(gpa: UInt64, length: UInt32) throws -> ReplyFrame {
        try self.request({ try Request.read(gpa: gpa, length: length).encoded(id: $0) }, opcode: .read)
    }

    /// WRITE `data` at `gpa`.
    public func write(gpa: UInt64, data: [UInt8]) throws -> ReplyFrame {
        try self.request(
            { id in try data.withUnsafeBytes { try Request.write(gpa: gpa, data: $0).encoded(id: id) } },
            opcode: .write
        )
    }

    /// MAP_REGION. On success the guest memfd arrives in ``receivedDescriptors``.
    public func mapRegion() throws -> ReplyFrame {
        try self.request({ try Request.mapRegion.encoded(id: $0) }, opcode: .mapRegion)
    }

    /// GPC_ACTIVATE over `[gpa, gpa + len)`.
    public func gpcActivate(gpa: UInt64, length: UInt32) throws -> ReplyFrame {
        try self.request({ try Request.gpcActivate(gpa: gpa, length: length).encoded(id: $0) }, opcode: .gpcActivate)
    }

    /// GPC_DEACTIVATE `handle`.
    public func gpcDeactivate(handle: UInt64) throws -> ReplyFrame {
        try self.request({ try Request.gpcDeactivate(handle: handle).encoded(id: $0) }, opcode: .gpcDeactivate)
    }

    /// GPC_READ `len` bytes at `offset` of the window of `handle`.
    public func gpcRead(handle: UInt64, offset: UInt32 = 0, length: UInt32) throws -> ReplyFrame {
        try self.request(
            { try Request.gpcRead(handle: handle, offset: offset, length: length).encoded(id: $0) },
            opcode: .gpcRead
        )
    }

    /// GPC_WRITE `data` at `offset` of the window of `handle`.
    public func gpcWrite(handle: UInt64, offset: UInt32 = 0, data: [UInt8]) throws -> ReplyFrame {
        try self.request(
            { id in
                try data.withUnsafeBytes {
                    try Request.gpcWrite(handle: handle, offset: offset, data: $0).encoded(id: id)
                }
            },
            opcode: .gpcWrite
        )
    }

    /// GPC_REFRESH `handle` onto `[gpa, gpa + len)`.
    public func gpcRefresh(handle: UInt64, gpa: UInt64, length: UInt32) throws -> ReplyFrame {
        try self.request(
            { try Request.gpcRefresh(handle: handle, gpa: gpa, length: length).encoded(id: $0) },
            opcode: .gpcRefresh
        )
    }

    /// SET_ATTRIBUTES on `[gpa, gpa + size)`: `attributes` 8 makes the pages private, 0 shared.
    public func setAttributes(gpa: UInt64, size: UInt64, attributes: UInt64) throws -> ReplyFrame {
        try self.request(
            { try Request.setAttributes(gpa: gpa, size: size, attributes: attributes).encoded(id: $0) },
            opcode: .setAttributes
        )
    }

    /// DISCARD `[gpa, gpa + size)`.
    public func discard(gpa: UInt64, size: UInt64) throws -> ReplyFrame {
        try self.request({ try Request.discard(gpa: gpa, size: size).encoded(id: $0) }, opcode: .discard)
    }

    /// STATS.
    public func stats() throws -> ReplyFrame {
        try self.request({ try Request.stats.encoded(id: $0) }, opcode: .stats)
    }

    /// PAGE_STATE of `npages` pages from `gpa`.
    public func pageState(gpa: UInt64, pages: UInt32) throws -> ReplyFrame {
        try self.request({ try Request.pageState(gpa: gpa, pageCount: pages).encoded(id: $0) }, opcode: .pageState)
    }

    // MARK: Requests that must succeed

    /// Activates a GPC and returns its handle.
    public func activateGpc(gpa: UInt64, length: UInt32) throws -> UInt64 {
        let reply = try self.gpcActivate(gpa: gpa, length: length)
        try reply.requireSuccess()
        return try Self.decode(GpcActivateReply.self, from: reply).handle
    }

    /// Deactivates a GPC.
    public func deactivateGpc(_ handle: UInt64) throws {
        try self.gpcDeactivate(handle: handle).requireSuccess()
    }

    /// Reads guest memory.
    public func readBytes(gpa: UInt64, length: UInt32) throws -> [UInt8] {
        let reply = try self.read(gpa: gpa, length: length)
        try reply.requireSuccess()
        guard reply.payload.count == Int(length) else {
            throw GmemTestingError.protocolViolation("READ of \(length) bytes returned \(reply.payload.count)")
        }
        return reply.payload
    }

    /// Writes guest memory.
    public func writeBytes(gpa: UInt64, data: [UInt8]) throws {
        try self.write(gpa: gpa, data: data).requireSuccess()
    }

    /// The state of `count` pages from `gpa`.
    public func pageStates(gpa: UInt64, count: UInt32) throws -> [PageStateEntry] {
        let reply = try self.pageState(gpa: gpa, pages: count)
        try reply.requireSuccess()
        let entries = try Self.decode(PageStateReply.self, from: reply).entries
        guard entries.count == Int(count) else {
            throw GmemTestingError.protocolViolation("PAGE_STATE of \(count) pages returned \(entries.count)")
        }
        return entries
    }

    /// The state of the page at `gpa`.
    public func pageState(at gpa: UInt64) throws -> PageStateEntry {
        try self.pageStates(gpa: gpa, count: 1)[0]
    }

    /// The daemon's counters.
    public func statistics() throws -> StatsReply {
        let reply = try self.stats()
        try reply.requireSuccess()
        return try Self.decode(StatsReply.self, from: reply)
    }

    /// Sends PING and requires the echo: the connection is open and in sync.
    public func requirePing(_ bytes: [UInt8] = [0x67, 0x6d, 0x65, 0x6d, 0x64]) throws {
        let reply = try self.ping(bytes)
        try reply.requireSuccess()
        guard reply.payload == bytes else {
            throw GmemTestingError.unexpectedFrame(reply.header, payload: reply.payload, expected: "the PING echo")
        }
    }
}
