/// One piece of a scatter-gather access: `length` bytes at `address`.
public struct GuestSegment: Hashable, Sendable {
    public var address: GuestPhysicalAddress
    public var length: Int

    public init(address: GuestPhysicalAddress, length: Int) {
        self.address = address
        self.length = length
    }
}

/// A scatter-gather access that failed, and how far it got: segments before
/// ``segment`` were transferred whole, and ``segmentBytes`` bytes of
/// ``segment`` (the wire's partial-progress rule for READV and WRITEV).
public struct VectorAccessError: Error, Sendable {
    public var error: GmemError
    /// The first segment not transferred whole.
    public var segment: Int
    /// Bytes of ``segment`` transferred before the failure.
    public var segmentBytes: Int
    /// Bytes transferred in all, in segment order.
    public var bytesCompleted: Int

    public init(error: GmemError, segment: Int, segmentBytes: Int, bytesCompleted: Int) {
        self.error = error
        self.segment = segment
        self.segmentBytes = segmentBytes
        self.bytesCompleted = bytesCompleted
    }

    /// A failure before anything was transferred.
    public init(noProgress error: GmemError) {
        self.init(error: error, segment: 0, segmentBytes: 0, bytesCompleted: 0)
    }

    /// Whether anything was transferred: only then does the reply carry progress.
    public var madeProgress: Bool { self.bytesCompleted > 0 }
}

/// READV and WRITEV: several segments, one restore and one zap per
/// contiguous run of their pages, however many segments share it.
///
/// All calls are synchronous and need no event loop, so a ring poller thread
/// can make them as a connection's event loop does.
extension GuestMemory {
    /// Copies every segment, in order, into `buffer`, which holds exactly the
    /// sum of their lengths. References are kept in `held` when it has room.
    public func readv(
        _ segments: [GuestSegment],
        into buffer: UnsafeMutableRawBufferPointer,
        holding held: inout HeldPages,
        counters: AccessCounters? = nil
    ) throws(VectorAccessError) {
        let total = try self.withSegments(segments, bufferCount: buffer.count, holding: &held) {
            segment,
            guest,
            offset in
            (buffer.baseAddress.unsafelyUnwrapped + offset).copyMemory(from: guest, byteCount: segment.length)
        }
        (counters ?? self.defaultCounters).recordRead(total)
    }

    /// Copies consecutive bytes of `bytes` into every segment, in order.
    public func writev(
        _ segments: [GuestSegment],
        from bytes: UnsafeRawBufferPointer,
        holding held: inout HeldPages,
        counters: AccessCounters? = nil
    ) throws(VectorAccessError) {
        let total = try self.withSegments(segments, bufferCount: bytes.count, holding: &held) {
            segment,
            guest,
            offset in
            guest.copyMemory(from: bytes.baseAddress.unsafelyUnwrapped + offset, byteCount: segment.length)
        }
        (counters ?? self.defaultCounters).recordWrite(total)
    }

    /// ``readv(_:into:holding:counters:)`` that drops its references at once.
    public func readv(
        _ segments: [GuestSegment],
        into buffer: UnsafeMutableRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(VectorAccessError) {
        var held = HeldPages()
        defer { self.release(&held) }
        try self.readv(segments, into: buffer, holding: &held, counters: counters)
    }

    /// ``writev(_:from:holding:counters:)`` that drops its references at once.
    public func writev(
        _ segments: [GuestSegment],
        from bytes: UnsafeRawBufferPointer,
        counters: AccessCounters? = nil
    ) throws(VectorAccessError) {
        var held = HeldPages()
        defer { self.release(&held) }
        try self.writev(segments, from: bytes, holding: &held, counters: counters)
    }

    /// Checks every segment's bounds, makes the union of their pages
    /// accessible, calls `copy` per segment with its guest address and its
    /// offset in the caller's buffer, and returns the bytes copied.
    ///
    /// Bounds fail before any page is touched (`-EFAULT`, no progress). If
    /// making a run accessible fails, the segments whose pages were already
    /// made accessible are still copied, in order, up to the first that was
    /// not, and the error says how far it got.
    private func withSegments(
        _ segments: [GuestSegment],
        bufferCount: Int,
        holding held: inout HeldPages,
        _ copy: (GuestSegment, UnsafeMutableRawPointer, Int) -> Void
    ) throws(VectorAccessError) -> Int {
        var pages: [PageRun] = []
        pages.reserveCapacity(segments.count)
        var length = 0
        for segment in segments {
            // Subtract, never add: a hostile length must not overflow the sum.
            guard segment.length >= 0, segment.length <= bufferCount - length else {
                throw VectorAccessError(noProgress: Self.mismatch(bufferCount))
            }
            length += segment.length
            do {
                pages.append(try self.geometry.pages(address: segment.address.rawValue, count: segment.length))
            } catch {
                throw VectorAccessError(noProgress: error)
            }
        }
        guard length == bufferCount else { throw VectorAccessError(noProgress: Self.mismatch(bufferCount)) }
        let runs = Self.union(pages)
        // Runs `held` cannot keep are released once every segment is copied.
        var transient: [PageRun] = []
        defer { for run in transient { self.table.release(run) } }
        var failure: GmemError? = nil
        var accessibleUpTo = runs.endIndex
        for (index, run) in runs.enumerated() {
            do {
                if !(try self.hold(run, in: &held)) { transient.append(run) }
            } catch {
                failure = error
                accessibleUpTo = index
                break
            }
        }
        var offset = 0
        for (index, segment) in segments.enumerated() {
            // Each non-empty segment lies inside one run of the union, so it is accessible whole or not at all.
            if let error = failure, !pages[index].isEmpty,
                Self.runIndex(of: pages[index], in: runs) >= accessibleUpTo
            {
                throw VectorAccessError(error: error, segment: index, segmentBytes: 0, bytesCompleted: offset)
            }
            if segment.length > 0 { copy(segment, self.region.base + Int(segment.address.rawValue), offset) }
            offset += segment.length
        }
        return offset
    }

    private static func mismatch(_ bufferCount: Int) -> GmemError {
        GmemError(.invalidArgument, "the segments do not add up to the \(bufferCount)-byte buffer")
    }

    /// The union of `pages` as sorted, disjoint runs; runs that touch are
    /// merged, so each contiguous stretch costs one protection call each way.
    static func union(_ pages: [PageRun]) -> [PageRun] {
        var merged: [PageRun] = []
        for run in pages.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, run.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, run.upperBound)
            } else {
                merged.append(run)
            }
        }
        return merged
    }

    /// The index of the run of the union (sorted, disjoint) that contains `pages`.
    private static func runIndex(of pages: PageRun, in runs: [PageRun]) -> Int {
        var low = 0
        var high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].upperBound <= pages.lowerBound { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
