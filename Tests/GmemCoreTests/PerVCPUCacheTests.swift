import Foundation
import Synchronization
import Testing

@testable import GmemCore

/// N per-vCPU kvm-clock caches on one guest page, torn down in random order:
/// the case the seed refused with -EINVAL and that Bonzini asked to count.
@Suite("Per-vCPU caches on one page")
struct PerVCPUCacheTests {
    static let vcpus = 8
    /// pvclock_vcpu_time_info is 32 bytes; vCPUs sit 64 bytes apart.
    static let stride = 64

    @Test(
        "eight kvm-clock caches deactivated in a seeded random order",
        arguments: [1, 2, 3, 0xC0FFEE, 0xDEAD_BEEF] as [UInt64]
    )
    func randomOrder(seed: UInt64) throws {
        let memory = try makeMemory(pages: 4)
        let page = 1
        var caches: [GuestPageCache] = []
        for vcpu in 0..<Self.vcpus {
            caches.append(
                try memory.activateCache(at: gpa(page: page, offset: vcpu * Self.stride), length: 32, tag: UInt64(vcpu))
            )
        }
        #expect(try memory.state(ofPage: page) == privateHeld(UInt32(Self.vcpus)))
        for cache in caches { try memory.writeBytes(pattern(32, seed: UInt8(cache.tag)), cache: cache) }

        var generator = SeededGenerator(seed: seed)
        var remaining = caches
        remaining.shuffle(using: &generator)
        while let victim = remaining.popLast() {
            memory.deactivate(victim)
            let state = try memory.state(ofPage: page)
            let kernel = memory.kernelAccessibility(page..<(page + 1))[0]
            if remaining.isEmpty {
                #expect(state == privateInaccessible)
                #expect(!kernel, "the last deactivation must zap the page")
            } else {
                #expect(state == privateHeld(UInt32(remaining.count)))
                #expect(kernel, "page zapped with \(remaining.count) caches left")
                // Every survivor still reads its own vCPU's data.
                for cache in remaining {
                    #expect(try memory.readBytes(cache: cache, count: 32) == pattern(32, seed: UInt8(cache.tag)))
                }
            }
        }
        #expect(memory.statistics.cachesActive == 0)
        #expect(memory.statistics.cacheActivations == UInt64(Self.vcpus))
        #expect(memory.statistics.protectCalls == 2, "one restore by the first cache, one zap by the last")
        #expect(try memory.readBytes(at: gpa(page: page, offset: 7 * Self.stride), count: 32) == pattern(32, seed: 7))
    }

    @Test("the same with each vCPU's page in its own folio of a 2 MiB folio", arguments: [7, 8] as [UInt64])
    func largeFolio(seed: UInt64) throws {
        let memory = try makeMemory(pages: 1024, folioSize: 2 * MiB)
        var caches: [GuestPageCache] = []
        for vcpu in 0..<Self.vcpus {
            // Two vCPUs per page: pages 510, 511 (folio 0) and 512, 513 (folio 1).
            let page = 510 + vcpu / 2
            caches.append(
                try memory.activateCache(
                    at: gpa(page: page, offset: (vcpu % 2) * Self.stride),
                    length: 32,
                    tag: UInt64(page)
                )
            )
        }
        var generator = SeededGenerator(seed: seed)
        caches.shuffle(using: &generator)
        while let victim = caches.popLast() {
            memory.deactivate(victim)
            for page in 510..<514 {
                let holders = caches.filter { $0.tag == UInt64(page) }.count
                #expect(
                    try memory.state(ofPage: page)
                        == (holders == 0 ? privateInaccessible : privateHeld(UInt32(holders)))
                )
            }
            try memory.expectKernelAgrees(508..<516)
        }
    }

    @Test("Xen: five caches per vCPU for eight vCPUs on two shared-info pages, torn down at random")
    func xenFanOut() throws {
        let memory = try makeMemory(pages: 4, folioSize: 2 * pageSize)
        var caches: [(cache: GuestPageCache, page: Int)] = []
        for vcpu in 0..<Self.vcpus {
            for kind in 0..<5 {
                let page = 2 + (kind % 2)
                caches.append(
                    (try memory.activateCache(at: gpa(page: page, offset: vcpu * 128 + kind * 16), length: 16), page)
                )
            }
        }
        #expect(try memory.states(2..<4) == [privateHeld(24), privateHeld(16)])
        var generator = SeededGenerator(seed: 0x5E4)
        caches.shuffle(using: &generator)
        while let (victim, _) = caches.popLast() {
            memory.deactivate(victim)
            let expected = (2..<4).map { page -> PageState in
                let holders = caches.filter { $0.page == page }.count
                return holders == 0 ? privateInaccessible : privateHeld(UInt32(holders))
            }
            #expect(try memory.states(2..<4) == expected)
        }
        try memory.expectKernelAgrees()
        #expect(memory.statistics.protectCalls == 4, "each page restored once and zapped once")
    }

    @Test("eight vCPU threads on one page: reads through every cache and transient reads race the teardown")
    func threadedTeardown() throws {
        let memory = try makeMemory(pages: 4)
        let page = 1
        try memory.writeBytes(pattern(pageSize, seed: 6), at: gpa(page: page))
        let caches = try (0..<Self.vcpus).map {
            try memory.activateCache(at: gpa(page: page, offset: $0 * Self.stride), length: 32)
        }
        let failures = Locked<[String]>([])
        let started = Atomic<Int>(0)
        let group = DispatchGroup()
        for vcpu in 0..<Self.vcpus {
            group.enter()
            Thread {
                defer { group.leave() }
                started.add(1, ordering: .relaxed)
                while started.load(ordering: .relaxed) < Self.vcpus {}  // start together
                var generator = SeededGenerator(seed: UInt64(vcpu))
                let rounds = Int.random(in: 200..<2000, using: &generator)
                let expected = Array(pattern(pageSize, seed: 6)[(vcpu * Self.stride)..<(vcpu * Self.stride + 32)])
                do {
                    for round in 0..<rounds {
                        if try memory.readBytes(cache: caches[vcpu], count: 32) != expected {
                            failures.withLock { $0.append("vCPU \(vcpu) cache read") }
                        }
                        if round % 16 == 0,
                            try memory.readBytes(at: gpa(page: page), count: pageSize) != pattern(pageSize, seed: 6)
                        {
                            failures.withLock { $0.append("vCPU \(vcpu) transient read") }
                        }
                    }
                } catch {
                    failures.withLock { $0.append("vCPU \(vcpu): \(error)") }
                }
                memory.deactivate(caches[vcpu])
                // After its own teardown a vCPU may still read transiently.
                if (try? memory.readBytes(at: gpa(page: page, offset: 8), count: 8))
                    != Array(pattern(pageSize, seed: 6)[8..<16])
                {
                    failures.withLock { $0.append("vCPU \(vcpu) read after teardown") }
                }
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 } == [])
        #expect(try memory.state(ofPage: page) == privateInaccessible)
        try memory.expectKernelAgrees()
        #expect(memory.statistics.cachesActive == 0)
        #expect(memory.invariantViolations().isEmpty)
    }
}
