import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Protection failures injected through the ``PageProtection`` seam: the
/// kernel's ENOMEM once the map count is exhausted. The seed design crashed
/// the host here (BUG_ON); the core must report the error and change nothing,
/// or, for a failed zap, park the page and retry later.
@Suite("Injected protection failures")
struct FaultInjectionTests {
    enum Operation: String, CaseIterable, Sendable {
        case read, write, activateCache, refresh, withBytes
    }

    /// A region with some history: data, a shared run and a live cache.
    func setUp() throws -> (GuestMemory, FaultInjectingProtection, GuestPageCache) {
        let protection = FaultInjectingProtection()
        let memory = try makeMemory(pages: 16, folioSize: 2 * pageSize, protection: protection)
        try memory.writeBytes(pattern(16 * pageSize, seed: 4), at: 0)
        try memory.setAttributes(at: gpa(page: 12), size: UInt64(2 * pageSize), shared: true)
        let cache = try memory.activateCache(at: gpa(page: 1), length: 32)
        return (memory, protection, cache)
    }

    @Test("a failing restore is ENOMEM with no state change", arguments: Operation.allCases, [false, true])
    func failingRestore(operation: Operation, partial: Bool) throws {
        let (memory, protection, cache) = try self.setUp()
        let before = try memory.allStates()
        let statisticsBefore = memory.statistics
        protection.failCall(1, partial: partial)

        let error = expectGmemError(.noMemory) {
            switch operation {
            case .read: _ = try memory.readBytes(at: gpa(page: 3, offset: 10), count: 3 * pageSize)
            case .write: try memory.writeBytes(pattern(3 * pageSize, seed: 99), at: gpa(page: 3, offset: 10))
            case .activateCache: _ = try memory.activateCache(at: gpa(page: 5), length: 8)
            case .refresh: try memory.refresh(cache, to: gpa(page: 5), length: 8)
            case .withBytes:
                try memory.withBytes(at: gpa(page: 3), count: 3 * pageSize) { _ in _ = Issue.record("body ran") }
            }
        }
        #expect(error?.code == .noMemory)
        #expect(error?.wireStatus == -ENOMEM)

        #expect(try memory.allStates() == before, "no count or protection changed")
        try memory.expectKernelAgrees(nil, "after the failure")
        #expect(memory.invariantViolations().isEmpty)
        let statistics = memory.statistics
        #expect(statistics.protectFailures == statisticsBefore.protectFailures + 1)
        #expect(statistics.restores == statisticsBefore.restores && statistics.zaps == statisticsBefore.zaps)
        #expect(statistics.cacheActivations == statisticsBefore.cacheActivations)
        #expect(statistics.cachesActive == statisticsBefore.cachesActive)
        #expect(statistics.reads == statisticsBefore.reads && statistics.writes == statisticsBefore.writes)
        #expect(memory.describe(cache) == (gpa(page: 1), 32, true), "the cache is as it was")
        // The failed write wrote nothing, and everything works again afterwards.
        #expect(try memory.readBytes(at: 0, count: 16 * pageSize) == pattern(16 * pageSize, seed: 4))
        #expect(
            try memory.readBytes(cache: cache, count: 32)
                == Array(pattern(16 * pageSize, seed: 4)[pageSize..<(pageSize + 32)])
        )
        memory.deactivate(cache)
        #expect(try memory.allStates().allSatisfy { $0.count == 0 })
        try memory.expectKernelAgrees()
    }

    @Test("a failing zap on release parks the page; a later release retries it", arguments: [false, true])
    func failingZap(viaCache: Bool) throws {
        let (memory, protection, cache) = try self.setUp()
        let other = try memory.activateCache(at: gpa(page: 7), length: 8)
        protection.setFailing(zaps: true)
        if viaCache {
            memory.deactivate(cache)
        } else {
            _ = try memory.readBytes(at: gpa(page: 4), count: 8)
        }
        let parked = viaCache ? 1 : 4
        // Parked: one reference owned by the backlog keeps it accessible, so the invariant holds.
        #expect(try memory.state(ofPage: parked) == privateHeld(1))
        #expect(memory.invariantViolations().isEmpty)
        try memory.expectKernelAgrees(nil, "parked")
        #expect(memory.statistics.protectFailures >= 1)
        #expect(
            try memory.readBytes(at: gpa(page: parked), count: 8)
                == Array(pattern(16 * pageSize, seed: 4)[(parked * pageSize)..<(parked * pageSize + 8)])
        )
        #expect(try memory.state(ofPage: parked) == privateHeld(1), "still parked while zaps fail")

        protection.setFailing()
        if viaCache {
            memory.deactivate(other)  // deactivation retries the backlog
        } else {
            _ = try memory.readBytes(at: gpa(page: 9), count: 8)  // any release retries it
            memory.deactivate(other)
        }
        #expect(try memory.state(ofPage: parked) == privateInaccessible)
        memory.deactivate(cache)  // a no-op when it was deactivated above
        #expect(try memory.allStates().allSatisfy { $0.count == 0 })
        try memory.expectKernelAgrees()
        #expect(memory.invariantViolations().isEmpty)
        #expect(memory.statistics.cachesActive == 0)
    }

    @Test(
        "a restore and its undo both failing, then access: no SIGSEGV, and the page ends zapped",
        arguments: [false, true]
    )
    func doubleFailure(partial: Bool) throws {
        let (memory, protection, cache) = try self.setUp()
        protection.setFailing(restores: true, zaps: true, partial: partial)
        expectGmemError(.noMemory) { _ = try memory.readBytes(at: gpa(page: 4), count: 2 * pageSize) }
        #expect(memory.invariantViolations().isEmpty)
        protection.setFailing()
        // Whatever the kernel was left with, the next access must be safe.
        #expect(
            try memory.readBytes(at: gpa(page: 4), count: 2 * pageSize)
                == Array(pattern(16 * pageSize, seed: 4)[(4 * pageSize)..<(6 * pageSize)])
        )
        memory.deactivate(cache)
        #expect(try memory.allStates().allSatisfy { $0.count == 0 })
        try memory.expectKernelAgrees()
    }

    @Test("a zap failing half-way, then access to the pages it did zap: no SIGSEGV")
    func partialZap() throws {
        let (memory, protection, cache) = try self.setUp()
        protection.setFailing(zaps: true, partial: true)
        // Restores 4..<8 in one call; the zap of 4..<8 fails after zapping page 4.
        _ = try memory.readBytes(at: gpa(page: 4), count: 4 * pageSize)
        #expect(try memory.states(4..<8).allSatisfy { $0 == privateHeld(1) })
        protection.setFailing()
        try memory.writeBytes([7, 7, 7], at: gpa(page: 4, offset: 100))
        #expect(
            try memory.readBytes(at: gpa(page: 4, offset: 99), count: 5) == [
                pattern(16 * pageSize, seed: 4)[4 * pageSize + 99], 7, 7, 7,
                pattern(16 * pageSize, seed: 4)[4 * pageSize + 103],
            ]
        )
        memory.deactivate(cache)
        #expect(try memory.allStates().allSatisfy { $0.count == 0 })
        try memory.expectKernelAgrees()
    }

    @Test("a failing restore in a conversion to shared changes nothing", arguments: [false, true])
    func failingConversion(partial: Bool) throws {
        let (memory, protection, cache) = try self.setUp()
        let before = try memory.allStates()
        protection.failCall(1, partial: partial)
        expectGmemError(.noMemory) {
            try memory.setAttributes(at: gpa(page: 2), size: UInt64(6 * pageSize), shared: true)
        }
        #expect(try memory.allStates() == before)
        try memory.expectKernelAgrees(nil, "after the failed conversion")
        #expect(memory.describe(cache).isValid)
        memory.deactivate(cache)
        #expect(memory.invariantViolations().isEmpty)
    }

    enum FailureMode: String, CaseIterable, Sendable {
        /// One call fails without effect.
        case once
        /// One call fails after changing the range's first page.
        case partial
        /// Every call fails, each after changing the first page: the undo fails too.
        case always
    }

    @Test(
        "a failing bulk conversion of a whole 2 MiB chunk is undone, or left safe",
        arguments: [true, false],
        FailureMode.allCases
    )
    func failingChunkConversion(toShared: Bool, mode: FailureMode) throws {
        let protection = FaultInjectingProtection()
        let memory = try makeMemory(pages: 1024, protection: protection)
        let chunk = UInt64(2 * MiB)
        if !toShared { try memory.setAttributes(at: 0, size: chunk, shared: true) }
        let before = try memory.states(0..<512)
        switch mode {
        case .once: protection.failCall(1)
        case .partial: protection.failCall(1, partial: true)
        case .always: protection.setFailing(restores: true, zaps: true, partial: true)
        }
        expectGmemError(.noMemory) { try memory.setAttributes(at: 0, size: chunk, shared: toShared) }
        protection.setFailing()
        #expect(memory.invariantViolations().isEmpty)
        #expect(try memory.states(0..<512).allSatisfy { $0.isPrivate == toShared }, "no page changed its attribute")
        if mode != .always {
            #expect(try memory.states(0..<512) == before)
            try memory.expectKernelAgrees(0..<512, "after the undone bulk conversion")
        }
        // Every page must be usable, whatever the failed call left behind.
        try memory.writeBytes(pattern(8), at: gpa(page: 0))
        try memory.writeBytes(pattern(8), at: gpa(page: 511, offset: pageSize - 8))
        #expect(try memory.readBytes(at: 0, count: 8) == pattern(8))
        // Once the backlog has been retried, the kernel agrees again.
        _ = try memory.readBytes(at: gpa(page: 700), count: 8)
        #expect(try memory.states(0..<512) == before)
        try memory.expectKernelAgrees(0..<512, "after the retry")
        try memory.setAttributes(at: 0, size: chunk, shared: toShared)
        #expect(
            try memory.states(0..<512).allSatisfy {
                $0.isPrivate != toShared && $0.isAccessible == toShared && $0.count == 0
            }
        )
        try memory.expectKernelAgrees(0..<512)
        let statistics = memory.statistics
        let accessibleNow = try memory.allStates().filter(\.isAccessible).count
        #expect(statistics.restores - statistics.zaps == UInt64(accessibleNow), "restores and zaps balance")
    }
}
