/// Guest page caches: activate, access, refresh, deactivate.
extension GuestMemory {
    /// Checks a cache window as KVM does: non-empty, within one page, inside
    /// the region. Throws `.invalidArgument` for the shape before `.badAddress` for the bounds.
    public func validateCacheTarget(at address: GuestPhysicalAddress, length: Int) throws(GmemError) {
        _ = try self.cacheTarget(address, length: length)
    }

    private func cacheTarget(_ address: GuestPhysicalAddress, length: Int) throws(GmemError) -> (page: Int, offset: Int)
    {
        let offset = Int(address.rawValue & UInt64(self.geometry.pageSize - 1))
        // `length <= pageSize - offset`, not `offset + length <= pageSize`: a huge length must not overflow.
        guard length >= 1, length <= self.geometry.pageSize - offset else {
            throw GmemError(.invalidArgument, "a cache covers 1 to \(self.geometry.pageSize) bytes within one page")
        }
        let pages = try self.geometry.pages(address: address.rawValue, count: length)
        return (pages.lowerBound, offset)
    }

    /// Activates a cache on the page holding `address ..< address + length`,
    /// taking one reference on it. Any number of caches may share a page: the
    /// case the seed design refused with -EINVAL.
    ///
    /// - Parameters:
    ///   - tag: the owner's identifier, returned by ``GuestPageCache/tag``.
    ///   - onInvalidation: called outside every lock after a conversion or
    ///     discard invalidates the cache, on the thread that caused it.
    public func activateCache(
        at address: GuestPhysicalAddress,
        length: Int,
        tag: UInt64 = 0,
        onInvalidation: GuestPageCache.InvalidationHandler? = nil
    ) throws(GmemError) -> GuestPageCache {
        let (page, offset) = try self.cacheTarget(address, length: length)
        let cache = GuestPageCache(page: page, offset: offset, length: length, tag: tag, onInvalidation: onInvalidation)
        try self.table.withFolios(of: page..<(page + 1)) { () throws(GmemError) in
            try self.table.acquireLocked(page..<(page + 1))
            self.attach(cache, to: page)
            cache.state = .valid
        }
        self.table.counters.cacheActivations.increment(by: 1)
        self.table.counters.cachesActive.increment(by: 1)
        return cache
    }

    /// Revalidates or re-targets `cache`. The new page is acquired before the
    /// old one is released, so refreshing onto the same page never zaps it. On
    /// error the cache is left exactly as it was.
    public func refresh(_ cache: GuestPageCache, to address: GuestPhysicalAddress, length: Int) throws(GmemError) {
        let (newPage, offset) = try self.cacheTarget(address, length: length)
        let oldPage = cache.page
        try self.table.withFolios(of: oldPage, newPage) { () throws(GmemError) in
            guard cache.state != .inactive else { throw GmemError(.noSuchEntry, "the cache was deactivated") }
            try self.table.acquireLocked(newPage..<(newPage + 1))
            if cache.state == .valid {
                self.detach(cache)
                self.table.releaseLocked(oldPage..<(oldPage + 1))
            }
            cache.page = newPage
            cache.offset = offset
            cache.length = length
            self.attach(cache, to: newPage)
            cache.state = .valid
        }
        if self.table.zapBacklogPending.load(ordering: .relaxed) { self.table.retryBacklog() }
    }

    /// Deactivates `cache`, dropping its reference if it still holds one.
    /// Deactivating an invalidated cache succeeds; a second deactivation does nothing.
    public func deactivate(_ cache: GuestPageCache) {
        let page = cache.page
        let wasActive = self.table.withFolios(of: page..<(page + 1)) { () -> Bool in
            let previous = cache.state
            if previous == .valid {
                self.detach(cache)
                self.table.releaseLocked(page..<(page + 1))
            }
            cache.state = .inactive
            return previous != .inactive
        }
        if wasActive { self.table.counters.cachesActive.decrement(by: 1) }
        if self.table.zapBacklogPending.load(ordering: .relaxed) { self.table.retryBacklog() }
    }

    /// Copies from the cache's window. No restore or zap: the cache's reference
    /// keeps the page accessible, and the folio lock orders this copy against
    /// an invalidation that would drop that reference.
    public func read(
        cache: GuestPageCache,
        offset: Int,
        into buffer: UnsafeMutableRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        try self.access(cache, offset: offset, count: buffer.count) { address in
            buffer.baseAddress?.copyMemory(from: address, byteCount: buffer.count)
        }
        (counters ?? self.defaultCounters).recordRead(buffer.count)
    }

    /// Copies into the cache's window. Same rules as ``read(cache:offset:into:counters:)``.
    public func write(
        cache: GuestPageCache,
        offset: Int,
        from bytes: UnsafeRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        try self.access(cache, offset: offset, count: bytes.count) { address in
            if let source = bytes.baseAddress { address.copyMemory(from: source, byteCount: bytes.count) }
        }
        (counters ?? self.defaultCounters).recordWrite(bytes.count)
    }

    /// Checks the window (and, for atomics, that the guest address is a
    /// multiple of `alignment`) and the cache's state, then runs `body` on the
    /// bytes at `offset`, all under the folio lock of the cache's page.
    @inline(__always)
    func access(
        _ cache: GuestPageCache,
        offset: Int,
        count: Int,
        alignment: Int = 1,
        _ body: (UnsafeMutableRawPointer) -> Void
    ) throws(GmemError) {
        try self.withCachePageLocked(cache) { page throws(GmemError) in
            // Subtract, never add: `offset + count` traps for a huge offset.
            guard offset >= 0, count >= 0, offset <= cache.length, count <= cache.length - offset else {
                throw GmemError(
                    .invalidArgument,
                    "offset \(offset) + \(count) exceeds the cache's \(cache.length) bytes"
                )
            }
            guard (cache.offset + offset) % alignment == 0 else {
                throw GmemError(
                    .invalidArgument,
                    "a \(alignment)-byte atomic operand must be \(alignment)-byte aligned"
                )
            }
            switch cache.state {
            case .valid:
                body(self.region.address(ofPage: page) + cache.offset + offset)
            case .invalidated:
                throw GmemError(.stale, "the cache was invalidated; refresh it")
            case .inactive:
                throw GmemError(.noSuchEntry, "the cache was deactivated")
            }
        }
    }

    /// Runs `body` with the folio lock of the cache's page held, passing that
    /// page. A refresh on the owner's thread may move the cache between the
    /// unlocked read of its page and the lock (a ring's poller uses caches
    /// from another thread): then the lock is the wrong one, so retry.
    func withCachePageLocked<R>(
        _ cache: GuestPageCache,
        _ body: (Int) throws(GmemError) -> R
    ) throws(GmemError) -> R {
        while true {
            let page = cache.page
            let result: R? = try self.table.withFolios(of: page..<(page + 1)) { () throws(GmemError) -> R? in
                guard cache.page == page else { return nil }
                return try body(page)
            }
            if let result { return result }
        }
    }

    /// Where the cache points and whether it is usable.
    public func describe(_ cache: GuestPageCache) -> (address: GuestPhysicalAddress, length: Int, isValid: Bool) {
        // The body never throws.
        let described = try? self.withCachePageLocked(cache) { page in
            (
                GuestPhysicalAddress(UInt64(self.geometry.offset(ofPage: page) + cache.offset)), cache.length,
                cache.state == .valid
            )
        }
        return described.unsafelyUnwrapped
    }

    /// Adds `cache` to the list of `page`. The folio lock is held.
    private func attach(_ cache: GuestPageCache, to page: Int) {
        self.table.withCaches(of: page) { list in
            cache.listIndex = list.count
            list.append(cache)
        }
    }

    /// Removes `cache` from its page's list in O(1): the last entry takes its
    /// slot, so releasing thousands of caches on one page (per-vCPU
    /// kvm-clocks, a dying connection) stays linear. The folio lock is held.
    func detach(_ cache: GuestPageCache) {
        let index = cache.listIndex
        self.table.withCaches(of: cache.page) { list in
            guard index < list.count, list[index] === cache else {
                assertionFailure("cache not in its page's list")
                return
            }
            let last = list.removeLast()
            if last !== cache {
                list[index] = last
                last.listIndex = index
            }
        }
    }
}
