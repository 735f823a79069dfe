//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClient memory operations: READ, WRITE, PING, SET_ATTRIBUTES, DISCARD, STATS, PAGE_STATE.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import NIOCore

extension GmemClient {
    /// Reads `count` bytes of guest memory from `gpa`.
    ///
    /// A read larger than `max_payload` is split into pipelined READs of at most `max_payload` bytes, sent in one
    /// flush; before splitting, the whole range is checked against the region (`EFAULT`), so that a split read
    /// fails exactly like a single one would.
    ///
    /// - Throws: ``GmemClientError``; after partial progress its ``GmemClientError/bytesCompleted`` counts the
    ///   bytes read from `gpa` on (no data is returned then).
    public func read(at gpa: UInt64, count: Int) async throws -> [UInt8] {
        let chunk = Int(self.hello.maxPayload)
        let ranges = try self.split(gpa: gpa, count: count, chunk: chunk, opcode: .read)
        var requests: [OutgoingRequest] = []
        requests.reserveCapacity(ranges.count)
        for range in ranges {
            requests.append(try self.makeRequest(.read(gpa: range.gpa, length: UInt32(range.count))))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        try await self.collect(self.submit(requests), ranges: ranges, opcode: .read) { frame, range in
            guard frame.payload.count == range.count else {
                throw self.violation(
                    "a READ reply of \(frame.payload.count) bytes to a request for \(range.count)",
                    opcode: .read
                )
            }
            bytes.append(contentsOf: frame.payload)
        }
        return bytes
    }

    /// Writes `bytes` to guest memory at `gpa`.
    ///
    /// A write larger than `max_payload − 16` is split into pipelined WRITEs, sent in one flush, after the whole
    /// range has been checked against the region (`EFAULT`). The daemon applies the chunks in order; when one fails,
    /// the chunks after it may still have been written.
    ///
    /// - Throws: ``GmemClientError``; after partial progress its ``GmemClientError/bytesCompleted`` counts the
    ///   bytes written from `gpa` on.
    public func write(at gpa: UInt64, bytes: [UInt8]) async throws {
        let chunk = Int(self.hello.maxPayload) - 16
        let ranges = try self.split(gpa: gpa, count: bytes.count, chunk: chunk, opcode: .write)
        var requests: [OutgoingRequest] = []
        requests.reserveCapacity(ranges.count)
        try bytes.withUnsafeBytes { buffer in
            for range in ranges {
                let data = UnsafeRawBufferPointer(rebasing: buffer[range.offset..<(range.offset + range.count)])
                requests.append(try self.makeRequest(.write(gpa: range.gpa, data: data)))
            }
        }
        try await self.collect(self.submit(requests), ranges: ranges, opcode: .write) { frame, _ in
            guard frame.payload.isEmpty else {
                throw self.violation("a WRITE reply with a payload", opcode: .write)
            }
        }
    }

    /// Sends PING with `payload` (at most `max_payload` bytes) and checks the daemon echoes it unchanged.
    public func ping(_ payload: [UInt8] = []) async throws {
        let request = try payload.withUnsafeBytes { bytes in
            try self.makeRequest(.ping(bytes))
        }
        let frame = try await self.perform(request)
        guard frame.payload == payload else {
            throw self.violation("a PING reply that differs from the request", opcode: .ping)
        }
    }

    /// Makes every page of the page-aligned range `[gpa, gpa + size)` private (`private: true`) or shared.
    ///
    /// Guest page caches of any connection that cover a converted page are invalidated.
    public func setAttributes(at gpa: UInt64, size: UInt64, private isPrivate: Bool) async throws {
        let attributes = isPrivate ? WireProtocol.attributePrivate : 0
        try await self.performExpectingEmptyReply(
            try self.makeRequest(.setAttributes(gpa: gpa, size: size, attributes: attributes))
        )
    }

    /// Discards the contents of the page-aligned range `[gpa, gpa + size)`: later reads return zeros.
    ///
    /// Guest page caches of any connection that cover a discarded page are invalidated.
    public func discard(at gpa: UInt64, size: UInt64) async throws {
        try await self.performExpectingEmptyReply(try self.makeRequest(.discard(gpa: gpa, size: size)))
    }

    /// The daemon's counters; look them up by name, e.g. `stats["bytes_read"]`.
    public func stats() async throws -> StatsReply {
        let frame = try await self.perform(try self.makeRequest(.stats))
        do {
            return try frame.decodePayload(as: StatsReply.self)
        } catch {
            throw self.violation("a malformed STATS reply", opcode: .stats)
        }
    }

    /// The refcount and state of `count` pages from the page-aligned `gpa`, one entry per page.
    ///
    /// More pages than one reply holds (`max_payload / 4`) are fetched with pipelined PAGE_STATE requests, after
    /// the whole range has been checked against the region.
    public func pageStates(at gpa: UInt64, count: Int) async throws -> [PageStateEntry] {
        let pageSize = UInt64(self.hello.pageSize)
        let perRequest = min(Int(self.hello.maxPayload) / PageStateEntry.size, Int(UInt32.max))
        guard perRequest > 0 else {
            throw GmemClientError.invalidArgument(.messageTooLong, opcode: .pageState, "max_payload holds no page")
        }
        // Split in pages; the bounds check scales them to the bytes they cover.
        let ranges = try self.split(gpa: gpa, count: count, chunk: perRequest, opcode: .pageState, scale: pageSize)
        var requests: [OutgoingRequest] = []
        for range in ranges {
            requests.append(try self.makeRequest(.pageState(gpa: range.gpa, pageCount: UInt32(range.count))))
        }
        var entries: [PageStateEntry] = []
        entries.reserveCapacity(count)
        try await self.collect(self.submit(requests), ranges: ranges, opcode: .pageState) { frame, range in
            let reply: PageStateReply
            do {
                reply = try frame.decodePayload(as: PageStateReply.self)
            } catch {
                throw self.violation("a malformed PAGE_STATE reply", opcode: .pageState)
            }
            guard reply.entries.count == range.count else {
                throw self.violation(
                    "\(reply.entries.count) page states for \(range.count) pages",
                    opcode: .pageState
                )
            }
            entries.append(contentsOf: reply.entries)
        }
        return entries
    }
}

// MARK: - Splitting

/// One frame's share of a split operation.
struct ChunkRange: Sendable, Hashable {
    /// The request's address.
    var gpa: UInt64
    /// Units (bytes or pages) before this chunk.
    var offset: Int
    /// Units in this chunk.
    var count: Int
}

extension GmemClient {
    /// Cuts `count` units from `gpa` into chunks of at most `chunk` units; a unit is `scale` bytes.
    ///
    /// One chunk (possibly empty) goes to the daemon unchecked, so that it reports errors itself. Several chunks
    /// need the whole range inside the region first: a split request must not half-apply for a bounds error the
    /// daemon would have refused atomically.
    func split(
        gpa: UInt64,
        count: Int,
        chunk: Int,
        opcode: Opcode,
        scale: UInt64 = 1
    ) throws(GmemClientError) -> [ChunkRange] {
        guard count >= 0 else {
            throw .invalidArgument(.invalidArgument, opcode: opcode, "a negative length (\(count))")
        }
        guard count > chunk else {
            return [ChunkRange(gpa: gpa, offset: 0, count: count)]
        }
        let (bytes, overflow) = UInt64(count).multipliedReportingOverflow(by: scale)
        let (end, endOverflow) = gpa.addingReportingOverflow(bytes)
        guard !overflow, !endOverflow, end <= self.hello.regionSize else {
            throw .invalidArgument(.badAddress, opcode: opcode, Errno.badAddress.sentence)
        }
        var ranges: [ChunkRange] = []
        ranges.reserveCapacity(count / chunk + 1)
        var offset = 0
        while offset < count {
            let length = min(chunk, count - offset)
            ranges.append(ChunkRange(gpa: gpa + UInt64(offset) * scale, offset: offset, count: length))
            offset += length
        }
        return ranges
    }

    /// Awaits every reply of a split operation in order, handing successes to `body` until the first failure.
    ///
    /// Every reply is awaited even after a failure, so that nothing of the operation is in flight when it throws.
    /// The error thrown is the first failed chunk's; for READ and WRITE its ``GmemClientError/bytesCompleted`` also
    /// counts the bytes of the chunks before it.
    func collect(
        _ futures: [EventLoopFuture<ReplyFrame>],
        ranges: [ChunkRange],
        opcode: Opcode,
        _ body: (ReplyFrame, ChunkRange) throws -> Void
    ) async throws {
        var firstError: (any Error)?
        for (future, range) in zip(futures, ranges) {
            do {
                let frame = try await future.get()
                if firstError == nil { try body(frame, range) }
            } catch let error as GmemClientError {
                guard firstError == nil else { continue }
                let transfers = opcode == .read || opcode == .write
                firstError = transfers ? error.afterPrefix(of: UInt64(range.offset)) : error
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }
}
