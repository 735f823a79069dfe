import Testing

@testable import GmemCore

/// READV and WRITEV: the union of the segments' pages is restored and zapped
/// once per contiguous run, every segment is copied, and failures say how far
/// they got.
@Suite("Scatter-gather access")
struct VectorAccessTests {
    /// One segment of `length` bytes at the start of each page of `pages`, plus `offset`.
    func segments(_ pages: Range<Int>, offset: Int = 0, length: Int) -> [GuestSegment] {
        pages.map { GuestSegment(address: gpa(page: $0, offset: offset), length: length) }
    }

    func readv(_ memory: GuestMemory, _ segments: [GuestSegment]) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: segments.reduce(0) { $0 + $1.length })
        try bytes.withUnsafeMutableBytes { buffer in try memory.readv(segments, into: buffer) }
        return bytes
    }

    func writev(_ memory: GuestMemory, _ segments: [GuestSegment], _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buffer in try memory.writev(segments, from: buffer) }
    }

    @Test("16 segments over 16 contiguous private pages cost one restore and one zap")
    func sixteenSegments() throws {
        let protection = FaultInjectingProtection()
        let memory = try makeMemory(pages: 32, protection: protection)
        try memory.writeBytes(pattern(16 * pageSize, seed: 3), at: gpa(page: 4))
        protection.clearLog()
        let chain = self.segments(4..<20, offset: 100, length: 64)
        let (bytes, calls) = try memory.protectCalls { try self.readv(memory, chain) }
        #expect(calls == 2)
        #expect(protection.calls.map(\.accessible) == [true, false])
        #expect(protection.calls.allSatisfy { $0.length == 16 * pageSize })
        let whole = pattern(16 * pageSize, seed: 3)
        let expected = (0..<16).flatMap { whole[($0 * pageSize + 100)..<($0 * pageSize + 164)] }
        #expect(bytes == expected)
        try memory.expectKernelAgrees()
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
    }

    @Test("segments in any order, overlapping or on one page, are copied in request order")
    func orderAndOverlap() throws {
        let memory = try makeMemory(pages: 16)
        let chain = [
            GuestSegment(address: gpa(page: 9, offset: 8), length: 16),
            GuestSegment(address: gpa(page: 2, offset: pageSize - 4), length: 8),
            GuestSegment(address: gpa(page: 9, offset: 0), length: 0),
            GuestSegment(address: gpa(page: 9, offset: 16), length: 16),
        ]
        let data = pattern(40, seed: 9)
        let (_, writeCalls) = try memory.protectCalls { try self.writev(memory, chain, data) }
        // Two runs (pages 2-3 and 9): two restores and two zaps.
        #expect(writeCalls == 4)
        try memory.expectKernelAgrees()
        #expect(try memory.readBytes(at: gpa(page: 2, offset: pageSize - 4), count: 8) == Array(data[16..<24]))
        // The later segment overlaps the first one's last 8 bytes and wins.
        #expect(try memory.readBytes(at: gpa(page: 9, offset: 8), count: 24) == Array(data[0..<8] + data[24..<40]))
        #expect(try self.readv(memory, chain) == Array(data[0..<8] + data[24..<32] + data[16..<24] + data[24..<40]))
        try memory.expectKernelAgrees()
    }

    @Test("held pages make no protection call and keep their references until released")
    func holding() throws {
        let memory = try makeMemory(pages: 16)
        var held = HeldPages()
        let chain = self.segments(3..<6, length: 8)
        var buffer = [UInt8](repeating: 0, count: 24)
        let (_, first) = try memory.protectCalls {
            try buffer.withUnsafeMutableBytes { try memory.readv(chain, into: $0, holding: &held) }
        }
        let (_, second) = try memory.protectCalls {
            try buffer.withUnsafeMutableBytes { try memory.readv(chain, into: $0, holding: &held) }
        }
        #expect(first == 1 && second == 0)
        #expect(try memory.states(3..<6) == Array(repeating: privateHeld(1), count: 3))
        try memory.expectKernelAgrees()
        memory.release(&held)
        #expect(try memory.states(3..<6) == Array(repeating: privateInaccessible, count: 3))
        try memory.expectKernelAgrees()
    }

    @Test("a segment outside the region fails with -EFAULT before any page is touched")
    func bounds() throws {
        let memory = try makeMemory(pages: 8)
        let chain = [
            GuestSegment(address: gpa(page: 1), length: 8),
            GuestSegment(address: gpa(page: 7, offset: pageSize - 4), length: 8),
        ]
        let (_, calls) = try memory.protectCalls {
            let error = #expect(throws: VectorAccessError.self) { try self.readv(memory, chain) }
            #expect(error?.error.code == .badAddress)
            #expect(error?.madeProgress == false)
        }
        #expect(calls == 0)
        let empty = [GuestSegment(address: gpa(page: 8), length: 0)]
        #expect(throws: VectorAccessError.self) { try self.readv(memory, empty) }
        #expect(try self.readv(memory, [GuestSegment(address: gpa(page: 7), length: 0)]).isEmpty)
    }

    @Test("segments that do not add up to the buffer are -EINVAL")
    func bufferMismatch() throws {
        let memory = try makeMemory(pages: 8)
        let chain = self.segments(0..<2, length: 8)
        let error = #expect(throws: VectorAccessError.self) {
            try [UInt8](repeating: 0, count: 15).withUnsafeBytes { try memory.writev(chain, from: $0) }
        }
        #expect(error?.error.code == .invalidArgument)
        let negative = [GuestSegment(address: gpa(page: 0), length: -1)]
        #expect(throws: VectorAccessError.self) { try self.writev(memory, negative, []) }
    }

    @Test("a failed restore of a later run still copies the segments before it, and says how far it got")
    func partialProgress() throws {
        let protection = FaultInjectingProtection()
        let memory = try makeMemory(pages: 16, protection: protection)
        // Runs in address order: pages 2, 6, 10. The restore of page 6 (call 2) fails.
        let chain = [
            GuestSegment(address: gpa(page: 2), length: 8),
            GuestSegment(address: gpa(page: 10), length: 8),
            GuestSegment(address: gpa(page: 6), length: 8),
        ]
        protection.failCall(2)
        let error = #expect(throws: VectorAccessError.self) { try self.writev(memory, chain, pattern(24, seed: 5)) }
        #expect(error?.error.code == .noMemory)
        // Segment 0 (page 2) was written; segment 1 (page 10) was never made accessible.
        #expect(error?.segment == 1 && error?.segmentBytes == 0 && error?.bytesCompleted == 8)
        #expect(try memory.readBytes(at: gpa(page: 2), count: 8) == Array(pattern(24, seed: 5)[0..<8]))
        #expect(try memory.readBytes(at: gpa(page: 10), count: 8) == [UInt8](repeating: 0, count: 8))
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees()

        // When the first run fails, nothing is transferred.
        protection.failCall(1)
        let none = #expect(throws: VectorAccessError.self) { try self.readv(memory, chain) }
        #expect(none?.madeProgress == false && none?.segment == 0)
        try memory.expectKernelAgrees()
    }

    @Test("more runs than HeldPages keeps are released after the copy")
    func manyRuns() throws {
        let memory = try makeMemory(pages: 160)
        var held = HeldPages()
        let chain = stride(from: 0, to: 160, by: 2).map { GuestSegment(address: gpa(page: $0), length: 4) }
        var buffer = [UInt8](repeating: 0, count: chain.count * 4)
        try buffer.withUnsafeMutableBytes { try memory.readv(chain, into: $0, holding: &held) }
        let states = try memory.allStates()
        #expect(states.filter { $0 == privateHeld(1) }.count == HeldPages.maximumRuns)
        try memory.expectKernelAgrees()
        memory.release(&held)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees()
    }

    @Test("the union merges overlapping and touching runs only")
    func union() {
        #expect(GuestMemory.union([5..<7, 0..<2, 2..<3, 6..<9, 4..<4, 11..<12]) == [0..<3, 5..<9, 11..<12])
        #expect(GuestMemory.union([]) == [])
    }
}
