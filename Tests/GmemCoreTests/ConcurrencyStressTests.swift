import Foundation
import Synchronization
import Testing

@testable import GmemCore

/// Four OS threads hammer a handful of pages with every operation for about
/// two seconds. Each also owns one private page nobody else touches, whose
/// contents must never be lost. At the end, with every cache deactivated, the
/// page table must be clean and the counters must add up.
@Suite("Concurrency stress")
struct ConcurrencyStressTests {
    static let threads = 4
    static let arenaPages = 6
    static let duration: Duration = .milliseconds(2200)

    final class Totals: Sendable {
        let activations = Atomic<Int>(0)
        let notifications = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        let writes = Atomic<Int>(0)
        let operations = Atomic<Int>(0)
        let failures = Locked<[String]>([])

        func fail(_ message: String) { self.failures.withLock { if $0.count < 20 { $0.append(message) } } }
    }

    /// Runs `body(thread)` on `count` new threads and waits for all of them.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                body(index)
                group.leave()
            }
            thread.start()
        }
        group.wait()
    }

    static func worker(_ index: Int, memory: GuestMemory, totals: Totals, deadline: ContinuousClock.Instant) {
        var rng = SeededGenerator(seed: 0x5EED_0000 + UInt64(index))
        let ownPage = 8 + index  // folios 4 and 5: no arena page shares their locks
        let ownBase = ownPage * pageSize
        var shadow = [UInt8](repeating: 0, count: pageSize)
        var caches: [GuestPageCache] = []
        let counters = memory.makeCounters()
        let onInvalidation: GuestPageCache.InvalidationHandler = { _, _ in
            totals.notifications.add(1, ordering: .relaxed)
        }

        func check(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { totals.fail("thread \(index) \(what): \(error)") }
        }
        func window() -> (GuestPhysicalAddress, Int) {
            let page = Int.random(in: 0..<Self.arenaPages, using: &rng)
            let offset = Int.random(in: 0..<pageSize, using: &rng)
            return (gpa(page: page, offset: offset), Int.random(in: 1...(pageSize - offset), using: &rng))
        }
        func arenaRange() -> (UInt64, UInt64) {
            let first = Int.random(in: 0..<Self.arenaPages, using: &rng)
            let count = Int.random(in: 1...(Self.arenaPages - first), using: &rng)
            return (UInt64(first * pageSize), UInt64(count * pageSize))
        }

        var buffer = [UInt8](repeating: 0, count: 3 * pageSize)
        while ContinuousClock.now < deadline {
            totals.operations.add(1, ordering: .relaxed)
            switch Int.random(in: 0..<12, using: &rng) {
            case 0, 1:  // transient read or write in the arena, possibly across pages and folios
                let address = Int.random(in: 0..<(Self.arenaPages * pageSize), using: &rng)
                let count = Int.random(in: 0...min(buffer.count, Self.arenaPages * pageSize - address), using: &rng)
                check("arena access") {
                    if Bool.random(using: &rng) {
                        try buffer.withUnsafeMutableBytes {
                            try memory.read(
                                at: GuestPhysicalAddress(UInt64(address)),
                                into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]),
                                counters: counters
                            )
                        }
                        totals.reads.add(1, ordering: .relaxed)
                    } else {
                        try buffer.withUnsafeBytes {
                            try memory.write(
                                at: GuestPhysicalAddress(UInt64(address)),
                                from: UnsafeRawBufferPointer(rebasing: $0[0..<count]),
                                counters: counters
                            )
                        }
                        totals.writes.add(1, ordering: .relaxed)
                    }
                }
            case 2 where caches.count < 4:
                let (address, length) = window()
                check("activate") {
                    caches.append(
                        try memory.activateCache(
                            at: address,
                            length: length,
                            tag: UInt64(index),
                            onInvalidation: onInvalidation
                        )
                    )
                    totals.activations.add(1, ordering: .relaxed)
                }
            case 3 where !caches.isEmpty, 4 where !caches.isEmpty:  // access through a cache; ESTALE means refresh
                let cache = caches[Int.random(in: caches.indices, using: &rng)]
                let length = memory.describe(cache).length
                do {
                    try buffer.withUnsafeMutableBytes {
                        try memory.read(
                            cache: cache,
                            offset: 0,
                            into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<length]),
                            counters: counters
                        )
                    }
                    totals.reads.add(1, ordering: .relaxed)
                } catch let error as GmemError where error.code == .stale {
                    let (address, length) = window()
                    check("refresh after ESTALE") { try memory.refresh(cache, to: address, length: length) }
                } catch {
                    totals.fail("thread \(index) cache read: \(error)")
                }
            case 5 where !caches.isEmpty:
                let cache = caches[Int.random(in: caches.indices, using: &rng)]
                let (address, length) = window()
                check("refresh") { try memory.refresh(cache, to: address, length: length) }
            case 6 where !caches.isEmpty:
                memory.deactivate(caches.remove(at: Int.random(in: caches.indices, using: &rng)))
            case 7:
                let (address, size) = arenaRange()
                let shared = Bool.random(using: &rng)
                check("setAttributes") {
                    try memory.setAttributes(at: GuestPhysicalAddress(address), size: size, shared: shared)
                }
            case 8 where Int.random(in: 0..<4, using: &rng) == 0:
                let (address, size) = arenaRange()
                check("discard") { try memory.discard(at: GuestPhysicalAddress(address), size: size) }
            case 9, 10:  // the private page: write a random window, read it all back
                let offset = Int.random(in: 0..<pageSize, using: &rng)
                let data = (0..<Int.random(in: 0...(pageSize - offset), using: &rng)).map { _ in
                    UInt8.random(in: 0...255, using: &rng)
                }
                check("own page") {
                    try memory.writeBytes(data, at: GuestPhysicalAddress(UInt64(ownBase + offset)))
                    shadow.replaceSubrange(offset..<(offset + data.count), with: data)
                    let back = try memory.readBytes(at: GuestPhysicalAddress(UInt64(ownBase)), count: pageSize)
                    if back != shadow { totals.fail("thread \(index): own page \(ownPage) lost data") }
                }
                totals.writes.add(1, ordering: .relaxed)
                totals.reads.add(1, ordering: .relaxed)
            case 11:  // the private page through a short-lived cache
                check("own page cache") {
                    let cache = try memory.activateCache(at: gpa(page: ownPage, offset: 64), length: 64, tag: 100)
                    totals.activations.add(1, ordering: .relaxed)
                    let data = (0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    try memory.writeBytes(data, cache: cache)
                    shadow.replaceSubrange(64..<128, with: data)
                    if try memory.readBytes(at: gpa(page: ownPage, offset: 64), count: 64) != data {
                        totals.fail("thread \(index): cache write lost")
                    }
                    memory.deactivate(cache)
                }
                totals.writes.add(1, ordering: .relaxed)
                totals.reads.add(1, ordering: .relaxed)
            default:
                break
            }
        }
        for cache in caches { memory.deactivate(cache) }
        check("final own page") {
            if try memory.readBytes(at: GuestPhysicalAddress(UInt64(ownBase)), count: pageSize) != shadow {
                totals.fail("thread \(index): own page \(ownPage) differs at the end")
            }
        }
        totals.reads.add(1, ordering: .relaxed)
        memory.retire(counters)
    }

    @Test("four threads, every operation, about two seconds")
    func stress() throws {
        let memory = try makeMemory(pages: 16, folioSize: 2 * pageSize)
        let totals = Totals()
        let deadline = ContinuousClock.now + Self.duration
        Self.onThreads(Self.threads) { index in Self.worker(index, memory: memory, totals: totals, deadline: deadline) }

        #expect(totals.failures.withLock { $0 } == [])
        #expect(totals.operations.load(ordering: .relaxed) > 1000, "the threads did work")
        #expect(memory.invariantViolations().map(\.page) == [])
        let states = try memory.allStates()
        #expect(states.allSatisfy { $0.count == 0 }, "\(states)")
        #expect(try memory.states(6..<16).allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees(nil, "quiescent after the stress run")

        let statistics = memory.statistics
        #expect(statistics.cachesActive == 0)
        #expect(statistics.cacheActivations == UInt64(totals.activations.load(ordering: .relaxed)))
        #expect(statistics.invalidations == UInt64(totals.notifications.load(ordering: .relaxed)))
        #expect(statistics.reads == UInt64(totals.reads.load(ordering: .relaxed)))
        #expect(statistics.writes == UInt64(totals.writes.load(ordering: .relaxed)))
        #expect(statistics.protectFailures == 0)
        // Every restore is matched by a zap, except for the pages left shared.
        #expect(statistics.restores - statistics.zaps == UInt64(states.filter { !$0.isPrivate }.count))
    }
}
