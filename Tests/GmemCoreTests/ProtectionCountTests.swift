import Testing

@testable import GmemCore

/// How many protection calls each access makes: one per contiguous run, none
/// when the pages are already held, none at all in direct-map mode.
@Suite("Protection call counts")
struct ProtectionCountTests {
    func memory(folio: Int? = nil, pages: Int = 32) throws -> (GuestMemory, FaultInjectingProtection) {
        let protection = FaultInjectingProtection()
        return (try makeMemory(pages: pages, folioSize: folio, protection: protection), protection)
    }

    @Test("a read over 16 private pages is one restore and one zap", arguments: [4 * KiB, 16 * KiB, 2 * MiB])
    func sixteenPages(folio: Int) throws {
        let (memory, log) = try self.memory(folio: folio, pages: max(32, folio / pageSize))
        let (bytes, calls) = try memory.protectCalls {
            try memory.readBytes(at: gpa(page: 4, offset: 1), count: 15 * pageSize)
        }
        #expect(bytes.count == 15 * pageSize)
        #expect(calls == 2)
        #expect(log.calls.map(\.accessible) == [true, false])
        #expect(log.calls.allSatisfy { $0.length == 16 * pageSize })
        #expect(memory.statistics.restores == 16 && memory.statistics.zaps == 16)
    }

    @Test("a cache on the middle page splits the zap in two")
    func middlePageHeld() throws {
        let (memory, log) = try self.memory()
        let cache = try memory.activateCache(at: gpa(page: 12), length: 8)
        log.clearLog()
        let (_, calls) = try memory.protectCalls { try memory.readBytes(at: gpa(page: 4), count: 16 * pageSize) }
        #expect(calls == 3)
        let base = memory.mappingRange.start
        let summary = log.calls.map { ($0.accessible, Int($0.address - base) / pageSize, $0.length / pageSize) }
        // The restore may span the held page (already accessible); the zaps must not touch it.
        #expect(summary.count == 3)
        if summary.count == 3 {
            #expect(summary[0] == (true, 4, 16))
            #expect(summary[1] == (false, 4, 8))
            #expect(summary[2] == (false, 13, 7))
        }
        #expect(try memory.state(ofPage: 12) == privateHeld(1))
        memory.deactivate(cache)
        try memory.expectKernelAgrees()
    }

    @Test("held pages and cache copies make no protection call")
    func heldPagesAreFree() throws {
        let (memory, _) = try self.memory()
        let cache = try memory.activateCache(at: gpa(page: 5, offset: 100), length: 200)
        let (_, readCalls) = try memory.protectCalls { try memory.readBytes(at: gpa(page: 5, offset: 10), count: 500) }
        let (_, writeCalls) = try memory.protectCalls {
            try memory.writeBytes(pattern(500), at: gpa(page: 5, offset: 10))
        }
        let (_, cacheCalls) = try memory.protectCalls {
            for offset in stride(from: 0, to: 200, by: 8) {
                try memory.writeBytes(pattern(8), cache: cache, offset: offset)
                _ = try memory.readBytes(cache: cache, offset: offset, count: 8)
            }
        }
        #expect(readCalls == 0 && writeCalls == 0 && cacheCalls == 0)
        memory.deactivate(cache)
    }

    @Test("shared pages inside a range are neither restored nor zapped")
    func sharedPagesInside() throws {
        let (memory, log) = try self.memory()
        try memory.setAttributes(at: gpa(page: 8), size: UInt64(4 * pageSize), shared: true)
        log.clearLog()
        let (_, calls) = try memory.protectCalls { try memory.readBytes(at: gpa(page: 6), count: 8 * pageSize) }
        // Restore 6..<14 in one call (8..<12 already accessible), zap 6..<8 and 12..<14.
        #expect(calls == 3)
        #expect(log.calls.filter { !$0.accessible }.map { $0.length / pageSize } == [2, 2])
        let (_, sharedCalls) = try memory.protectCalls { try memory.readBytes(at: gpa(page: 8), count: 4 * pageSize) }
        #expect(sharedCalls == 0)
        try memory.expectKernelAgrees()
    }

    @Test("direct-map mode never makes a protection call and keeps every page accessible")
    func directMap() throws {
        let (memory, log) = try {
            let protection = FaultInjectingProtection()
            return (try makeMemory(pages: 32, directMap: true, protection: protection), protection)
        }()
        #expect(try memory.allStates().allSatisfy { $0.isAccessible && $0.count == 0 && $0.isPrivate })
        try memory.writeBytes(pattern(20 * pageSize), at: gpa(page: 2))
        #expect(try memory.readBytes(at: gpa(page: 2), count: 20 * pageSize) == pattern(20 * pageSize))
        let cache = try memory.activateCache(at: gpa(page: 3), length: 64)
        #expect(try memory.state(ofPage: 3) == privateHeld(1), "references are still counted")
        try memory.writeBytes(pattern(64), cache: cache)
        try memory.refresh(cache, to: gpa(page: 9), length: 64)
        try memory.setAttributes(at: 0, size: UInt64(16 * pageSize), shared: true)
        try memory.setAttributes(at: 0, size: UInt64(32 * pageSize), shared: false)
        try memory.discard(at: gpa(page: 4), size: UInt64(4 * pageSize))
        memory.deactivate(cache)
        #expect(memory.statistics.protectCalls == 0)
        #expect(log.calls.isEmpty)
        #expect(try memory.allStates().allSatisfy { $0.isAccessible && $0.count == 0 })
        #expect(memory.invariantViolations().isEmpty)
        try memory.expectKernelAgrees()
    }
}
