import Testing

@testable import GmemCore

/// setAttributes (private ⇄ shared) and discard: contents, protections,
/// invalidation of exactly the right caches, and the memory given back.
@Suite("Conversion and discard")
struct ConversionTests {
    final class Recorder: Sendable {
        let events = Locked<[(tag: UInt64, reason: InvalidationReason)]>([])
        var handler: GuestPageCache.InvalidationHandler {
            { cache, reason in self.events.withLock { $0.append((cache.tag, reason)) } }
        }
        var all: [(tag: UInt64, reason: InvalidationReason)] { self.events.withLock { $0 } }
    }

    @Test("private to shared keeps contents, opens the pages and invalidates only changed pages' caches")
    func privateToShared() throws {
        let memory = try makeMemory(pages: 8)
        let recorder = Recorder()
        try memory.writeBytes(pattern(4 * pageSize, seed: 8), at: gpa(page: 2))
        // Page 1 is made shared first: its cache must survive the second conversion.
        try memory.setAttributes(at: gpa(page: 1), size: UInt64(pageSize), shared: true)
        let onShared = try memory.activateCache(at: gpa(page: 1), length: 8, tag: 11, onInvalidation: recorder.handler)
        let onPrivate = try memory.activateCache(at: gpa(page: 3), length: 8, tag: 33, onInvalidation: recorder.handler)
        let outside = try memory.activateCache(at: gpa(page: 6), length: 8, tag: 66, onInvalidation: recorder.handler)
        let invalidationsBefore = memory.statistics.invalidations

        let changed = try memory.setAttributes(at: gpa(page: 1), size: UInt64(4 * pageSize), shared: true)
        #expect(changed == 3, "page 1 was already shared")
        #expect(try memory.states(1..<5).allSatisfy { !$0.isPrivate && $0.isAccessible })
        #expect(try memory.states(2..<5).allSatisfy { $0.count == 0 }, "the cache on page 3 gave its reference back")
        #expect(try memory.state(ofPage: 1).count == 1)
        #expect(memory.describe(onShared).isValid)
        #expect(!memory.describe(onPrivate).isValid)
        #expect(memory.describe(outside).isValid)
        #expect(recorder.all.map(\.tag) == [33])
        #expect(recorder.all.map(\.reason) == [.attributesChanged])
        #expect(memory.statistics.invalidations - invalidationsBefore == 1)
        #expect(try memory.readBytes(at: gpa(page: 2), count: 4 * pageSize) == pattern(4 * pageSize, seed: 8))
        try memory.expectKernelAgrees()

        for cache in [onShared, onPrivate, outside] { memory.deactivate(cache) }
        #expect(try memory.states(1..<5).allSatisfy { $0 == sharedIdle })
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("shared to private zaps unheld pages and keeps held ones until release")
    func sharedToPrivate() throws {
        let memory = try makeMemory(pages: 8)
        try memory.setAttributes(at: 0, size: UInt64(8 * pageSize), shared: true)
        try memory.writeBytes(pattern(8 * pageSize, seed: 1), at: 0)
        try memory.expectKernelAgrees()
        try memory.withBytes(at: gpa(page: 4), count: 16) { (_) throws in
            let changed = try memory.setAttributes(at: gpa(page: 2), size: UInt64(4 * pageSize), shared: false)
            #expect(changed == 4)
            #expect(
                try memory.states(2..<6) == [
                    privateInaccessible, privateInaccessible, privateHeld(1), privateInaccessible,
                ]
            )
            try memory.expectKernelAgrees(nil, "during a transient hold")
        }
        #expect(
            try memory.state(ofPage: 4) == privateInaccessible,
            "the last release zaps a page that became private meanwhile"
        )
        try memory.expectKernelAgrees()
        #expect(try memory.readBytes(at: 0, count: 8 * pageSize) == pattern(8 * pageSize, seed: 1))
        // Converting to the current state changes nothing and makes no call.
        let (changed, calls) = try memory.protectCalls {
            try memory.setAttributes(at: gpa(page: 2), size: UInt64(4 * pageSize), shared: false)
        }
        #expect(changed == 0 && calls == 0)
    }

    @Test("setAttributes and discard reject bad ranges")
    func rangeErrors() throws {
        let memory = try makeMemory(pages: 8)
        let size = memory.geometry.regionSize
        let page = UInt64(pageSize)
        for shared in [true, false] {
            expectGmemError(.invalidArgument) { try memory.setAttributes(at: 1, size: page, shared: shared) }
            expectGmemError(.invalidArgument) { try memory.setAttributes(at: 0, size: page + 1, shared: shared) }
            expectGmemError(.invalidArgument) { try memory.setAttributes(at: 0, size: 0, shared: shared) }
            expectGmemError(.badAddress) {
                try memory.setAttributes(at: GuestPhysicalAddress(size), size: page, shared: shared)
            }
            expectGmemError(.badAddress) {
                try memory.setAttributes(at: GuestPhysicalAddress(size - page), size: 2 * page, shared: shared)
            }
            expectGmemError(.badAddress) {
                try memory.setAttributes(
                    at: GuestPhysicalAddress(UInt64.max - page + 1),
                    size: 2 * page,
                    shared: shared
                )
            }
        }
        expectGmemError(.invalidArgument) { try memory.discard(at: 1, size: page) }
        expectGmemError(.invalidArgument) { try memory.discard(at: 0, size: 100) }
        expectGmemError(.invalidArgument) { try memory.discard(at: 0, size: 0) }
        expectGmemError(.badAddress) { try memory.discard(at: GuestPhysicalAddress(size), size: page) }
        expectGmemError(.badAddress) { try memory.discard(at: GuestPhysicalAddress(size - page), size: 2 * page) }
        expectGmemError(.badAddress) {
            try memory.discard(at: GuestPhysicalAddress(UInt64.max - page + 1), size: 2 * page)
        }
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        #expect(memory.statistics.protectCalls == 0)
    }

    @Test("discard zeroes, keeps attributes, invalidates with .discarded and gives memory back")
    func discard() throws {
        let pages = 64
        let memory = try makeMemory(pages: pages)
        let recorder = Recorder()
        try memory.setAttributes(at: gpa(page: 32), size: UInt64(32 * pageSize), shared: true)
        try memory.writeBytes(pattern(pages * pageSize, seed: 2), at: 0)
        let allocated = ProcSelf.allocatedBytes(fd: memory.region.fileDescriptor)
        #expect(allocated >= pages * pageSize)

        let privateCache = try memory.activateCache(
            at: gpa(page: 10),
            length: 8,
            tag: 10,
            onInvalidation: recorder.handler
        )
        let sharedCache = try memory.activateCache(
            at: gpa(page: 40),
            length: 8,
            tag: 40,
            onInvalidation: recorder.handler
        )
        let survivor = try memory.activateCache(at: gpa(page: 60), length: 8, tag: 60, onInvalidation: recorder.handler)
        let invalidationsBefore = memory.statistics.invalidations
        try memory.discard(at: gpa(page: 8), size: UInt64(48 * pageSize))
        // Measured before anything reads the holes: a read fault allocates a shmem page again.
        let after = ProcSelf.allocatedBytes(fd: memory.region.fileDescriptor)
        #expect(allocated - after >= 48 * pageSize, "the hole punch returns the pages: \(allocated) → \(after) bytes")

        #expect(try memory.readBytes(at: gpa(page: 8), count: 48 * pageSize).allSatisfy { $0 == 0 })
        #expect(
            try memory.readBytes(at: 0, count: 8 * pageSize)
                == Array(pattern(pages * pageSize, seed: 2)[0..<(8 * pageSize)])
        )
        #expect(
            try memory.readBytes(at: gpa(page: 56), count: 8 * pageSize)
                == Array(pattern(pages * pageSize, seed: 2)[(56 * pageSize)...])
        )
        #expect(Set(recorder.all.map(\.tag)) == [10, 40])
        #expect(recorder.all.allSatisfy { $0.reason == .discarded })
        #expect(memory.statistics.invalidations - invalidationsBefore == 2)
        #expect(memory.describe(survivor).isValid)
        #expect(try memory.states(8..<32).allSatisfy { $0 == privateInaccessible })
        #expect(try memory.states(32..<56).allSatisfy { $0 == sharedIdle })
        try memory.expectKernelAgrees()
        for cache in [privateCache, sharedCache, survivor] { memory.deactivate(cache) }
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("discard of a page held by a cache and by a transient copy leaks and underflows nothing")
    func discardWhileHeld() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 1), length: 8)
        try memory.withBytes(at: gpa(page: 1), count: 8) { (_) throws in
            try memory.discard(at: gpa(page: 1), size: UInt64(pageSize))
            #expect(try memory.state(ofPage: 1) == privateHeld(1), "only the transient reference is left")
        }
        #expect(try memory.state(ofPage: 1) == privateInaccessible)
        memory.deactivate(cache)
        #expect(try memory.state(ofPage: 1) == privateInaccessible)
        try memory.writeBytes([1, 2, 3], at: gpa(page: 1))
        #expect(try memory.readBytes(at: gpa(page: 1), count: 3) == [1, 2, 3])
        try memory.expectKernelAgrees()
    }

    @Test("discard of an untouched region only punches")
    func discardUntouched() throws {
        let memory = try makeMemory(pages: 1024)
        try memory.discard(at: 0, size: memory.geometry.regionSize)
        #expect(memory.statistics.protectCalls == 0)
        #expect(try memory.readBytes(at: gpa(page: 1000), count: 16) == [UInt8](repeating: 0, count: 16))
    }

    @Test("conversions and discards in direct-map mode keep every page accessible")
    func directMap() throws {
        let memory = try makeMemory(pages: 8, directMap: true)
        let cache = try memory.activateCache(at: gpa(page: 1), length: 8)
        try memory.setAttributes(at: 0, size: UInt64(4 * pageSize), shared: true)
        try memory.setAttributes(at: 0, size: UInt64(4 * pageSize), shared: false)
        try memory.discard(at: 0, size: UInt64(8 * pageSize))
        #expect(!memory.describe(cache).isValid)
        memory.deactivate(cache)
        #expect(try memory.allStates().allSatisfy { $0.isAccessible && $0.count == 0 })
        #expect(memory.statistics.protectCalls == 0)
        try memory.expectKernelAgrees()
    }
}
