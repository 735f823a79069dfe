/// Sizes of a region and the arithmetic between addresses, pages, folios and chunks.
///
/// A *folio* is a power-of-two group of pages that shares one lock (as a folio
/// shares one `PG_locked` bit in the kernel). A *chunk* is the unit in which
/// page metadata is allocated lazily; it is a whole number of folios.
public struct RegionGeometry: Hashable, Sendable {
    /// The largest folio size accepted, as the kernel's PMD-sized folios.
    public static let maximumFolioSize = 2 << 20

    public let regionSize: UInt64
    public let pageSize: Int
    public let folioSize: Int

    public let pageShift: Int
    let pagesPerFolio: Int
    let pagesPerChunk: Int
    let pageCount: Int

    /// Validates the sizes: the folio size is a power of two between the page
    /// size and 2 MiB, and the region a non-zero multiple of it.
    public init(regionSize: UInt64, pageSize: Int, folioSize: Int) throws(GmemError) {
        guard pageSize > 0, pageSize.nonzeroBitCount == 1 else {
            throw GmemError(.invalidArgument, "page size \(pageSize) is not a power of two")
        }
        guard folioSize.nonzeroBitCount == 1, folioSize >= pageSize, folioSize <= Self.maximumFolioSize else {
            throw GmemError(
                .invalidArgument,
                "folio size \(folioSize) must be a power of two between the page size (\(pageSize)) and 2 MiB"
            )
        }
        guard regionSize > 0, regionSize % UInt64(folioSize) == 0 else {
            throw GmemError(
                .invalidArgument,
                "region size \(regionSize) is not a non-zero multiple of the folio size \(folioSize)"
            )
        }
        guard regionSize / UInt64(pageSize) <= UInt64(Int32.max) else {
            throw GmemError(.invalidArgument, "region size \(regionSize) exceeds the supported maximum of 8 TiB")
        }
        self.regionSize = regionSize
        self.pageSize = pageSize
        self.folioSize = folioSize
        self.pageShift = pageSize.trailingZeroBitCount
        self.pagesPerFolio = folioSize / pageSize
        self.pagesPerChunk = Self.maximumFolioSize / pageSize
        self.pageCount = Int(regionSize / UInt64(pageSize))
    }

    var chunkCount: Int { (self.pageCount + self.pagesPerChunk - 1) / self.pagesPerChunk }

    func folio(of page: Int) -> Int { page / self.pagesPerFolio }
    func chunk(of page: Int) -> Int { page / self.pagesPerChunk }
    func chunkPages(_ chunk: Int) -> PageRun {
        let first = chunk * self.pagesPerChunk
        return first..<min(first + self.pagesPerChunk, self.pageCount)
    }
    func page(of address: UInt64) -> Int { Int(address >> UInt64(self.pageShift)) }
    func offset(ofPage page: Int) -> Int { page << self.pageShift }
    public func isPageAligned(_ value: UInt64) -> Bool { value & UInt64(self.pageSize - 1) == 0 }

    /// The pages touched by `count` bytes at `address`, or `.badAddress` when the
    /// range leaves the region or its end overflows. An empty access touches
    /// no page, but its address must still lie inside the region.
    func pages(address: UInt64, count: Int) throws(GmemError) -> PageRun {
        let (end, overflow) = address.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= self.regionSize, address < self.regionSize else {
            throw GmemError(.badAddress, "range 0x\(String(address, radix: 16))+\(count) lies outside the region")
        }
        guard count > 0 else { return self.page(of: address)..<self.page(of: address) }
        return self.page(of: address)..<(self.page(of: end - 1) + 1)
    }

    /// The pages of a page-aligned, non-empty range (conversion, discard, page states).
    func alignedPages(address: UInt64, size: UInt64) throws(GmemError) -> PageRun {
        guard self.isPageAligned(address), self.isPageAligned(size) else {
            throw GmemError(
                .invalidArgument,
                "range 0x\(String(address, radix: 16))+0x\(String(size, radix: 16)) is not page-aligned"
            )
        }
        guard size > 0 else { throw GmemError(.invalidArgument, "the range is empty") }
        let (end, overflow) = address.addingReportingOverflow(size)
        guard !overflow, end <= self.regionSize else {
            throw GmemError(
                .badAddress,
                "range 0x\(String(address, radix: 16))+0x\(String(size, radix: 16)) lies outside the region"
            )
        }
        return self.page(of: address)..<self.page(of: end)
    }
}
