import CGmemSys

#if canImport(Glibc)
import Glibc
#endif

/// Conversion between private and shared, and discard: the two operations
/// that invalidate caches.
extension GuestMemory {
    /// Converts the page-aligned range to private or shared in place, keeping
    /// its contents. Pages already in the requested state are left alone; every
    /// cache on a page that does change is invalidated and drops its reference.
    ///
    /// Work proceeds one 2 MiB chunk at a time, never holding more than one
    /// chunk's folio locks. If a protection call fails, the chunk it was in is
    /// left unchanged and the error is thrown; earlier chunks stay converted.
    ///
    /// - Returns: the number of pages whose attribute changed.
    @discardableResult
    public func setAttributes(at address: GuestPhysicalAddress, size: UInt64, shared: Bool) throws(GmemError) -> Int {
        let pages = try self.geometry.alignedPages(address: address.rawValue, size: size)
        var changed = 0
        for chunkIndex in self.geometry.chunk(of: pages.lowerBound)...self.geometry.chunk(of: pages.upperBound - 1) {
            let run = self.geometry.chunkPages(chunkIndex).clamped(to: pages)
            // Hook for the systemd fd store: with a recorder, the chunk's
            // conversion and its durable record happen under the recorder's
            // lock for the chunk, and before this method returns.
            let convert = { () throws(GmemError) -> Int in try self.convertChunk(chunkIndex, run, shared: shared) }
            if let recorder = self.attributeRecorder {
                changed += try recorder.recordConversion(chunk: chunkIndex, pages: run, shared: shared, convert)
            } else {
                changed += try convert()
            }
        }
        return changed
    }

    /// Converts the pages of `run`, all in chunk `chunkIndex`; returns how many changed.
    private func convertChunk(_ chunkIndex: Int, _ run: PageRun, shared: Bool) throws(GmemError) -> Int {
        if run == self.geometry.chunkPages(chunkIndex) {
            let (converted, count) = try self.table.convertUniformChunk(chunkIndex, toShared: shared)
            if converted { return count }
        }
        _ = self.table.chunk(chunkIndex)
        let (count, invalidated) = try self.table.withFolios(of: run) { () throws(GmemError) in
            try self.convertLocked(run, shared: shared)
        }
        self.notify(invalidated, reason: .attributesChanged)
        return count
    }

    /// Converts the pages of `run` whose attribute differs. Folio locks are held.
    private func convertLocked(_ run: PageRun, shared: Bool) throws(GmemError) -> (Int, [GuestPageCache]) {
        let table = self.table
        // Becoming shared means becoming accessible: restore first, so a
        // failure leaves every page as it was.
        if shared && table.protectsPages {
            var failure: GmemError? = nil
            let privateNeedingRestore = { (page: Int) in
                !table.recordSnapshot(page).isShared && table.needsRestore(page)
            }
            table.forEachRun(
                in: run,
                where: privateNeedingRestore,
                do: { restoreRun in
                    guard failure == nil else { return }
                    do throws(GmemError) {
                        try table.restoreLocked(restoreRun)
                    } catch {
                        failure = error
                    }
                }
            )
            if let failure {
                // Pages made accessible for this conversion go back to no access.
                table.zapUnused(in: run)
                throw failure
            }
        }
        var changed = 0
        var invalidated: [GuestPageCache] = []
        for page in run where table.setSharedLocked(page, shared) {
            changed += 1
            self.invalidateLocked(page, reason: .attributesChanged, into: &invalidated)
        }
        // Becoming private: pages nobody holds any more are zapped.
        if !shared && table.protectsPages { table.zapUnused(in: run) }
        return (changed, invalidated)
    }

    /// Discards the page-aligned range: a hole punch on the memfd (contents
    /// read back as zero and the memory returns to the system), invalidating
    /// overlapping caches. Attributes are kept. secretmem cannot punch holes,
    /// so there the pages are zeroed in place and stay allocated.
    public func discard(at address: GuestPhysicalAddress, size: UInt64) throws(GmemError) {
        let pages = try self.geometry.alignedPages(address: address.rawValue, size: size)
        var pendingPunch: PageRun? = nil
        for chunkIndex in self.geometry.chunk(of: pages.lowerBound)...self.geometry.chunk(of: pages.upperBound - 1) {
            let run = self.geometry.chunkPages(chunkIndex).clamped(to: pages)
            if self.table.existingChunk(chunkIndex) == nil && self.region.backing == .memfd {
                // No metadata means no caches: punch it with its unallocated neighbours.
                pendingPunch = (pendingPunch?.lowerBound ?? run.lowerBound)..<run.upperBound
                continue
            }
            if let punch = pendingPunch {
                try self.punchUnallocated(punch)
                pendingPunch = nil
            }
            try self.discardLocked(chunkIndex, run)
        }
        if let punch = pendingPunch { try self.punchUnallocated(punch) }
    }

    /// Discards `run` of chunk `chunkIndex` under its folio locks: caches
    /// first, then the contents.
    private func discardLocked(_ chunkIndex: Int, _ run: PageRun) throws(GmemError) {
        _ = self.table.chunk(chunkIndex)
        let invalidated = try self.table.withFolios(of: run) { () throws(GmemError) -> [GuestPageCache] in
            var invalidated: [GuestPageCache] = []
            for page in run { self.invalidateLocked(page, reason: .discarded, into: &invalidated) }
            if self.table.protectsPages { self.table.zapUnused(in: run) }
            try self.clearLocked(run)
            return invalidated
        }
        self.notify(invalidated, reason: .discarded)
    }

    /// Punches chunks that had no metadata. A cache activated on one of them
    /// while the punch ran must not survive it valid, so chunks allocated in
    /// the meantime are discarded again under their locks.
    private func punchUnallocated(_ run: PageRun) throws(GmemError) {
        try self.punch(run)
        for chunkIndex in self.geometry.chunk(of: run.lowerBound)...self.geometry.chunk(of: run.upperBound - 1)
        where self.table.existingChunk(chunkIndex) != nil {
            try self.discardLocked(chunkIndex, self.geometry.chunkPages(chunkIndex).clamped(to: run))
        }
    }

    /// Empties the pages of `run`. Folio locks are held.
    private func clearLocked(_ run: PageRun) throws(GmemError) {
        switch self.region.backing {
        case .memfd:
            try self.punch(run)
        case .secretmem:
            // Zeroing needs the pages accessible: take references like any copy.
            try self.table.acquireLocked(run)
            let start = self.region.address(ofPage: run.lowerBound)
            start.initializeMemory(as: UInt8.self, repeating: 0, count: run.count << self.geometry.pageShift)
            self.table.releaseLocked(run)
        }
    }

    private func punch(_ run: PageRun) throws(GmemError) {
        let offset = off_t(self.geometry.offset(ofPage: run.lowerBound))
        let length = off_t(run.count << self.geometry.pageShift)
        guard cgmem_punch_hole(self.region.fileDescriptor, offset, length) == 0 else {
            throw .systemCall("fallocate(PUNCH_HOLE) of \(length) bytes", errno: errno)
        }
    }

    /// Marks every valid cache on `page` invalid and drops its reference (no
    /// zap yet: the caller zaps the run once). The folio lock is held.
    private func invalidateLocked(_ page: Int, reason: InvalidationReason, into invalidated: inout [GuestPageCache]) {
        let caches = self.table.withCaches(of: page) { list in
            defer { list.removeAll() }
            return list
        }
        guard !caches.isEmpty else { return }
        // Count this page's caches, not the whole `invalidated` list the caller accumulates.
        self.table.counters.invalidations.increment(by: UInt64(caches.count))
        for cache in caches {
            cache.state = .invalidated(reason)
            self.table.dropCacheReferenceLocked(page)
            invalidated.append(cache)
        }
    }

    /// Tells owners about invalidations, outside every lock.
    private func notify(_ caches: [GuestPageCache], reason: InvalidationReason) {
        for cache in caches { cache.onInvalidation?(cache, reason) }
    }
}
