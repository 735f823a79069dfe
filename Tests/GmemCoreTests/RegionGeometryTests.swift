import CGmemSys
import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Region sizes and folio sizes, and the guest file a region creates.
@Suite("Region geometry and creation")
struct RegionGeometryTests {
    @Test(
        "folio sizes must be powers of two from the page size to 2 MiB",
        arguments: [0, -4096, 2048, 3 * 4096, 12 * 1024, 4 * 1024 * 1024, 1 << 30]
    )
    func badFolioSizes(folio: Int) {
        expectGmemError(.invalidArgument) {
            _ = try RegionGeometry(regionSize: 8 << 20, pageSize: 4096, folioSize: folio)
        }
    }

    @Test("region sizes must be non-zero multiples of the folio size")
    func badRegionSizes() {
        let cases: [(UInt64, Int)] = [
            (0, 4096), (4096 + 1, 4096), (20 * 1024, 16 * 1024), (3 << 20, 2 << 20), (1 << 20, 2 << 20),
        ]
        for (size, folio) in cases {
            expectGmemError(.invalidArgument) {
                _ = try RegionGeometry(regionSize: size, pageSize: 4096, folioSize: folio)
            }
        }
    }

    @Test("page sizes must be powers of two, and regions at most 8 TiB")
    func otherLimits() {
        expectGmemError(.invalidArgument) { _ = try RegionGeometry(regionSize: 1 << 20, pageSize: 0, folioSize: 4096) }
        expectGmemError(.invalidArgument) {
            _ = try RegionGeometry(regionSize: 1 << 20, pageSize: 3000, folioSize: 6000)
        }
        expectGmemError(.invalidArgument) {
            _ = try RegionGeometry(regionSize: 16 << 40, pageSize: 4096, folioSize: 4096)
        }
    }

    @Test("valid geometries and their arithmetic")
    func valid() throws {
        let geometry = try RegionGeometry(regionSize: 6 << 20, pageSize: 4096, folioSize: 16 * 1024)
        #expect(geometry.pageCount == 1536)
        #expect(geometry.pagesPerFolio == 4)
        #expect(geometry.pagesPerChunk == 512)
        #expect(geometry.chunkCount == 3)
        #expect(geometry.folio(of: 7) == 1)
        #expect(try geometry.pages(address: 4095, count: 2) == 0..<2)
        #expect(try geometry.pages(address: 4096, count: 4096) == 1..<2)
        #expect(try geometry.pages(address: 100, count: 0).isEmpty)
        #expect(try geometry.alignedPages(address: 8192, size: 8192) == 2..<4)
        let big = try RegionGeometry(regionSize: 1 << 40, pageSize: 4096, folioSize: 2 << 20)
        #expect(big.pageCount == 1 << 28 && big.chunkCount == 1 << 19)
        // A region whose size is not a whole chunk gets a short last chunk.
        let odd = try RegionGeometry(regionSize: (2 << 20) + 8192, pageSize: 4096, folioSize: 4096)
        #expect(odd.chunkCount == 2 && odd.chunkPages(1) == 512..<514)
    }

    @Test("GuestMemory passes geometry errors on")
    func guestMemoryRejects() {
        expectGmemError(.invalidArgument) {
            _ = try GuestMemory(.init(size: UInt64(pageSize) * 3, folioSize: 2 * pageSize))
        }
        expectGmemError(.invalidArgument) { _ = try GuestMemory(.init(size: 0)) }
        expectGmemError(.invalidArgument) { _ = try GuestMemory(.init(size: 1 << 20, folioSize: 4 << 20)) }
    }

    @Test("a memfd region is sized, sealed against grow and shrink, and starts zeroed")
    func memfdFile() throws {
        let memory = try makeMemory(pages: 2 * 512 + 2)
        let fd = memory.region.fileDescriptor
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        #expect(UInt64(info.st_size) == memory.geometry.regionSize)
        let seals = cgmem_get_seals(fd)
        #expect(seals & CGMEM_F_SEAL_GROW != 0 && seals & CGMEM_F_SEAL_SHRINK != 0)
        #expect(ftruncate(fd, off_t(2 * memory.geometry.regionSize)) != 0, "the seal forbids growing")
        #expect(memory.region.backing == .memfd)
        #expect(try memory.readBytes(at: gpa(page: 1025), count: pageSize).allSatisfy { $0 == 0 })
        #expect(try memory.allStates().allSatisfy { $0 == privateInaccessible })
        #expect(ProcSelf.allocatedBytes(fd: fd) <= pageSize, "nothing but the page just read is allocated")
    }

    @Test("adopting an existing guest file (fd-store recovery) maps the same bytes, all private and inaccessible")
    func adoptExistingFile() throws {
        let original = try makeMemory(pages: 8)
        try original.writeBytes(pattern(8 * pageSize, seed: 12), at: 0)
        let fd = dup(original.region.fileDescriptor)
        try #require(fd >= 0)
        let region = try Region(adopting: fd, geometry: original.geometry, backing: .memfd, initiallyAccessible: false)
        let adopted = GuestMemory(region: region, configuration: original.configuration)
        #expect(adopted.mappingRange.start != original.mappingRange.start, "a mapping of its own")
        #expect(try adopted.allStates().allSatisfy { $0 == privateInaccessible })
        try adopted.expectKernelAgrees()
        #expect(try adopted.readBytes(at: 0, count: 8 * pageSize) == pattern(8 * pageSize, seed: 12))
        try adopted.writeBytes([1, 2, 3], at: gpa(page: 7))
        #expect(try original.readBytes(at: gpa(page: 7), count: 3) == [1, 2, 3], "both map one file")
    }

    // Counting /proc/self/maps lines around the call would race with the other
    // tests of this process; failing at mmap means nothing was mapped.
    @Test("adopting a bad descriptor fails at mmap with its errno")
    func adoptBadDescriptor() throws {
        let geometry = try RegionGeometry(regionSize: UInt64(4 * pageSize), pageSize: pageSize, folioSize: pageSize)
        let error = expectGmemError(.badFileDescriptor) {
            _ = try Region(adopting: 1_000_000, geometry: geometry, backing: .memfd, initiallyAccessible: false)
        }
        #expect(error?.reason.contains("mmap") == true)
    }
}
