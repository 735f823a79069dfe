import Testing

@testable import GmemCore

/// The core's bookkeeping checked from outside: /proc/self/maps must show
/// exactly the pages pageStates calls accessible as rw, and every other page of
/// the region as ---; /proc/self/smaps must show the mapping as MADV_DONTDUMP.
@Suite("Kernel view of the mapping")
struct KernelProtectionTests {
    @Test(
        "the mapping is shared, covers the region, starts inaccessible and is excluded from core dumps",
        arguments: [false, true]
    )
    func mappingFlags(directMap: Bool) throws {
        let memory = try makeMemory(pages: 64, directMap: directMap)
        let (start, end) = memory.mappingRange
        let vmas = ProcSelf.smaps(overlapping: start, end)
        try #require(!vmas.isEmpty)
        #expect(vmas.first!.start == start && vmas.last!.end == end, "the VMAs cover exactly the region")
        #expect(zip(vmas, vmas.dropFirst()).allSatisfy { $0.end == $1.start }, "no holes")
        for vma in vmas {
            #expect(vma.permissions == (directMap ? "rw-s" : "---s"))
            #expect(vma.path.contains(Region.memfdName))
            #expect(vma.vmFlags.contains("dd"), "VmFlags \(vma.vmFlags) lack dd (MADV_DONTDUMP)")
            #expect(vma.vmFlags.contains("sh"))
        }
        // Protection changes split the VMA; every piece must keep dd.
        try memory.setAttributes(at: gpa(page: 10), size: UInt64(5 * pageSize), shared: true)
        let cache = try memory.activateCache(at: gpa(page: 30), length: 8)
        let split = ProcSelf.smaps(overlapping: start, end)
        #expect(split.count >= (directMap ? 1 : 5))
        #expect(split.allSatisfy { $0.vmFlags.contains("dd") })
        try memory.expectKernelAgrees()
        memory.deactivate(cache)
    }

    @Test("kernel and core agree after acquires, conversions, cache activity and at quiescence")
    func agreement() throws {
        let memory = try makeMemory(pages: 48, folioSize: 16 * KiB)
        try memory.expectKernelAgrees(nil, "fresh")

        // Transient holds, some crossing folios.
        try memory.withBytes(at: gpa(page: 3, offset: 100), count: 5 * pageSize) { (_) throws in
            try memory.withBytes(at: gpa(page: 20), count: pageSize) { (_) throws in
                try memory.expectKernelAgrees(nil, "two transient holds")
            }
            try memory.expectKernelAgrees(nil, "one transient hold")
        }
        try memory.expectKernelAgrees(nil, "after transient holds")

        // Caches, including several on one page and one on a folio tail page.
        let caches = try [5, 5, 7, 15, 40].map { try memory.activateCache(at: gpa(page: $0, offset: 8), length: 16) }
        try memory.expectKernelAgrees(nil, "caches active")

        // Conversions: a run through cached and uncached pages, and back.
        try memory.setAttributes(at: gpa(page: 4), size: UInt64(12 * pageSize), shared: true)
        try memory.expectKernelAgrees(nil, "4..<16 shared")
        #expect(try memory.states(4..<16).allSatisfy { $0.isAccessible && !$0.isPrivate })
        try memory.refresh(caches[0], to: gpa(page: 6), length: 16)
        try memory.refresh(caches[2], to: gpa(page: 30), length: 16)
        try memory.setAttributes(at: gpa(page: 8), size: UInt64(4 * pageSize), shared: false)
        try memory.expectKernelAgrees(nil, "8..<12 private again")
        try memory.discard(at: gpa(page: 0), size: UInt64(8 * pageSize))
        try memory.expectKernelAgrees(nil, "after discard")

        try memory.writeBytes(pattern(3 * pageSize), at: gpa(page: 38, offset: 7))
        try memory.expectKernelAgrees(nil, "after a write around the cache on 40")

        for cache in caches { memory.deactivate(cache) }
        try memory.expectKernelAgrees(nil, "quiescent")
        let states = try memory.allStates()
        #expect(states.allSatisfy { $0.count == 0 })
        #expect(
            states.enumerated().allSatisfy {
                $0.element.isAccessible == ((4..<8).contains($0.offset) || (12..<16).contains($0.offset))
            }
        )
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("a large folio region: only the used pages of a folio are opened")
    func largeFolioPages() throws {
        let memory = try makeMemory(pages: 1024, folioSize: 2 * MiB)
        let cache = try memory.activateCache(at: gpa(page: 700), length: 8)
        try memory.withBytes(at: gpa(page: 100), count: 3 * pageSize) { (_) throws in
            let open = memory.kernelAccessibility(0..<1024).enumerated().filter(\.element).map(\.offset)
            #expect(open == [100, 101, 102, 700])
            try memory.expectKernelAgrees()
        }
        memory.deactivate(cache)
        #expect(memory.kernelAccessibility(0..<1024).allSatisfy { !$0 })
    }

    @Test("at quiescence the private mapping merges back into one VMA: no split is leaked")
    func vmasMergeBack() throws {
        let memory = try makeMemory(pages: 256, folioSize: 4 * pageSize)
        let (start, end) = memory.mappingRange
        var generator = SeededGenerator(seed: 99)
        var caches: [GuestPageCache] = []
        for _ in 0..<200 {
            let page = Int.random(in: 0..<256, using: &generator)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: caches.append(try memory.activateCache(at: gpa(page: page), length: 8))
            case 1 where !caches.isEmpty:
                memory.deactivate(caches.remove(at: Int.random(in: caches.indices, using: &generator)))
            case 2:
                _ = try memory.readBytes(
                    at: gpa(page: page),
                    count: Int.random(in: 1...(min(3, 256 - page) * pageSize), using: &generator)
                )
            default:
                try memory.setAttributes(
                    at: gpa(page: page),
                    size: UInt64(pageSize),
                    shared: Bool.random(using: &generator)
                )
            }
        }
        #expect(ProcSelf.maps().filter { $0.end > start && $0.start < end }.count > 1, "the walk did split the mapping")
        for cache in caches { memory.deactivate(cache) }
        try memory.setAttributes(at: 0, size: memory.geometry.regionSize, shared: false)
        let vmas = ProcSelf.maps().filter { $0.end > start && $0.start < end }
        #expect(
            vmas.count == 1 && vmas.first?.isNoAccess == true,
            "\(vmas.count) VMAs left: every split costs map count, the resource ENOMEM comes from"
        )
        try memory.expectKernelAgrees()
    }
}
