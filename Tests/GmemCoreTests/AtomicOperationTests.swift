import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Atomic operations on guest memory: results, error rules, protection calls,
/// the invariant after each, and atomicity under contention.
@Suite("Atomic operations")
struct AtomicOperationTests {
    /// The little-endian bytes of `value`'s low `width` bytes.
    func bytes(_ value: UInt64, width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    @Test("every operation at every width returns the old value and leaves the right bytes", arguments: [1, 2, 4, 8])
    func operations(width: Int) throws {
        let memory = try makeMemory(pages: 8)
        let address = gpa(page: 3, offset: 64)
        let mask = width == 8 ? ~UInt64(0) : (UInt64(1) << (8 * width)) - 1
        let start = 0x8877_6655_4433_2211 & mask
        try memory.writeBytes(self.bytes(start, width: width), at: address)
        func run(_ op: AtomicOperation, _ operand: UInt64 = 0, expected: UInt64 = 0) throws -> UInt64 {
            try memory.atomic(op, width: width, at: address, operand: operand, expected: expected)
        }
        func value() throws -> [UInt8] { try memory.readBytes(at: address, count: width) }

        #expect(try run(.load) == start)
        #expect(try run(.store, 0x0F & mask) == 0)
        #expect(try value() == self.bytes(0x0F, width: width))
        #expect(try run(.exchange, 0xF0) == 0x0F)
        #expect(try run(.compareExchange, 0x55, expected: 0x11) == 0xF0)  // mismatch: no store
        #expect(try value() == self.bytes(0xF0, width: width))
        #expect(try run(.compareExchange, 0x55, expected: 0xF0) == 0xF0)
        #expect(try value() == self.bytes(0x55, width: width))
        #expect(try run(.fetchAdd, mask) == 0x55)  // adding all ones wraps to minus one
        #expect(try run(.fetchOr, 0x80) == 0x54)
        #expect(try run(.fetchAnd, 0x0F) == 0xD4)
        #expect(try run(.load) == 0x04)
        // Bytes next to the operand are untouched.
        #expect(try memory.readBytes(at: gpa(page: 3, offset: 64 + width), count: 8) == [UInt8](repeating: 0, count: 8))
        try memory.expectKernelAgrees()
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        // 2 LOADs and 4 plain reads; 7 modifying operations and 1 plain write.
        #expect(memory.statistics.reads == 6 && memory.statistics.writes == 8)
    }

    @Test("shape errors come before bounds errors")
    func errors() throws {
        let memory = try makeMemory(pages: 4)
        let (_, calls) = memory.protectCalls {
            for width in [0, 3, 5, 16] {
                expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: width, at: gpa(page: 1)) }
            }
            expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 4, at: gpa(page: 1, offset: 2)) }
            expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 8, at: gpa(page: 1, offset: -4)) }
            expectGmemError(.invalidArgument) { _ = try memory.atomic(.store, width: 1, at: 0, operand: 0x100) }
            expectGmemError(.invalidArgument) {
                _ = try memory.atomic(.compareExchange, width: 2, at: 0, operand: 1, expected: 0x1_0000)
            }
            // Misaligned and outside: the shape decides.
            expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 8, at: gpa(page: 9, offset: 1)) }
            expectGmemError(.badAddress) { _ = try memory.atomic(.load, width: 8, at: gpa(page: 4)) }
            expectGmemError(.badAddress) { _ = try memory.atomic(.fetchAdd, width: 8, at: GuestPhysicalAddress(~7)) }
        }
        #expect(calls == 0)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
    }

    @Test("one restore and one zap on a private page, none on a held or shared page or through a GPC")
    func protectionCalls() throws {
        let memory = try makeMemory(pages: 8)
        let (_, plain) = try memory.protectCalls {
            try memory.atomic(.fetchAdd, width: 8, at: gpa(page: 2), operand: 1)
        }
        #expect(plain == 2)
        try memory.expectKernelAgrees()

        var held = HeldPages()
        let (_, holding) = try memory.protectCalls {
            for _ in 0..<10 {
                _ = try memory.atomic(.fetchAdd, width: 8, at: gpa(page: 2), operand: 1, holding: &held)
            }
        }
        #expect(holding == 1)
        #expect(try memory.state(ofPage: 2) == privateHeld(1))
        try memory.expectKernelAgrees()
        memory.release(&held)
        try memory.expectKernelAgrees()

        let cache = try memory.activateCache(at: gpa(page: 5, offset: 16), length: 64)
        let (old, cached) = try memory.protectCalls {
            try (0..<10).map { _ in try memory.atomic(.fetchAdd, width: 4, cache: cache, offset: 8, operand: 3) }
        }
        #expect(cached == 0)
        #expect(old == stride(from: 0, to: 30, by: 3).map { UInt64($0) })
        #expect(try memory.atomic(.load, width: 8, at: gpa(page: 2)) == 11)
        #expect(try memory.readBytes(at: gpa(page: 5, offset: 24), count: 4) == self.bytes(30, width: 4))
        try memory.expectKernelAgrees()
        memory.deactivate(cache)
        try memory.expectKernelAgrees()
    }

    @Test("GPC atomics check the window, the alignment and the cache's state")
    func cacheErrors() throws {
        let memory = try makeMemory(pages: 8)
        let cache = try memory.activateCache(at: gpa(page: 1, offset: 4), length: 16)
        // Window offset 4 is page offset 8: aligned for 8 bytes.
        #expect(try memory.atomic(.exchange, width: 8, cache: cache, offset: 4, operand: 7) == 0)
        expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 8, cache: cache, offset: 0) }
        expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 8, cache: cache, offset: 12) }
        expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 4, cache: cache, offset: 16) }
        expectGmemError(.invalidArgument) { _ = try memory.atomic(.load, width: 4, cache: cache, offset: -4) }
        try memory.setAttributes(at: gpa(page: 1), size: UInt64(pageSize), shared: true)
        expectGmemError(.stale) { _ = try memory.atomic(.load, width: 4, cache: cache, offset: 4) }
        memory.deactivate(cache)
        expectGmemError(.noSuchEntry) { _ = try memory.atomic(.load, width: 4, cache: cache, offset: 4) }
        #expect(try memory.atomic(.load, width: 8, at: gpa(page: 1, offset: 8)) == 7)
        try memory.expectKernelAgrees()
    }

    @Test("N threads × M FETCH_ADDs on one word end exactly at N × M", arguments: [4, 8])
    func concurrentFetchAdd(width: Int) async throws {
        let memory = try makeMemory(pages: 8)
        let cache = try memory.activateCache(at: gpa(page: 6), length: 8)
        let threads = 4
        let adds = 10_000
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    // Half the threads go through the protocol on a page nobody holds, half through the GPC.
                    for _ in 0..<adds {
                        if thread % 2 == 0 {
                            _ = try? memory.atomic(.fetchAdd, width: width, at: gpa(page: 2), operand: 1)
                            _ = try? memory.atomic(.fetchAdd, width: width, at: gpa(page: 6), operand: 1)
                        } else {
                            _ = try? memory.atomic(.fetchAdd, width: width, at: gpa(page: 2), operand: 1)
                            _ = try? memory.atomic(.fetchAdd, width: width, cache: cache, offset: 0, operand: 1)
                        }
                    }
                }
            }
        }
        #expect(try memory.atomic(.load, width: width, at: gpa(page: 2)) == UInt64(threads * adds))
        #expect(try memory.atomic(.load, width: width, at: gpa(page: 6)) == UInt64(threads * adds))
        memory.deactivate(cache)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees()
    }

    @Test("a CMPXCHG loop from several threads loses no update")
    func compareExchangeLoop() async throws {
        let memory = try makeMemory(pages: 4)
        let threads = 4
        let updates = 3_000
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    for _ in 0..<updates {
                        // Multiply-free increment by 3 via compare-and-swap, retrying on interference.
                        var seen = (try? memory.atomic(.load, width: 8, at: gpa(page: 1))) ?? 0
                        while true {
                            guard
                                let old = try? memory.atomic(
                                    .compareExchange,
                                    width: 8,
                                    at: gpa(page: 1),
                                    operand: seen &+ 3,
                                    expected: seen
                                )
                            else { return }
                            if old == seen { break }
                            seen = old
                        }
                    }
                }
            }
        }
        #expect(try memory.atomic(.load, width: 8, at: gpa(page: 1)) == UInt64(3 * threads * updates))
        try memory.expectKernelAgrees()
    }
}
