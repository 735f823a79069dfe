import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the core knows of one page. Guarded by the page's folio lock.
struct PageRecord {
    /// Users holding the page accessible: in-flight copies and valid caches.
    var count: UInt32
    /// Shared pages are always accessible; private ones only while `count > 0`.
    var isShared: Bool
    /// Whether the page is read-write in the daemon's mapping right now.
    var isAccessible: Bool
    /// A failed protection call may have left the page no-access although
    /// `isAccessible` says otherwise, so the next acquire restores it before
    /// any copy trusts it. Set only together with `isAccessible`.
    var needsRestore: Bool = false
}

/// Page metadata for one 2 MiB stretch of the region, allocated on first use.
final class Chunk {
    let pages: UnsafeMutablePointer<PageRecord>
    /// The caches attached to each page, so invalidation finds them by page.
    let caches: UnsafeMutablePointer<[GuestPageCache]>
    /// One lock per folio. Every change to a record or a cache list of the
    /// folio's pages, and every protection call on them, happens under it.
    let locks: UnsafeMutablePointer<pthread_mutex_t>
    let pageCount: Int
    let folioCount: Int

    init(pageCount: Int, pagesPerFolio: Int, initial: PageRecord) {
        self.pageCount = pageCount
        self.folioCount = (pageCount + pagesPerFolio - 1) / pagesPerFolio
        self.pages = .allocate(capacity: pageCount)
        self.pages.initialize(repeating: initial, count: pageCount)
        self.caches = .allocate(capacity: pageCount)
        self.caches.initialize(repeating: [], count: pageCount)
        self.locks = .allocate(capacity: self.folioCount)
        for folio in 0..<self.folioCount {
            pthread_mutex_init(self.locks + folio, nil)
        }
    }

    deinit {
        for folio in 0..<self.folioCount {
            pthread_mutex_destroy(self.locks + folio)
        }
        self.locks.deallocate()
        self.caches.deinitialize(count: self.pageCount)
        self.caches.deallocate()
        self.pages.deallocate()
    }
}

/// The per-page state of a region, its folio locks, and the map/unmap protocol.
///
/// Metadata is sparse: a chunk slot holds either a ``Chunk`` or, until the
/// first use, one of two "uniform" markers saying every page of the chunk is
/// private (the start state) or shared with a count of zero. That is what lets
/// a 1 TiB region start with a few MiB of metadata and convert in bulk.
final class PageTable: @unchecked Sendable {  // Records are guarded by folio locks, slots by slotLock/atomics.
    let geometry: RegionGeometry
    let region: Region
    let protection: any PageProtection
    /// False in direct-map mode: every page stays accessible and nothing is protected.
    let protectsPages: Bool
    let counters = ProtocolCounters()

    static let uniformPrivate: UInt = 0
    static let uniformShared: UInt = 1

    private let slots: UnsafeMutablePointer<Atomic<UInt>>
    /// Serializes chunk creation and bulk conversion of uniform chunks.
    private let slotLock = PThreadLock()
    /// Pages whose zap failed: each holds one reference owned by the backlog.
    let zapBacklog = Locked<[Int]>([])
    let zapBacklogPending = Atomic<Bool>(false)

    init(region: Region, protection: any PageProtection, protectsPages: Bool) {
        self.geometry = region.geometry
        self.region = region
        self.protection = protection
        self.protectsPages = protectsPages
        let count = region.geometry.chunkCount
        self.slots = .allocate(capacity: count)
        for index in 0..<count {
            (self.slots + index).initialize(to: Atomic(Self.uniformPrivate))
        }
    }

    deinit {
        for index in 0..<self.geometry.chunkCount {
            let bits = self.slots[index].load(ordering: .acquiring)
            if bits > Self.uniformShared {
                Unmanaged<Chunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release()
            }
        }
        self.slots.deallocate()
    }

    // MARK: Chunks

    /// The chunk if it is allocated, else nil (its pages are uniform).
    @inline(__always)
    func existingChunk(_ index: Int) -> Chunk? {
        let bits = self.slots[index].load(ordering: .acquiring)
        guard bits > Self.uniformShared else { return nil }
        return Unmanaged<Chunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
    }

    /// The uniform marker of an unallocated chunk, or nil once it is allocated.
    func uniformMarker(_ index: Int) -> UInt? {
        let bits = self.slots[index].load(ordering: .acquiring)
        return bits > Self.uniformShared ? nil : bits
    }

    /// The chunk, allocated with its uniform state on first use.
    @inline(__always)
    func chunk(_ index: Int) -> Chunk {
        if let chunk = self.existingChunk(index) { return chunk }
        return self.allocateChunk(index)
    }

    private func allocateChunk(_ index: Int) -> Chunk {
        self.slotLock.withLock {
            let bits = self.slots[index].load(ordering: .acquiring)
            if bits > Self.uniformShared {
                return Unmanaged<Chunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
            }
            let shared = bits == Self.uniformShared
            return self.installChunk(
                index,
                initial: PageRecord(count: 0, isShared: shared, isAccessible: shared || !self.protectsPages)
            )
        }
    }

    /// Allocates the metadata of chunk `index` with every record `initial`. slotLock is held.
    private func installChunk(_ index: Int, initial: PageRecord) -> Chunk {
        let chunk = Chunk(
            pageCount: self.geometry.chunkPages(index).count,
            pagesPerFolio: self.geometry.pagesPerFolio,
            initial: initial
        )
        let opaque = Unmanaged.passRetained(chunk).toOpaque()
        self.slots[index].store(UInt(bitPattern: opaque), ordering: .releasing)
        return chunk
    }

    /// Converts a chunk that is still uniform in one protection call, without
    /// allocating it. Returns false when the chunk is allocated (the caller
    /// converts page by page then).
    func convertUniformChunk(_ index: Int, toShared shared: Bool) throws(GmemError) -> (converted: Bool, pages: Int) {
        try self.slotLock.withLock { () throws(GmemError) -> (Bool, Int) in
            let bits = self.slots[index].load(ordering: .acquiring)
            guard bits <= Self.uniformShared else { return (false, 0) }
            let target = shared ? Self.uniformShared : Self.uniformPrivate
            guard bits != target else { return (true, 0) }
            let run = self.geometry.chunkPages(index)
            // No lock is needed for the pages: nobody can hold a page of an
            // unallocated chunk, since acquiring one allocates it under slotLock.
            if self.protectsPages {
                do throws(GmemError) {
                    try self.protect(run, accessible: shared)
                } catch {
                    // A failed mprotect may have changed part of the chunk: put it back.
                    do throws(GmemError) {
                        try self.protect(run, accessible: !shared)
                    } catch _ {
                        // Unknown protections: record every page as accessible but needing a
                        // restore before use; private ones are parked so their zap is retried.
                        let wasShared = bits == Self.uniformShared
                        _ = self.installChunk(
                            index,
                            initial: PageRecord(
                                count: wasShared ? 0 : 1,
                                isShared: wasShared,
                                isAccessible: true,
                                needsRestore: true
                            )
                        )
                        if !wasShared {
                            self.counters.restores.increment(by: UInt64(run.count))
                            self.park(Array(run))
                        }
                    }
                    throw error
                }
                if shared {
                    self.counters.restores.increment(by: UInt64(run.count))
                } else {
                    self.counters.zaps.increment(by: UInt64(run.count))
                }
            }
            self.slots[index].store(target, ordering: .releasing)
            return (true, run.count)
        }
    }

    // MARK: Records and locks

    /// A copy of the record of `page`, to read. The caller holds its folio lock
    /// and its chunk exists. Only `PageTable+MapUnmap.swift` changes records.
    @inline(__always)
    func recordSnapshot(_ page: Int) -> PageRecord {
        let chunk = self.existingChunk(self.geometry.chunk(of: page)).unsafelyUnwrapped
        return chunk.pages[page % self.geometry.pagesPerChunk]
    }

    /// Runs `body` on the cache list of `page`, in place. The caller holds its
    /// folio lock (the list's guard) and its chunk exists.
    @inline(__always)
    func withCaches<R>(of page: Int, _ body: (inout [GuestPageCache]) -> R) -> R {
        let chunk = self.existingChunk(self.geometry.chunk(of: page)).unsafelyUnwrapped
        return body(&chunk.caches[page % self.geometry.pagesPerChunk])
    }

    @inline(__always)
    private func folioLock(_ folio: Int) -> UnsafeMutablePointer<pthread_mutex_t> {
        let firstPage = folio * self.geometry.pagesPerFolio
        let chunk = self.chunk(self.geometry.chunk(of: firstPage))
        return chunk.locks + ((firstPage % self.geometry.pagesPerChunk) / self.geometry.pagesPerFolio)
    }

    /// Locks the folios covering `pages`, in ascending order so that two
    /// overlapping accesses can never deadlock, allocating chunks as needed.
    @inline(__always)
    func lockFolios(of pages: PageRun) {
        guard !pages.isEmpty else { return }
        for folio in self.geometry.folio(of: pages.lowerBound)...self.geometry.folio(of: pages.upperBound - 1) {
            pthread_mutex_lock(self.folioLock(folio))
        }
    }

    @inline(__always)
    func unlockFolios(of pages: PageRun) {
        guard !pages.isEmpty else { return }
        for folio in (self.geometry.folio(of: pages.lowerBound)...self.geometry.folio(of: pages.upperBound - 1))
            .reversed()
        {
            pthread_mutex_unlock(self.folioLock(folio))
        }
    }

    /// Runs `body` with the folio locks of `pages` held.
    @inline(__always)
    func withFolios<R, E: Error>(of pages: PageRun, _ body: () throws(E) -> R) throws(E) -> R {
        self.lockFolios(of: pages)
        defer { self.unlockFolios(of: pages) }
        return try body()
    }

    /// Runs `body` with the folio locks of two pages held (one lock if they share a folio).
    func withFolios<R, E: Error>(of first: Int, _ second: Int, _ body: () throws(E) -> R) throws(E) -> R {
        let low = min(first, second)
        let high = max(first, second)
        if self.geometry.folio(of: low) == self.geometry.folio(of: high) {
            return try self.withFolios(of: low..<(low + 1), body)
        }
        return try self.withFolios(of: low..<(low + 1)) { () throws(E) -> R in
            try self.withFolios(of: high..<(high + 1), body)
        }
    }
}
