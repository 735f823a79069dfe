import Testing

@testable import GmemCore

/// Guest page caches on their own: activation rules, window checks, refresh
/// and the three states (valid, invalidated, inactive).
@Suite("Guest page caches")
struct GuestPageCacheTests {
    @Test("activation checks its window as KVM does")
    func activationErrors() throws {
        let memory = try makeMemory(pages: 4)
        let size = memory.geometry.regionSize
        expectGmemError(.invalidArgument) { _ = try memory.activateCache(at: gpa(page: 1), length: 0) }
        expectGmemError(.invalidArgument) {
            _ = try memory.activateCache(at: gpa(page: 1, offset: pageSize - 100), length: 200)
        }
        expectGmemError(.invalidArgument) { _ = try memory.activateCache(at: gpa(page: 1), length: pageSize + 1) }
        expectGmemError(.invalidArgument) { _ = try memory.activateCache(at: gpa(page: 1, offset: 1), length: Int.max) }
        expectGmemError(.invalidArgument) { _ = try memory.activateCache(at: gpa(page: 1), length: -1) }
        expectGmemError(.badAddress) { _ = try memory.activateCache(at: GuestPhysicalAddress(size), length: 8) }
        expectGmemError(.badAddress) { _ = try memory.activateCache(at: GuestPhysicalAddress(size + 64), length: 8) }
        expectGmemError(.badAddress) {
            _ = try memory.activateCache(at: GuestPhysicalAddress(UInt64.max - 15), length: 8)
        }
        // Nothing was acquired or counted by the failures.
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        #expect(memory.statistics.cacheActivations == 0 && memory.statistics.cachesActive == 0)
        #expect(memory.statistics.protectCalls == 0)

        // The extremes of a valid window.
        let whole = try memory.activateCache(at: gpa(page: 3), length: pageSize)
        let last = try memory.activateCache(at: gpa(page: 3, offset: pageSize - 1), length: 1)
        #expect(memory.describe(last) == (gpa(page: 3, offset: pageSize - 1), 1, true))
        #expect(try memory.state(ofPage: 3) == privateHeld(2))
        memory.deactivate(whole)
        memory.deactivate(last)
        #expect(try memory.state(ofPage: 3) == privateInaccessible)
    }

    @Test("reads and writes through a cache see transient accesses and vice versa")
    func roundTrip() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 2, offset: 128), length: 256, tag: 77)
        #expect(cache.tag == 77)
        try memory.writeBytes(pattern(64, seed: 5), cache: cache, offset: 16)
        #expect(try memory.readBytes(at: gpa(page: 2, offset: 144), count: 64) == pattern(64, seed: 5))
        try memory.writeBytes(pattern(256, seed: 6), at: gpa(page: 2, offset: 128))
        #expect(try memory.readBytes(cache: cache, count: 256) == pattern(256, seed: 6))
        #expect(try memory.readBytes(cache: cache, offset: 256, count: 0) == [])
        #expect(try memory.state(ofPage: 2) == privateHeld(1))
        memory.deactivate(cache)
    }

    @Test("a window past the cache's length is EINVAL, never a copy")
    func windowChecks() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 1, offset: 100), length: 64)
        expectGmemError(.invalidArgument) { _ = try memory.readBytes(cache: cache, offset: 60, count: 5) }
        expectGmemError(.invalidArgument) { try memory.writeBytes(pattern(65), cache: cache) }
        expectGmemError(.invalidArgument) { _ = try memory.readBytes(cache: cache, offset: 65, count: 0) }
        expectGmemError(.invalidArgument) { _ = try memory.readBytes(cache: cache, offset: -1, count: 1) }
        // Huge offsets must be rejected, not overflow.
        expectGmemError(.invalidArgument) { _ = try memory.readBytes(cache: cache, offset: Int.max, count: 1) }
        expectGmemError(.invalidArgument) { try memory.writeBytes(pattern(2), cache: cache, offset: Int.max - 1) }
        // The bytes after the window were not written.
        #expect(try memory.readBytes(at: gpa(page: 1, offset: 164), count: 8) == [UInt8](repeating: 0, count: 8))
        memory.deactivate(cache)
    }

    @Test("refresh onto the same page keeps it mapped; onto another moves the reference")
    func refreshMoves() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 1), length: 8)
        let (_, sameCalls) = try memory.protectCalls {
            try memory.refresh(cache, to: gpa(page: 1, offset: 64), length: 32)
        }
        #expect(sameCalls == 0, "refreshing in place must neither zap nor restore")
        #expect(memory.describe(cache) == (gpa(page: 1, offset: 64), 32, true))
        #expect(try memory.state(ofPage: 1) == privateHeld(1))

        try memory.refresh(cache, to: gpa(page: 3, offset: 8), length: 16)
        #expect(
            try memory.states(0..<4) == [privateInaccessible, privateInaccessible, privateInaccessible, privateHeld(1)]
        )
        try memory.expectKernelAgrees()
        try memory.writeBytes(pattern(16), cache: cache)
        #expect(try memory.readBytes(at: gpa(page: 3, offset: 8), count: 16) == pattern(16))
        memory.deactivate(cache)
        #expect(memory.statistics.cacheActivations == 1)
    }

    @Test("a refresh to an invalid target leaves the cache exactly as it was")
    func refreshFailureKeepsCache() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 2, offset: 32), length: 64)
        try memory.writeBytes(pattern(64, seed: 2), cache: cache)
        let before = try memory.allStates()
        let size = memory.geometry.regionSize
        expectGmemError(.invalidArgument) { try memory.refresh(cache, to: gpa(page: 1), length: 0) }
        expectGmemError(.invalidArgument) {
            try memory.refresh(cache, to: gpa(page: 1, offset: pageSize - 8), length: 16)
        }
        expectGmemError(.badAddress) { try memory.refresh(cache, to: GuestPhysicalAddress(size), length: 8) }
        expectGmemError(.badAddress) { try memory.refresh(cache, to: GuestPhysicalAddress(UInt64.max - 15), length: 8) }
        #expect(memory.describe(cache) == (gpa(page: 2, offset: 32), 64, true))
        #expect(try memory.allStates() == before)
        #expect(try memory.readBytes(cache: cache, count: 64) == pattern(64, seed: 2))
        memory.deactivate(cache)
        #expect(try memory.state(ofPage: 2) == privateInaccessible)
    }

    @Test("invalidated caches are ESTALE until refreshed; deactivated ones are ENOENT")
    func staleAndInactive() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 1), length: 16)
        try memory.setAttributes(at: gpa(page: 1), size: UInt64(pageSize), shared: true)
        #expect(memory.describe(cache).isValid == false)
        expectGmemError(.stale) { _ = try memory.readBytes(cache: cache, count: 8) }
        expectGmemError(.stale) { try memory.writeBytes(pattern(8), cache: cache) }
        #expect(try memory.state(ofPage: 1) == sharedIdle, "invalidation drops the cache's reference")

        try memory.refresh(cache, to: gpa(page: 1), length: 16)
        #expect(try memory.state(ofPage: 1) == PageState(count: 1, isPrivate: false, isAccessible: true))
        try memory.writeBytes(pattern(8), cache: cache)

        memory.deactivate(cache)
        #expect(memory.describe(cache).isValid == false)
        expectGmemError(.noSuchEntry) { _ = try memory.readBytes(cache: cache, count: 8) }
        expectGmemError(.noSuchEntry) { try memory.writeBytes(pattern(8), cache: cache) }
        expectGmemError(.noSuchEntry) { try memory.refresh(cache, to: gpa(page: 2), length: 8) }
        memory.deactivate(cache)  // a second deactivation does nothing
        #expect(try memory.allStates() == [privateInaccessible, sharedIdle, privateInaccessible, privateInaccessible])
        #expect(memory.statistics.cachesActive == 0)
        #expect(memory.statistics.cacheActivations == 1)
    }

    @Test("deactivating an invalidated cache releases nothing twice")
    func deactivateInvalidated() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 0), length: 16)
        let other = try memory.activateCache(at: gpa(page: 0), length: 16)
        try memory.discard(at: 0, size: UInt64(pageSize))
        #expect(try memory.state(ofPage: 0) == privateInaccessible)
        memory.deactivate(cache)
        memory.deactivate(other)
        #expect(try memory.state(ofPage: 0) == privateInaccessible)
        #expect(memory.statistics.cachesActive == 0)
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("the invalidation handler gets the cache, its tag and the reason")
    func handler() throws {
        let memory = try makeMemory(pages: 4)
        let seen = Locked<[(UInt64, InvalidationReason)]>([])
        let record: GuestPageCache.InvalidationHandler = { cache, reason in
            seen.withLock { $0.append((cache.tag, reason)) }
        }
        let a = try memory.activateCache(at: gpa(page: 0), length: 8, tag: 1, onInvalidation: record)
        let b = try memory.activateCache(at: gpa(page: 1), length: 8, tag: 2, onInvalidation: record)
        try memory.discard(at: gpa(page: 1), size: UInt64(pageSize))
        try memory.setAttributes(at: 0, size: UInt64(2 * pageSize), shared: true)
        let events = seen.withLock { $0 }
        #expect(events.map(\.0) == [2, 1])
        #expect(events.map(\.1) == [.discarded, .attributesChanged])
        memory.deactivate(a)
        memory.deactivate(b)
    }
}
