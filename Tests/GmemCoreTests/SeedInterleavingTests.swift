import Testing

@testable import GmemCore

/// The interleavings that broke the seed design (RFC v1), replayed
/// deterministically. Under its single "removed" bit each would end in a
/// SIGSEGV of this process, so reaching the assertions at all is half the test.
@Suite("Seed interleavings")
struct SeedInterleavingTests {
    @Test("map(A) map(B) read(A) unmap(A) read(B): the commit message's interleaving")
    func commitMessageInterleaving() throws {
        let memory = try makeMemory(pages: 4)
        try memory.writeBytes(pattern(64, seed: 1), at: gpa(page: 2))
        let a = try memory.activateCache(at: gpa(page: 2), length: 32, tag: 1)
        let b = try memory.activateCache(at: gpa(page: 2, offset: 32), length: 32, tag: 2)
        #expect(try memory.state(ofPage: 2) == privateHeld(2))
        #expect(try memory.readBytes(at: gpa(page: 2), count: 64) == pattern(64, seed: 1))
        #expect(try memory.readBytes(cache: a, count: 32) == Array(pattern(64, seed: 1)[0..<32]))

        memory.deactivate(a)
        // One bit would have zapped the page here; the count keeps it for B.
        #expect(try memory.state(ofPage: 2) == privateHeld(1))
        try memory.expectKernelAgrees(nil, "after unmap(A)")
        #expect(try memory.readBytes(cache: b, count: 32) == Array(pattern(64, seed: 1)[32..<64]))
        try memory.writeBytes([9, 9], cache: b, offset: 30)
        #expect(
            try memory.readBytes(at: gpa(page: 2, offset: 60), count: 4) == [
                pattern(64, seed: 1)[60], pattern(64, seed: 1)[61], 9, 9,
            ]
        )
        #expect(try memory.state(ofPage: 2) == privateHeld(1), "the transient read must not drop B's reference")

        memory.deactivate(b)
        #expect(try memory.state(ofPage: 2) == privateInaccessible)
        try memory.expectKernelAgrees(nil, "after unmap(B)")
        #expect(memory.statistics.cachesActive == 0)
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("a transient copy racing a deactivation on the same page")
    func transientCopyOutlivesDeactivation() throws {
        let memory = try makeMemory(pages: 4)
        try memory.writeBytes(pattern(pageSize, seed: 3), at: gpa(page: 1))
        let cache = try memory.activateCache(at: gpa(page: 1), length: 8)
        try memory.withBytes(at: gpa(page: 1), count: pageSize) { (bytes) throws in
            // The copy is in flight, without any lock; the cache goes away under it.
            memory.deactivate(cache)
            #expect(try memory.state(ofPage: 1) == privateHeld(1))
            #expect(Array(bytes) == pattern(pageSize, seed: 3))
        }
        #expect(try memory.state(ofPage: 1) == privateInaccessible)
        try memory.expectKernelAgrees()
    }

    @Test("a cache activated during a transient copy keeps the page after the copy")
    func cacheOutlivesTransientCopy() throws {
        let memory = try makeMemory(pages: 4)
        var cache: GuestPageCache? = nil
        try memory.withBytes(at: gpa(page: 3), count: 16) { (_) throws in
            cache = try memory.activateCache(at: gpa(page: 3), length: 16)
        }
        let held = try #require(cache)
        #expect(try memory.state(ofPage: 3) == privateHeld(1))
        try memory.writeBytes([1, 2, 3], cache: held)
        memory.deactivate(held)
        #expect(try memory.state(ofPage: 3) == privateInaccessible)
        try memory.expectKernelAgrees()
    }

    @Test("an attribute flip while a cache is live: the next check fails, no stale pointer is used")
    func attributeFlipWhileLive() throws {
        let memory = try makeMemory(pages: 4)
        let cache = try memory.activateCache(at: gpa(page: 0), length: 16)
        try memory.setAttributes(at: 0, size: UInt64(pageSize), shared: true)
        try memory.setAttributes(at: 0, size: UInt64(pageSize), shared: false)
        // The page is private and unheld again, so inaccessible: a stale pointer would fault.
        #expect(try memory.state(ofPage: 0) == privateInaccessible)
        expectGmemError(.stale) { _ = try memory.readBytes(cache: cache, count: 16) }
        try memory.refresh(cache, to: 0, length: 16)
        #expect(try memory.readBytes(cache: cache, count: 16) == [UInt8](repeating: 0, count: 16))
        memory.deactivate(cache)
        #expect(try memory.state(ofPage: 0) == privateInaccessible)
    }

    @Test("refreshing one cache away from a page another cache holds keeps the page for the other")
    func refreshAwayFromSharedPage() throws {
        let memory = try makeMemory(pages: 4)
        let a = try memory.activateCache(at: gpa(page: 2), length: 8)
        let b = try memory.activateCache(at: gpa(page: 2, offset: 8), length: 8)
        try memory.refresh(a, to: gpa(page: 3), length: 8)
        #expect(try memory.states(2..<4) == [privateHeld(1), privateHeld(1)])
        try memory.writeBytes([5], cache: b)
        try memory.refresh(b, to: gpa(page: 3, offset: 8), length: 8)
        #expect(try memory.states(2..<4) == [privateInaccessible, privateHeld(2)])
        try memory.expectKernelAgrees()
        #expect(try memory.readBytes(at: gpa(page: 2, offset: 8), count: 1) == [5])
        memory.deactivate(a)
        memory.deactivate(b)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
    }
}
