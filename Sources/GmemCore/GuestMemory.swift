#if canImport(Glibc)
import Glibc
#endif

/// A VM's guest memory: a region, its page table and the operations clients use.
///
/// Every access follows the map/unmap protocol: the pages of a copy are
/// acquired just before it and released right after it, so a private page is
/// accessible in this process exactly while somebody uses it. All methods are
/// synchronous and safe to call from any thread.
public final class GuestMemory: Sendable {
    public struct Configuration: Sendable, Hashable {
        public var size: UInt64
        public var folioSize: Int
        public var backing: Backing
        /// Direct-map mode keeps every page accessible and makes no protection
        /// calls; references are still counted.
        public var directMap: Bool

        public init(size: UInt64, folioSize: Int? = nil, backing: Backing = .memfd, directMap: Bool = false) {
            self.size = size
            self.folioSize = folioSize ?? GuestMemory.systemPageSize
            self.backing = backing
            self.directMap = directMap
        }
    }

    public static let systemPageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public let region: Region
    public let configuration: Configuration
    let table: PageTable
    /// Hook for the systemd fd store: where setAttributes records conversions
    /// durably (the `gmemd-state` file), or nil when nothing outlives the process.
    let attributeRecorder: (any AttributeRecorder)?
    /// Counters for callers that do not bring their own.
    public let defaultCounters = AccessCounters()
    private let counterShards: Locked<(live: [AccessCounters], retired: Statistics)>

    public var geometry: RegionGeometry { self.region.geometry }

    /// Creates a new region. `protection` is the seam for fault injection.
    public convenience init(
        _ configuration: Configuration,
        protection: any PageProtection = KernelPageProtection(),
        attributeRecorder: (any AttributeRecorder)? = nil
    ) throws(GmemError) {
        let geometry = try RegionGeometry(
            regionSize: configuration.size,
            pageSize: Self.systemPageSize,
            folioSize: configuration.folioSize
        )
        let region = try Region(
            geometry: geometry,
            backing: configuration.backing,
            initiallyAccessible: configuration.directMap
        )
        self.init(
            region: region,
            configuration: configuration,
            protection: protection,
            attributeRecorder: attributeRecorder
        )
    }

    /// Serves an already mapped region, for instance one recovered from systemd's fd store.
    public init(
        region: Region,
        configuration: Configuration,
        protection: any PageProtection = KernelPageProtection(),
        attributeRecorder: (any AttributeRecorder)? = nil
    ) {
        self.region = region
        self.configuration = configuration
        self.attributeRecorder = attributeRecorder
        self.table = PageTable(region: region, protection: protection, protectsPages: !configuration.directMap)
        self.counterShards = Locked(([self.defaultCounters], Statistics()))
    }

    // MARK: Transient access

    /// Copies `buffer.count` bytes at `address` into `buffer`.
    ///
    /// The range may cross pages and folios. Its pages are acquired (one
    /// protection call for the run that needs restoring), copied without any
    /// lock held, and released (one call per run that needs zapping).
    public func read(
        at address: GuestPhysicalAddress,
        into buffer: UnsafeMutableRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        let pages = try self.geometry.pages(address: address.rawValue, count: buffer.count)
        if !pages.isEmpty {
            try self.table.acquire(pages)
            // The references keep every page of the range accessible; no lock is needed to copy.
            buffer.baseAddress.unsafelyUnwrapped.copyMemory(
                from: self.region.base + Int(address.rawValue),
                byteCount: buffer.count
            )
            self.table.release(pages)
        }
        (counters ?? self.defaultCounters).recordRead(buffer.count)
    }

    /// Copies `bytes` to `address`. Same protocol as ``read(at:into:counters:)``.
    public func write(
        at address: GuestPhysicalAddress,
        from bytes: UnsafeRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        let pages = try self.geometry.pages(address: address.rawValue, count: bytes.count)
        if !pages.isEmpty {
            try self.table.acquire(pages)
            (self.region.base + Int(address.rawValue)).copyMemory(
                from: bytes.baseAddress.unsafelyUnwrapped,
                byteCount: bytes.count
            )
            self.table.release(pages)
        }
        (counters ?? self.defaultCounters).recordWrite(bytes.count)
    }

    /// Runs `body` with the bytes at `address` accessible, for callers that
    /// copy straight into a socket buffer. The pointer is valid only inside `body`.
    public func withBytes<R, E: Error>(
        at address: GuestPhysicalAddress,
        count: Int,
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws -> R {
        let pages = try self.geometry.pages(address: address.rawValue, count: count)
        guard !pages.isEmpty else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        try self.table.acquire(pages)
        defer { self.table.release(pages) }
        return try body(UnsafeRawBufferPointer(start: self.region.base + Int(address.rawValue), count: count))
    }

    // MARK: Statistics

    /// A new set of access counters, summed into ``statistics`` until retired.
    public func makeCounters() -> AccessCounters {
        let counters = AccessCounters()
        self.counterShards.withLock { $0.live.append(counters) }
        return counters
    }

    /// Folds `counters` into the totals and stops tracking it.
    public func retire(_ counters: AccessCounters) {
        self.counterShards.withLock { shards in
            guard let index = shards.live.firstIndex(where: { $0 === counters }) else { return }
            counters.add(to: &shards.retired)
            shards.live.remove(at: index)
        }
    }

    public var statistics: Statistics {
        var result = self.counterShards.withLock { shards in
            var sum = shards.retired
            for counters in shards.live { counters.add(to: &sum) }
            return sum
        }
        self.table.counters.add(to: &result)
        return result
    }
}
