/// The reference-counted map/unmap protocol.
///
/// The first user of a private page *restores* it (makes it accessible) and the
/// last one *zaps* it (makes it inaccessible again). The count replaces the
/// seed design's single "removed" bit, under which a second user's zap pulled
/// the page out from under the first (map(A) map(B) read(A) unmap(A) read(B)).
///
/// Invariant, at every moment a page's folio lock is free:
/// private ⇒ (accessible ⇔ count > 0), and shared ⇒ accessible.
///
/// This file is the only one that changes a page's record (its count, its
/// attribute, its protection state): ``withRecord(_:_:)`` is private to it,
/// and the rest of the core calls the named operations below.
extension PageTable {
    /// Runs `body` on the record of `page`, in place. The caller holds the
    /// page's folio lock (the record's guard) and its chunk exists.
    @inline(__always)
    fileprivate func withRecord<R>(_ page: Int, _ body: (inout PageRecord) -> R) -> R {
        let chunk = self.existingChunk(self.geometry.chunk(of: page)).unsafelyUnwrapped
        return body(&chunk.pages[page % self.geometry.pagesPerChunk])
    }

    /// One protection call over a run of pages, counted.
    func protect(_ run: PageRun, accessible: Bool) throws(GmemError) {
        self.counters.protectCalls.increment(by: 1)
        do {
            try self.protection.setAccessible(
                accessible,
                address: self.region.address(ofPage: run.lowerBound),
                length: run.count << self.geometry.pageShift
            )
        } catch {
            self.counters.protectFailures.increment(by: 1)
            throw error
        }
    }

    /// Takes one reference on every page of `run`. The folio locks of `run` are held.
    ///
    /// Pages that need restoring (private, count 0) are restored with a single
    /// protection call spanning the first to the last of them: the pages in
    /// between are already accessible, and making them read-write again is a
    /// no-op. On failure no count changes and every page keeps its protection.
    func acquireLocked(_ run: PageRun) throws(GmemError) {
        var firstNeeding = Int.max
        var lastNeeding = Int.min
        for page in run {
            guard self.recordSnapshot(page).count < UInt32.max else {
                throw GmemError(.noSpace, "page \(page) has the maximum number of users")
            }
            if self.needsRestore(page) {
                firstNeeding = min(firstNeeding, page)
                lastNeeding = page
            }
        }
        if firstNeeding <= lastNeeding {
            try self.restoreLocked(firstNeeding..<(lastNeeding + 1))
        }
        for page in run {
            self.withRecord(page) { $0.count += 1 }
        }
    }

    /// Whether `page` must be restored before anyone copies through it.
    @inline(__always)
    func needsRestore(_ page: Int) -> Bool {
        let record = self.recordSnapshot(page)
        return !record.isAccessible || record.needsRestore
    }

    /// Makes every page of `span` accessible with one protection call. The
    /// folio locks of `span` are held. On failure the pages that were
    /// inaccessible are put back, so no state changes.
    func restoreLocked(_ span: PageRun) throws(GmemError) {
        do {
            try self.protect(span, accessible: true)
        } catch {
            self.undoPartialRestore(span)
            throw error
        }
        var restored: UInt64 = 0
        for page in span {
            self.withRecord(page) { record in
                if !record.isAccessible { restored += 1 }
                record.isAccessible = true
                record.needsRestore = false
            }
        }
        self.counters.restores.increment(by: restored)
    }

    /// A failed mprotect may have changed part of its range before failing.
    /// Put the pages that were inaccessible back to no access; a page whose
    /// zap fails too is in an unknown state: it is parked in the backlog as
    /// accessible (so the invariant holds and the zap is retried) and marked
    /// `needsRestore`, so no access relies on the guess. Folio locks are held.
    func undoPartialRestore(_ span: PageRun) {
        var parked: [Int] = []
        self.forEachRun(
            in: span,
            where: { !self.recordSnapshot($0).isAccessible },
            do: { run in
                do throws(GmemError) {
                    try self.protect(run, accessible: false)
                } catch {
                    for page in run {
                        self.withRecord(page) { record in
                            record.isAccessible = true
                            record.needsRestore = true
                            record.count = 1
                        }
                        parked.append(page)
                    }
                    // The record went from inaccessible to accessible; the retried zap will count the way back.
                    self.counters.restores.increment(by: UInt64(run.count))
                }
            }
        )
        self.park(parked)
    }

    /// Drops one reference on every page of `run`, zapping each private page
    /// whose count reaches zero, one protection call per contiguous run of
    /// them. The folio locks of `run` are held. Never fails: a page whose zap
    /// fails keeps one reference, owned by the zap backlog, and stays
    /// accessible until a later retry succeeds.
    func releaseLocked(_ run: PageRun) {
        for page in run { self.dropReferenceLocked(page) }
        guard self.protectsPages else { return }
        self.zapUnused(in: run)
    }

    /// Drops the reference a cache held on `page`, without zapping it: the
    /// caller (an invalidation) zaps the whole run once afterwards with
    /// ``zapUnused(in:)``. The folio lock is held.
    func dropCacheReferenceLocked(_ page: Int) {
        self.dropReferenceLocked(page)
    }

    /// One reference fewer on `page`; there must be one. The folio lock is held.
    @inline(__always)
    private func dropReferenceLocked(_ page: Int) {
        self.withRecord(page) { record in
            assert(record.count > 0, "release of page \(page) without a reference")
            record.count -= 1
        }
    }

    /// Sets the attribute of `page` to shared or private, changing nothing
    /// else; returns whether it changed. The caller has restored the page if
    /// it becomes shared, and zaps it with ``zapUnused(in:)`` if it becomes
    /// private. The folio lock is held.
    func setSharedLocked(_ page: Int, _ shared: Bool) -> Bool {
        self.withRecord(page) { record in
            guard record.isShared != shared else { return false }
            record.isShared = shared
            return true
        }
    }

    /// Zaps every private page in `run` whose count is zero and that is still
    /// accessible. The folio locks of `run` are held.
    func zapUnused(in run: PageRun) {
        var parked: [Int] = []
        self.forEachRun(
            in: run,
            where: { self.needsZap($0) },
            do: { zapRun in
                do throws(GmemError) {
                    try self.protect(zapRun, accessible: false)
                    for page in zapRun {
                        self.withRecord(page) { record in
                            record.isAccessible = false
                            record.needsRestore = false
                        }
                    }
                    self.counters.zaps.increment(by: UInt64(zapRun.count))
                } catch {
                    // The zap may have taken effect on part of the run: restore before the next access.
                    for page in zapRun {
                        self.withRecord(page) { record in
                            record.count = 1
                            record.needsRestore = true
                        }
                        parked.append(page)
                    }
                }
            }
        )
        self.park(parked)
    }

    @inline(__always)
    func needsZap(_ page: Int) -> Bool {
        let record = self.recordSnapshot(page)
        return record.count == 0 && !record.isShared && record.isAccessible
    }

    /// Calls `body` once per maximal contiguous run of pages satisfying `predicate`.
    @inline(__always)
    func forEachRun(in run: PageRun, where predicate: (Int) -> Bool, do body: (PageRun) -> Void) {
        var start: Int? = nil
        for page in run {
            if predicate(page) {
                if start == nil { start = page }
            } else if let first = start {
                body(first..<page)
                start = nil
            }
        }
        if let first = start { body(first..<run.upperBound) }
    }

    // MARK: Unlocked entry points

    /// Takes a reference on every page of `run`, locking their folios.
    func acquire(_ run: PageRun) throws(GmemError) {
        try self.withFolios(of: run) { () throws(GmemError) in try self.acquireLocked(run) }
    }

    /// Drops a reference on every page of `run`, locking their folios.
    func release(_ run: PageRun) {
        self.withFolios(of: run) { self.releaseLocked(run) }
        if self.zapBacklogPending.load(ordering: .relaxed) { self.retryBacklog() }
    }

    // MARK: The zap backlog

    func park(_ pages: [Int]) {
        guard !pages.isEmpty else { return }
        self.zapBacklog.withLock {
            $0.append(contentsOf: pages)
            self.zapBacklogPending.store(true, ordering: .relaxed)
        }
    }

    /// Drops the backlog's references, retrying each failed zap once.
    func retryBacklog() {
        let pages = self.zapBacklog.withLock { backlog -> [Int] in
            defer { backlog.removeAll() }
            self.zapBacklogPending.store(false, ordering: .relaxed)
            return backlog
        }
        for page in pages {
            self.withFolios(of: page..<(page + 1)) { self.releaseLocked(page..<(page + 1)) }
        }
    }
}
