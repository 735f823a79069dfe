//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClient device-model operations: READV, WRITEV, ATOMIC and GPC_ATOMIC.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

extension GmemClient {
    /// Reads every segment in one READV and returns their bytes, one array per segment, in order.
    ///
    /// The daemon restores the union of the segments' pages once, so a descriptor chain costs one round trip and
    /// one restore/zap pair. The segments' total must fit `max_payload`, and their number the daemon's
    /// `max_segments` (``HelloReply/maxSegments`` when ``HelloReply/Features/deviceOps`` was requested).
    ///
    /// - Throws: ``GmemClientError``; after partial progress its ``GmemClientError/bytesCompleted`` counts the
    ///   bytes read in segment order (no data is returned then).
    public func readv(_ segments: [(gpa: UInt64, count: Int)]) async throws -> [[UInt8]] {
        var table: [WireSegment] = []
        for segment in segments {
            table.append(
                WireSegment(
                    gpa: segment.gpa,
                    length: try GuestPageCacheHandle.wireLength(segment.count, opcode: .readv)
                )
            )
        }
        let frame = try await self.perform(try self.makeRequest(.readv(segments: table)))
        let total = segments.reduce(0) { $0 + $1.count }
        guard frame.payload.count == total else {
            throw self.violation(
                "a READV reply of \(frame.payload.count) bytes to a request for \(total)",
                opcode: .readv
            )
        }
        var result: [[UInt8]] = []
        var offset = 0
        for segment in segments {
            result.append(Array(frame.payload[offset..<(offset + segment.count)]))
            offset += segment.count
        }
        return result
    }

    /// Writes every segment in one WRITEV, in order (a later segment wins where two overlap).
    ///
    /// - Throws: ``GmemClientError``; after partial progress its ``GmemClientError/bytesCompleted`` counts the
    ///   bytes written in segment order.
    public func writev(_ segments: [(gpa: UInt64, bytes: [UInt8])]) async throws {
        var table: [WireSegment] = []
        var data: [UInt8] = []
        for segment in segments {
            let length = try GuestPageCacheHandle.wireLength(segment.bytes.count, opcode: .writev)
            table.append(WireSegment(gpa: segment.gpa, length: length))
            data.append(contentsOf: segment.bytes)
        }
        let request = try data.withUnsafeBytes { bytes in
            try self.makeRequest(.writev(segments: table, data: bytes))
        }
        try await self.performExpectingEmptyReply(request)
    }

    /// Runs `op` atomically on the naturally aligned `width`-byte value at `gpa` and returns the old value (the
    /// value for LOAD, 0 for STORE).
    ///
    /// - Throws: ``GmemClientError``: `EINVAL` (width, alignment, operand bits), `EPERM` (a read-only connection
    ///   and any `op` but LOAD), `EFAULT`.
    public func atomic(
        _ op: AtomicOp,
        width: Int,
        at gpa: UInt64,
        operand: UInt64 = 0,
        expected: UInt64 = 0
    ) async throws -> UInt64 {
        let arguments = try Self.atomicArguments(
            op,
            width: width,
            operand: operand,
            expected: expected,
            opcode: .atomic
        )
        return try await self.performAtomic(try self.makeRequest(.atomic(gpa: gpa, arguments)), opcode: .atomic)
    }

    /// ``AtomicArguments`` from the caller's values, or the `EINVAL` the daemon would answer.
    static func atomicArguments(
        _ op: AtomicOp,
        width: Int,
        operand: UInt64,
        expected: UInt64,
        opcode: Opcode
    ) throws(GmemClientError) -> AtomicArguments {
        let arguments = AtomicArguments(
            op: op,
            width: UInt8(truncatingIfNeeded: width),
            operand: operand,
            expected: expected
        )
        guard width > 0, width <= 8, arguments.isWellFormed else {
            throw .invalidArgument(
                .invalidArgument,
                opcode: opcode,
                "\(op) of \(width) bytes: the width is 1, 2, 4 or 8 and the values must fit it"
                    + (op == .compareExchange ? "" : (op == .load ? ", with no operand" : ", with no expected value"))
            )
        }
        return arguments
    }

    /// Sends an ATOMIC or GPC_ATOMIC and decodes its `{u64 value}`.
    func performAtomic(_ request: OutgoingRequest, opcode: Opcode) async throws -> UInt64 {
        let frame = try await self.perform(request)
        do {
            return try frame.decodePayload(as: AtomicReply.self).value
        } catch {
            throw self.violation("a malformed \(opcode) reply of \(frame.payload.count) bytes", opcode: opcode)
        }
    }
}

extension GuestPageCacheHandle {
    /// Runs `op` atomically on the `width`-byte value at `offset` in the window, without any protection call in
    /// the daemon, and returns the old value.
    ///
    /// - Throws: ``GmemClientError``: `ENOENT` (deactivated), `EINVAL` (beyond the window or misaligned), `ESTALE`,
    ///   `EPERM` (read-only and any `op` but LOAD).
    public func atomic(
        _ op: AtomicOp,
        width: Int,
        offset: Int = 0,
        operand: UInt64 = 0,
        expected: UInt64 = 0
    ) async throws -> UInt64 {
        let offset32 = try Self.wireLength(offset, opcode: .gpcAtomic)
        let arguments = try GmemClient.atomicArguments(
            op,
            width: width,
            operand: operand,
            expected: expected,
            opcode: .gpcAtomic
        )
        let request = try self.client.makeRequest(.gpcAtomic(handle: self.handle, offset: offset32, arguments))
        return try await self.client.performAtomic(request, opcode: .gpcAtomic)
    }
}
