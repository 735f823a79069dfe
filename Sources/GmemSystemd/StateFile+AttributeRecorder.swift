import GmemCore

#if canImport(Glibc)
import Glibc
#endif

extension StateFile: AttributeRecorder {
    public func recordConversion(
        chunk: Int,
        pages: Range<Int>,
        shared: Bool,
        _ convert: () throws(GmemError) -> Int
    ) throws(GmemError) -> Int {
        // One of a few striped locks: conversions of different chunks rarely
        // wait for each other, those of one chunk always do.
        let lock = self.stripes + (chunk % Self.stripeCount)
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        let changed = try convert()
        self.setPages(pages, shared: shared)
        return changed
    }

    /// Sets the bits of `pages` to `shared`.
    ///
    /// Each word changes with one atomic read-modify-write, so neighbouring
    /// chunks that share a word (page sizes above 32 KiB) never lose each
    /// other's bits, and a crash between two words leaves each page either
    /// converted or not: every intermediate state is a valid state file.
    public func setPages(_ pages: Range<Int>, shared: Bool) {
        let pages = pages.clamped(to: 0..<self.pageCount)
        guard !pages.isEmpty else { return }
        let firstWord = pages.lowerBound >> 6
        let lastWord = (pages.upperBound - 1) >> 6
        for word in firstWord...lastWord {
            var mask = UInt64.max
            if word == firstWord { mask &= UInt64.max << UInt64(pages.lowerBound & 63) }
            if word == lastWord {
                let tail = pages.upperBound & 63
                if tail != 0 { mask &= UInt64.max >> UInt64(64 - tail) }
            }
            // Relaxed suffices: the file is read by the next process only,
            // through the same page cache, after this one is gone.
            if shared {
                _ = self.words[word].bitwiseOr(mask.littleEndian, ordering: .relaxed)
            } else {
                _ = self.words[word].bitwiseAnd((~mask).littleEndian, ordering: .relaxed)
            }
        }
    }

    /// Whether the bitmap says `page` is shared.
    public func isShared(page: Int) -> Bool {
        guard (0..<self.pageCount).contains(page) else { return false }
        let word = UInt64(littleEndian: self.words[page >> 6].load(ordering: .relaxed))
        return word & (1 << UInt64(page & 63)) != 0
    }
}
