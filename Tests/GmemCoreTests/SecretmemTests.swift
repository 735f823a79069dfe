import CGmemSys
import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// memfd_secret(2) backing. RLIMIT_MEMLOCK may be as low as 8 MiB, so the
/// regions are 1 MiB and the suite runs one test at a time.
@Suite("secretmem backing", .serialized)
struct SecretmemTests {
    static let pages = (1 * MiB) / pageSize

    /// The region, or nil after checking that the refusal is a clear `.operationNotSupported`.
    func secretMemory() throws -> GuestMemory? {
        do {
            return try makeMemory(pages: Self.pages, backing: .secretmem)
        } catch let error as GmemError {
            #expect(error.code == .operationNotSupported, "secretmem failed with \(error)")
            #expect(error.reason.contains("memfd_secret") || error.reason.contains("secretmem"))
            // Only a kernel that really refuses memfd_secret may take this path.
            let probe = cgmem_memfd_secret(UInt32(O_CLOEXEC))
            if probe >= 0 {
                close(probe)
                Issue.record("memfd_secret works on this kernel, yet the region failed: \(error)")
            }
            return nil
        }
    }

    @Test("secretmem either works or says why not; when it works, contents round-trip")
    func roundTrip() throws {
        guard let memory = try self.secretMemory() else { return }
        #expect(memory.region.backing == .secretmem)
        let data = pattern(3 * pageSize + 10, seed: 5)
        try memory.writeBytes(data, at: gpa(page: 5, offset: pageSize - 5))
        #expect(try memory.readBytes(at: gpa(page: 5, offset: pageSize - 5), count: data.count) == data)
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        try memory.expectKernelAgrees()

        let cache = try memory.activateCache(at: gpa(page: 6), length: 64)
        #expect(try memory.readBytes(cache: cache, count: 64) == Array(data[5..<69]))
        try memory.setAttributes(at: gpa(page: 6), size: UInt64(2 * pageSize), shared: true)
        expectGmemError(.stale) { _ = try memory.readBytes(cache: cache, count: 8) }
        #expect(try memory.readBytes(at: gpa(page: 5, offset: pageSize - 5), count: data.count) == data)
        try memory.expectKernelAgrees()
        memory.deactivate(cache)
        #expect(memory.invariantViolations().isEmpty)
    }

    @Test("discard on secretmem zeroes the pages in place and keeps attributes")
    func discardZeroes() throws {
        guard let memory = try self.secretMemory() else { return }
        try memory.setAttributes(at: gpa(page: 8), size: UInt64(8 * pageSize), shared: true)
        try memory.writeBytes(pattern(32 * pageSize, seed: 7), at: 0)
        let cache = try memory.activateCache(at: gpa(page: 4), length: 8)
        try memory.discard(at: gpa(page: 4), size: UInt64(8 * pageSize))
        #expect(try memory.readBytes(at: gpa(page: 4), count: 8 * pageSize).allSatisfy { $0 == 0 })
        #expect(
            try memory.readBytes(at: 0, count: 4 * pageSize)
                == Array(pattern(32 * pageSize, seed: 7)[0..<(4 * pageSize)])
        )
        #expect(
            try memory.readBytes(at: gpa(page: 12), count: 4 * pageSize)
                == Array(pattern(32 * pageSize, seed: 7)[(12 * pageSize)..<(16 * pageSize)])
        )
        expectGmemError(.stale) { _ = try memory.readBytes(cache: cache, count: 8) }
        #expect(try memory.states(4..<8).allSatisfy { $0 == privateInaccessible })
        #expect(try memory.states(8..<16).allSatisfy { $0 == sharedIdle })
        try memory.expectKernelAgrees()
        memory.deactivate(cache)
    }

    @Test("a secretmem mapping is excluded from core dumps and makes the same protection calls as memfd")
    func mappingAndCalls() throws {
        guard let memory = try self.secretMemory() else { return }
        let (start, end) = memory.mappingRange
        let vmas = ProcSelf.smaps(overlapping: start, end)
        try #require(!vmas.isEmpty)
        #expect(
            vmas.allSatisfy { $0.vmFlags.contains("dd") && $0.permissions == "---s" },
            "\(vmas.map { ($0.permissions, $0.vmFlags) })"
        )
        let (_, calls) = try memory.protectCalls { _ = try memory.readBytes(at: gpa(page: 2), count: 16 * pageSize) }
        #expect(calls == 2)
        let cache = try memory.activateCache(at: gpa(page: 9), length: 64)
        let (_, cacheCalls) = try memory.protectCalls {
            try memory.writeBytes(pattern(64), cache: cache)
            #expect(try memory.readBytes(cache: cache, count: 64) == pattern(64))
        }
        #expect(cacheCalls == 0)
        memory.deactivate(cache)
        try memory.expectKernelAgrees()
    }
}
