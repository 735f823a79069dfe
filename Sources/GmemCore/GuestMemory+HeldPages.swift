/// References kept across several accesses, so that requests decoded from
/// one socket read that touch the same pages restore and zap them once
/// instead of once each.
///
/// Holding only delays the zap: the pages are accessible exactly while held,
/// as the invariant requires, and inaccessible again after
/// ``GuestMemory/release(_:)``. The owner must release before it stops
/// using the value, normally at the end of each read batch.
public struct HeldPages: ~Copyable {
    /// The runs whose references this value owns.
    var runs: [PageRun] = []
    /// Beyond this many runs, accesses take and drop their own references.
    static let maximumRuns = 32

    public init() {}

    public var isEmpty: Bool { self.runs.isEmpty }

    deinit {
        assert(self.runs.isEmpty, "HeldPages dropped without GuestMemory.release(_:): \(self.runs.count) runs leak")
    }

    @inline(__always)
    func covers(_ pages: PageRun) -> Bool {
        for run in self.runs where run.lowerBound <= pages.lowerBound && pages.upperBound <= run.upperBound {
            return true
        }
        return false
    }
}

extension GuestMemory {
    /// Like ``read(at:into:counters:)``, but keeps the pages' references in
    /// `held` instead of dropping them after the copy.
    public func read(
        at address: GuestPhysicalAddress,
        into buffer: UnsafeMutableRawBufferPointer,
        holding held: inout HeldPages,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        try self.withHeld(address, count: buffer.count, holding: &held) { guest in
            buffer.baseAddress.unsafelyUnwrapped.copyMemory(from: guest, byteCount: buffer.count)
        }
        (counters ?? self.defaultCounters).recordRead(buffer.count)
    }

    /// Like ``write(at:from:counters:)``, but keeps the pages' references in `held`.
    public func write(
        at address: GuestPhysicalAddress,
        from bytes: UnsafeRawBufferPointer,
        holding held: inout HeldPages,
        counters: AccessCounters? = nil
    ) throws(GmemError) {
        try self.withHeld(address, count: bytes.count, holding: &held) { guest in
            guest.copyMemory(from: bytes.baseAddress.unsafelyUnwrapped, byteCount: bytes.count)
        }
        (counters ?? self.defaultCounters).recordWrite(bytes.count)
    }

    /// Drops every reference in `held`; pages nobody else uses are zapped.
    public func release(_ held: inout HeldPages) {
        for run in held.runs { self.table.release(run) }
        held.runs.removeAll(keepingCapacity: true)
    }

    /// Runs `copy` with the `count` bytes at `address` accessible, keeping
    /// the reference in `held` when there is room. Empty accesses copy nothing.
    @inline(__always)
    private func withHeld(
        _ address: GuestPhysicalAddress,
        count: Int,
        holding held: inout HeldPages,
        _ copy: (UnsafeMutableRawPointer) -> Void
    ) throws(GmemError) {
        let pages = try self.geometry.pages(address: address.rawValue, count: count)
        guard !pages.isEmpty else { return }
        let keep = try self.hold(pages, in: &held)
        copy(self.region.base + Int(address.rawValue))
        if !keep { self.table.release(pages) }
    }

    /// Makes `pages` accessible for one access. Returns true when `held`
    /// owns the reference afterwards, false when the caller must release it.
    @inline(__always)
    func hold(_ pages: PageRun, in held: inout HeldPages) throws(GmemError) -> Bool {
        if held.covers(pages) { return true }
        try self.table.acquire(pages)
        guard held.runs.count < HeldPages.maximumRuns else { return false }
        held.runs.append(pages)
        return true
    }
}
