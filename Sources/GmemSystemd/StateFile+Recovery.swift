import CGmemSys
import GmemCore

#if canImport(Glibc)
import Glibc
#endif

extension StateFile {
    // lseek(2) whences that glibc only names under _GNU_SOURCE.
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    /// Calls `body` with every maximal run of shared pages, in ascending order.
    ///
    /// Only the bitmap's data extents are read (SEEK_DATA/SEEK_HOLE): the holes
    /// of a sparse 32 MiB bitmap are skipped without touching, and therefore
    /// without allocating, them. Inside an extent, zero words are skipped and
    /// all-ones words extend a run 64 pages at a time.
    public func forEachSharedRun(_ body: (Range<Int>) throws(GmemError) -> Void) throws(GmemError) {
        let start = off_t(StateFileHeader.bitmapOffset)
        let end = start + off_t(self.header.bitmapLength)
        var position = start
        var run: Range<Int>? = nil
        // Adjacent pieces merge; a gap hands the finished run to `body`.
        func add(_ next: Range<Int>) throws(GmemError) {
            if let current = run, current.upperBound == next.lowerBound {
                run = current.lowerBound..<next.upperBound
                return
            }
            if let current = run { try body(current.clamped(to: 0..<self.pageCount)) }
            run = next
        }
        while position < end {
            // The next allocated stretch of the bitmap; ENXIO means none is left.
            let data = lseek(self.fileDescriptor, position, Self.seekData)
            if data < 0 {
                guard errno == ENXIO else { throw .systemCall("lseek(SEEK_DATA) in the state file", errno: errno) }
                break
            }
            guard data < end else { break }
            // Where that stretch ends: the next hole, or the end of the file.
            let hole = lseek(self.fileDescriptor, data, Self.seekHole)
            guard hole >= 0 else { throw .systemCall("lseek(SEEK_HOLE) in the state file", errno: errno) }
            let firstWord = Int(data - start) / 8
            let lastWord = Int(min(hole, end) - start) / 8
            for word in firstWord..<lastWord {
                let bits = UInt64(littleEndian: self.words[word].load(ordering: .relaxed))
                if bits == 0 { continue }
                let base = word << 6
                if bits == .max {
                    try add(base..<(base + 64))
                    continue
                }
                var remaining = bits
                while remaining != 0 {
                    let low = remaining.trailingZeroBitCount
                    let ones = (~(remaining >> UInt64(low))).trailingZeroBitCount
                    try add((base + low)..<(base + low + ones))
                    remaining = low + ones >= 64 ? 0 : remaining & (UInt64.max << UInt64(low + ones))
                }
            }
            position = hole
        }
        if let run { try body(run.clamped(to: 0..<self.pageCount)) }
    }
}
