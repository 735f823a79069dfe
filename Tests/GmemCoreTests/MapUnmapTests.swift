import Testing

@testable import GmemCore

/// Transient reads and writes: the acquire, copy, release protocol, across
/// pages and folios, and every way an address can be wrong.
@Suite("Transient read and write")
struct MapUnmapTests {
    static let folioSizes = [4 * KiB, 16 * KiB, 2 * MiB]

    /// A region of at least two folios and 16 pages.
    func region(folio: Int) throws -> GuestMemory {
        try makeMemory(pages: max(16, 2 * folio / pageSize), folioSize: folio)
    }

    @Test("round trip crossing pages and a folio boundary", arguments: folioSizes)
    func crossingPagesAndFolios(folio: Int) throws {
        let memory = try self.region(folio: folio)
        // From 100 bytes before the page before a folio boundary to 100 bytes
        // past the page after it: four pages, one folio boundary.
        let boundary = max(folio, 2 * pageSize)
        let start = boundary - pageSize - 100
        let data = pattern(2 * pageSize + 200, seed: 3)
        try memory.writeBytes(data, at: GuestPhysicalAddress(UInt64(start)))
        #expect(try memory.readBytes(at: GuestPhysicalAddress(UInt64(start)), count: data.count) == data)
        // A sub-range read that starts and ends inside different pages.
        let inner = try memory.readBytes(at: GuestPhysicalAddress(UInt64(start + 50)), count: pageSize + 7)
        #expect(inner == Array(data[50..<(50 + pageSize + 7)]))
        // The bytes around the write are untouched (a fresh memfd reads zero).
        #expect(
            try memory.readBytes(at: GuestPhysicalAddress(UInt64(start - 16)), count: 16)
                == [UInt8](repeating: 0, count: 16)
        )
        #expect(
            try memory.readBytes(at: GuestPhysicalAddress(UInt64(start + data.count)), count: 16)
                == [UInt8](repeating: 0, count: 16)
        )
        // Afterwards nothing is held and every page is inaccessible again.
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        #expect(memory.invariantViolations().isEmpty)
        try memory.expectKernelAgrees()
    }

    @Test("a whole large folio, every page of it accessible during the copy", arguments: [16 * KiB, 2 * MiB])
    func everyPageOfALargeFolio(folio: Int) throws {
        let memory = try self.region(folio: folio)
        let pagesPerFolio = folio / pageSize
        let data = pattern(folio, seed: 9)
        try memory.writeBytes(data, at: GuestPhysicalAddress(UInt64(folio)))
        let pages = pagesPerFolio..<(2 * pagesPerFolio)
        try memory.withBytes(at: GuestPhysicalAddress(UInt64(folio)), count: folio) { (bytes) throws in
            // The seed restored only &folio->page; here every page must be readable.
            #expect(Array(bytes) == data)
            #expect(try memory.states(pages).allSatisfy { $0 == privateHeld(1) })
            #expect(memory.kernelAccessibility(pages).allSatisfy { $0 })
        }
        #expect(try memory.states(pages).allSatisfy { $0 == privateInaccessible })
        #expect(memory.kernelAccessibility(pages).allSatisfy { !$0 })
    }

    @Test("a tail page of a large folio is readable while only the head page is held")
    func tailPageWhileHeadHeld() throws {
        let memory = try self.region(folio: 16 * KiB)
        try memory.writeBytes(pattern(8, seed: 4), at: gpa(page: 3, offset: 8))
        let head = try memory.activateCache(at: gpa(page: 0), length: 64)
        #expect(try memory.readBytes(at: gpa(page: 3, offset: 8), count: 8) == pattern(8, seed: 4))
        #expect(
            try memory.states(0..<4) == [privateHeld(1), privateInaccessible, privateInaccessible, privateInaccessible]
        )
        memory.deactivate(head)
        try memory.expectKernelAgrees()
    }

    @Test("contents survive while the page is inaccessible")
    func contentsPersist() throws {
        let memory = try makeMemory(pages: 4)
        try memory.writeBytes(pattern(pageSize), at: gpa(page: 2))
        #expect(try memory.state(ofPage: 2) == privateInaccessible)
        #expect(try memory.readBytes(at: gpa(page: 2), count: pageSize) == pattern(pageSize))
    }

    @Test("out of bounds and overflowing addresses are EFAULT")
    func outOfBounds() throws {
        let memory = try makeMemory(pages: 4)
        let size = memory.geometry.regionSize
        let cases: [(UInt64, Int)] = [
            (size - 8, 16),  // straddles the end
            (size, 1),  // starts at the end
            (size, 0),  // empty, but not inside the region
            (size + UInt64(pageSize), 8),
            (UInt64.max - 15, 32),  // the end overflows 64 bits
            (UInt64.max - 15, 8),  // no overflow, far outside
            (UInt64.max, 0),
        ]
        for (address, count) in cases {
            expectGmemError(.badAddress) { _ = try memory.readBytes(at: GuestPhysicalAddress(address), count: count) }
            expectGmemError(.badAddress) { try memory.writeBytes(pattern(count), at: GuestPhysicalAddress(address)) }
            expectGmemError(.badAddress) {
                try memory.withBytes(at: GuestPhysicalAddress(address), count: count) { _ in }
            }
        }
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        #expect(memory.statistics.protectCalls == 0, "a refused access acquires nothing")
        #expect(memory.statistics.writes == 0 && memory.statistics.reads == 0)
        // A refused write changes nothing, not even the part inside the region.
        #expect(try memory.readBytes(at: GuestPhysicalAddress(size - 8), count: 8) == [UInt8](repeating: 0, count: 8))
    }

    @Test("zero-length accesses inside the region succeed without touching a page")
    func zeroLength() throws {
        let memory = try makeMemory(pages: 4)
        let size = memory.geometry.regionSize
        for address in [0, UInt64(pageSize) + 5, size - 1] {
            #expect(try memory.readBytes(at: GuestPhysicalAddress(address), count: 0) == [])
            try memory.writeBytes([], at: GuestPhysicalAddress(address))
            let count = try memory.withBytes(at: GuestPhysicalAddress(address), count: 0) { $0.count }
            #expect(count == 0)
        }
        #expect(memory.statistics.protectCalls == 0)
        #expect(memory.statistics.reads == 3)
        #expect(memory.statistics.writes == 3)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
    }

    @Test("withBytes holds the pages for exactly the body's duration")
    func withBytesHolds() throws {
        let memory = try makeMemory(pages: 4)
        try memory.writeBytes(pattern(100), at: gpa(page: 1, offset: pageSize - 50))
        struct BodyError: Error {}
        #expect(throws: BodyError.self) {
            try memory.withBytes(at: gpa(page: 1, offset: pageSize - 50), count: 100) { (bytes) throws in
                #expect(Array(bytes) == pattern(100))
                #expect(try memory.states(1..<3) == [privateHeld(1), privateHeld(1)])
                throw BodyError()
            }
        }
        // A throwing body still releases.
        #expect(try memory.states(0..<4).allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees()
    }

    @Test("access counters: defaults, per-caller shards and retirement")
    func counters() throws {
        let memory = try makeMemory(pages: 4)
        let mine = memory.makeCounters()
        try memory.writeBytes(pattern(10), at: 0)
        try pattern(300).withUnsafeBytes { try memory.write(at: 100, from: $0, counters: mine) }
        var buffer = [UInt8](repeating: 0, count: 70)
        try buffer.withUnsafeMutableBytes { try memory.read(at: 0, into: $0, counters: mine) }
        var statistics = memory.statistics
        #expect(statistics.writes == 2 && statistics.bytesWritten == 310)
        #expect(statistics.reads == 1 && statistics.bytesRead == 70)
        memory.retire(mine)
        memory.retire(mine)  // a second retirement must not count twice
        statistics = memory.statistics
        #expect(statistics.writes == 2 && statistics.bytesWritten == 310 && statistics.bytesRead == 70)
    }
}
