import Testing

@testable import GmemCore

/// 1 TiB regions: metadata must be sparse, so start-up, a few accesses and a
/// whole-region conversion cost megabytes of RSS, not gigabytes. RSS is
/// process-wide, so the suite runs one test at a time and the budget leaves
/// room for the small regions other suites touch meanwhile.
@Suite("1 TiB regions", .serialized)
struct LargeRegionTests {
    static let budget = 64 * MiB

    func oneTiB(folio: Int = 2 * MiB) throws -> GuestMemory {
        try GuestMemory(.init(size: TiB, folioSize: folio))
    }

    @Test("a 1 TiB region starts with less than 64 MiB of RSS growth, and stays there after a few accesses")
    func startup() throws {
        let before = ProcSelf.residentBytes()
        let memory = try self.oneTiB()
        let started = ProcSelf.residentBytes()
        #expect(started - before < Self.budget, "start-up grew RSS by \(started - before) bytes")
        #expect(memory.geometry.pageCount == 1 << 28)
        let (start, end) = memory.mappingRange
        #expect(end - start == UInt(TiB))

        let probes: [UInt64] = [0, TiB / 2 + 12345, TiB - 4096]
        for (index, address) in probes.enumerated() {
            try memory.writeBytes(pattern(64, seed: UInt8(index)), at: GuestPhysicalAddress(address))
        }
        for (index, address) in probes.enumerated() {
            #expect(
                try memory.readBytes(at: GuestPhysicalAddress(address), count: 64) == pattern(64, seed: UInt8(index))
            )
        }
        let cache = try memory.activateCache(at: GuestPhysicalAddress(TiB - 64), length: 64)
        #expect(try memory.pageStates(at: GuestPhysicalAddress(TiB - 4096), pageCount: 1) == [privateHeld(1)])
        #expect(
            try memory.pageStates(at: GuestPhysicalAddress(TiB / 4), pageCount: 3)
                == Array(repeating: privateInaccessible, count: 3)
        )
        memory.deactivate(cache)
        expectGmemError(.badAddress) { _ = try memory.readBytes(at: GuestPhysicalAddress(TiB - 8), count: 16) }
        let touched = ProcSelf.residentBytes()
        #expect(touched - before < Self.budget, "a few accesses grew RSS by \(touched - before) bytes")
    }

    @Test("the whole 1 TiB region to shared and back: quick, and no per-page metadata")
    func bulkConversion() throws {
        let before = ProcSelf.residentBytes()
        let memory = try self.oneTiB()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try memory.setAttributes(at: 0, size: TiB, shared: true) == 1 << 28)
        let toShared = clock.now - start
        #expect(
            try memory.pageStates(at: GuestPhysicalAddress(TiB / 2), pageCount: 4)
                == Array(repeating: sharedIdle, count: 4)
        )
        let (low, high) = memory.mappingRange
        let sharedVMAs = ProcSelf.maps().filter { $0.end > low && $0.start < high }
        #expect(sharedVMAs.allSatisfy(\.isReadWrite) && sharedVMAs.first?.start == low && sharedVMAs.last?.end == high)
        try memory.writeBytes(pattern(32), at: GuestPhysicalAddress(TiB - 32))
        let midway = ProcSelf.residentBytes()

        let back = clock.now
        #expect(try memory.setAttributes(at: 0, size: TiB, shared: false) == 1 << 28)
        let toPrivate = clock.now - back
        #expect(
            try memory.pageStates(at: GuestPhysicalAddress(TiB / 2), pageCount: 4)
                == Array(repeating: privateInaccessible, count: 4)
        )
        let privateVMAs = ProcSelf.maps().filter { $0.end > low && $0.start < high }
        #expect(
            privateVMAs.allSatisfy(\.isNoAccess) && privateVMAs.first?.start == low && privateVMAs.last?.end == high
        )
        #expect(
            try memory.readBytes(at: GuestPhysicalAddress(TiB - 32), count: 32) == pattern(32),
            "contents survive both conversions"
        )
        let after = ProcSelf.residentBytes()

        #expect(midway - before < Self.budget, "to shared grew RSS by \(midway - before) bytes")
        #expect(after - before < Self.budget, "to shared and back grew RSS by \(after - before) bytes")
        // Generous bounds: this guards against per-page work, not a benchmark.
        #expect(toShared < .seconds(20) && toPrivate < .seconds(20), "to shared \(toShared), to private \(toPrivate)")
        #expect(memory.statistics.protectCalls <= 2 * (1 << 19) + 4, "at most one call per chunk per direction")
    }

    @Test("a bulk conversion around a live cache converts its chunk page by page and invalidates only it")
    func bulkConversionWithCache() throws {
        let memory = try self.oneTiB()
        let page = (1 << 27) + 5  // inside chunk 2^18, in the middle of the region
        let cache = try memory.activateCache(at: gpa(page: page), length: 8, tag: 5)
        let far = try memory.activateCache(at: gpa(page: page), length: 8, tag: 6)
        try memory.setAttributes(at: 0, size: TiB / 2, shared: true)  // ends just before the cache's chunk
        #expect(memory.describe(cache).isValid && memory.describe(far).isValid)
        try memory.setAttributes(at: 0, size: TiB, shared: true)
        #expect(!memory.describe(cache).isValid && !memory.describe(far).isValid)
        #expect(memory.statistics.invalidations == 2)
        #expect(try memory.state(ofPage: page) == sharedIdle)
        try memory.setAttributes(at: 0, size: TiB, shared: false)
        #expect(try memory.states((page - 2)..<(page + 2)) == Array(repeating: privateInaccessible, count: 4))
        try memory.expectKernelAgrees((page - 600)..<(page + 600))
        memory.deactivate(cache)
        memory.deactivate(far)
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("a 1 TiB direct-map region: the same RSS budget and no protection call")
    func directMapStartup() throws {
        let before = ProcSelf.residentBytes()
        let memory = try GuestMemory(.init(size: TiB, directMap: true))
        try memory.writeBytes(pattern(16), at: GuestPhysicalAddress(TiB - 16))
        #expect(try memory.readBytes(at: GuestPhysicalAddress(TiB - 16), count: 16) == pattern(16))
        #expect(
            try memory.pageStates(at: GuestPhysicalAddress(TiB / 2), pageCount: 2)
                == Array(repeating: PageState(count: 0, isPrivate: true, isAccessible: true), count: 2)
        )
        #expect(memory.statistics.protectCalls == 0)
        #expect(ProcSelf.residentBytes() - before < Self.budget)
    }
}
