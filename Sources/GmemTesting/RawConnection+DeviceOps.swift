//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RawConnection operations for device models: READV, WRITEV, ATOMIC, GPC_ATOMIC.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

extension RawConnection {
    public func readv(_ segments: [WireSegment]) throws -> ReplyFrame {
        try self.request({ try Request.readv(segments: segments).encoded(id: $0) }, opcode: .readv)
    }

    public func writev(_ segments: [WireSegment], data: [UInt8]) throws -> ReplyFrame {
        try self.request(
            { id in try data.withUnsafeBytes { try Request.writev(segments: segments, data: $0).encoded(id: id) } },
            opcode: .writev
        )
    }

    public func atomic(gpa: UInt64, _ arguments: AtomicArguments) throws -> ReplyFrame {
        try self.request({ try Request.atomic(gpa: gpa, arguments).encoded(id: $0) }, opcode: .atomic)
    }

    public func gpcAtomic(handle: UInt64, offset: UInt32, _ arguments: AtomicArguments) throws -> ReplyFrame {
        try self.request(
            { try Request.gpcAtomic(handle: handle, offset: offset, arguments).encoded(id: $0) },
            opcode: .gpcAtomic
        )
    }

    // MARK: Requests that must succeed

    /// The bytes of every segment, back to back.
    public func readvBytes(_ segments: [WireSegment]) throws -> [UInt8] {
        let reply = try self.readv(segments)
        try reply.requireSuccess()
        let total = segments.reduce(0) { $0 + Int($1.length) }
        guard reply.payload.count == total else {
            throw GmemTestingError.protocolViolation("READV of \(total) bytes returned \(reply.payload.count)")
        }
        return reply.payload
    }

    /// The old value an ATOMIC returned.
    public func atomicValue(gpa: UInt64, _ arguments: AtomicArguments) throws -> UInt64 {
        let reply = try self.atomic(gpa: gpa, arguments)
        try reply.requireSuccess()
        return try Self.decode(AtomicReply.self, from: reply).value
    }

    /// The old value a GPC_ATOMIC returned.
    public func gpcAtomicValue(handle: UInt64, offset: UInt32, _ arguments: AtomicArguments) throws -> UInt64 {
        let reply = try self.gpcAtomic(handle: handle, offset: offset, arguments)
        try reply.requireSuccess()
        return try Self.decode(AtomicReply.self, from: reply).value
    }
}
