import Synchronization
import Testing

@testable import GmemCore

/// A seeded random walk over every operation, checked after each step against
/// a simple model (who holds which page, which pages are shared, what the
/// bytes are) and against the kernel's /proc/self/maps.
@Suite("Model-checked random walk")
struct ModelCheckTests {
    struct Model {
        var shared: [Bool]
        var bytes: [UInt8]
        /// (cache, valid); deactivated caches are removed.
        var caches: [(cache: GuestPageCache, page: Int, offset: Int, length: Int, valid: Bool)] = []

        func expectedStates(directMap: Bool) -> [PageState] {
            self.shared.indices.map { page in
                let count = UInt32(self.caches.filter { $0.valid && $0.page == page }.count)
                return PageState(
                    count: count,
                    isPrivate: !self.shared[page],
                    isAccessible: directMap || self.shared[page] || count > 0
                )
            }
        }

        mutating func invalidate(pages: Range<Int>) -> Int {
            var invalidated = 0
            for index in self.caches.indices where self.caches[index].valid && pages.contains(self.caches[index].page) {
                self.caches[index].valid = false
                invalidated += 1
            }
            return invalidated
        }
    }

    @Test(
        "random operations keep core, model and kernel in agreement",
        arguments: [(11, false), (12, false), (13, false), (14, true)] as [(UInt64, Bool)]
    )
    func randomWalk(seed: UInt64, directMap: Bool) throws {
        let pages = 16
        let memory = try makeMemory(pages: pages, folioSize: 2 * pageSize, directMap: directMap)
        let size = pages * pageSize
        var model = Model(shared: Array(repeating: false, count: pages), bytes: Array(repeating: 0, count: size))
        var rng = SeededGenerator(seed: seed)
        let notified = Atomic<Int>(0)
        var expectedNotifications = 0
        var nextTag: UInt64 = 0

        func randomRange(maxPages: Int) -> (address: Int, count: Int) {
            let address = Int.random(in: 0..<size, using: &rng)
            let count = Int.random(in: 0...min(maxPages * pageSize, size - address), using: &rng)
            return (address, count)
        }
        func randomPageRange() -> Range<Int> {
            let first = Int.random(in: 0..<pages, using: &rng)
            return first..<Int.random(in: (first + 1)...min(pages, first + 6), using: &rng)
        }
        func randomWindow() -> (page: Int, offset: Int, length: Int) {
            let page = Int.random(in: 0..<pages, using: &rng)
            let offset = Int.random(in: 0..<pageSize, using: &rng)
            return (page, offset, Int.random(in: 1...(pageSize - offset), using: &rng))
        }

        for step in 0..<400 {
            let operation = Int.random(in: 0..<9, using: &rng)
            switch operation {
            case 0:
                let (address, count) = randomRange(maxPages: 3)
                let data = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try memory.writeBytes(data, at: GuestPhysicalAddress(UInt64(address)))
                model.bytes.replaceSubrange(address..<(address + count), with: data)
            case 1:
                let (address, count) = randomRange(maxPages: 4)
                #expect(
                    try memory.readBytes(at: GuestPhysicalAddress(UInt64(address)), count: count)
                        == Array(model.bytes[address..<(address + count)]),
                    "step \(step)"
                )
            case 2 where model.caches.count < 10:
                let (page, offset, length) = randomWindow()
                nextTag += 1
                let cache = try memory.activateCache(at: gpa(page: page, offset: offset), length: length, tag: nextTag)
                { _, _ in
                    notified.add(1, ordering: .relaxed)
                }
                model.caches.append((cache, page, offset, length, true))
            case 3 where !model.caches.isEmpty:
                let index = Int.random(in: model.caches.indices, using: &rng)
                let entry = model.caches[index]
                let start = entry.page * pageSize + entry.offset
                let offset = Int.random(in: 0...entry.length, using: &rng)
                let count = Int.random(in: 0...(entry.length - offset), using: &rng)
                if entry.valid {
                    if Bool.random(using: &rng) {
                        let data = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                        try memory.writeBytes(data, cache: entry.cache, offset: offset)
                        model.bytes.replaceSubrange((start + offset)..<(start + offset + count), with: data)
                    } else {
                        #expect(
                            try memory.readBytes(cache: entry.cache, offset: offset, count: count)
                                == Array(model.bytes[(start + offset)..<(start + offset + count)])
                        )
                    }
                } else {
                    expectGmemError(.stale) {
                        _ = try memory.readBytes(cache: entry.cache, offset: offset, count: count)
                    }
                }
            case 4 where !model.caches.isEmpty:
                let index = Int.random(in: model.caches.indices, using: &rng)
                let (page, offset, length) = randomWindow()
                try memory.refresh(model.caches[index].cache, to: gpa(page: page, offset: offset), length: length)
                model.caches[index] = (model.caches[index].cache, page, offset, length, true)
            case 5 where !model.caches.isEmpty:
                let entry = model.caches.remove(at: Int.random(in: model.caches.indices, using: &rng))
                memory.deactivate(entry.cache)
                expectGmemError(.noSuchEntry) { _ = try memory.readBytes(cache: entry.cache, count: 1) }
            case 6:
                let range = randomPageRange()
                let shared = Bool.random(using: &rng)
                let changedPages = range.filter { model.shared[$0] != shared }
                let changed = try memory.setAttributes(
                    at: gpa(page: range.lowerBound),
                    size: UInt64(range.count * pageSize),
                    shared: shared
                )
                #expect(changed == changedPages.count)
                for page in changedPages {
                    model.shared[page] = shared
                    expectedNotifications += model.invalidate(pages: page..<(page + 1))
                }
            case 7:
                let range = randomPageRange()
                try memory.discard(at: gpa(page: range.lowerBound), size: UInt64(range.count * pageSize))
                expectedNotifications += model.invalidate(pages: range)
                model.bytes.replaceSubrange(
                    (range.lowerBound * pageSize)..<(range.upperBound * pageSize),
                    with: repeatElement(0, count: range.count * pageSize)
                )
            default:
                break
            }
            let states = try memory.allStates()
            let expected = model.expectedStates(directMap: directMap)
            #expect(states == expected, "step \(step), operation \(operation)")
            if states != expected { return }
            try memory.expectKernelAgrees(nil, "step \(step), operation \(operation)")
            #expect(memory.invariantViolations().isEmpty)
        }
        #expect(notified.load(ordering: .relaxed) == expectedNotifications)
        #expect(memory.statistics.invalidations == UInt64(expectedNotifications))
        for entry in model.caches { memory.deactivate(entry.cache) }
        #expect(memory.statistics.cachesActive == 0)
        #expect(try memory.allStates().allSatisfy { $0.count == 0 })
        #expect(try memory.readBytes(at: 0, count: size) == model.bytes)
    }
}
