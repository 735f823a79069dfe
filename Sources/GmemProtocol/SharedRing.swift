//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// SharedRing: a mapped ring, seen by either side, with the ordering of PROTOCOL.md 10.5.
//
//===----------------------------------------------------------------------===//

import CGmemSys

/// A ring's memfd as mapped in this process: the header words, the queue slots and the data area.
///
/// The other process may write any byte at any instant. Reads of the shared words are single atomic loads, and
/// entries are copied out before anything looks at them (``RingSubmission/init(copying:)``); nothing here reads a
/// value twice and trusts both reads. The view does not own the mapping.
public struct SharedRing: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let layout: RingLayout

    public init(base: UnsafeMutableRawPointer, layout: RingLayout) {
        self.base = base
        self.layout = layout
    }

    /// Writes the fields the server sets once, before the client sees the memfd.
    public func initializeHeader(ringID: UInt32) {
        let l = self.layout
        self.base.initializeMemory(as: UInt8.self, repeating: 0, count: RingLayout.alignment)
        self.store(RingLayout.magic, at: RingLayout.Offset.magic)
        self.store(RingLayout.version, at: RingLayout.Offset.version)
        self.store(l.entries, at: RingLayout.Offset.entries)
        self.store(UInt32(RingLayout.submissionSize), at: RingLayout.Offset.submissionSize)
        self.store(UInt32(RingLayout.completionSize), at: RingLayout.Offset.completionSize)
        self.store(ringID, at: RingLayout.Offset.ringID)
        self.store(UInt64(l.submissionQueueOffset), at: RingLayout.Offset.submissionQueue)
        self.store(UInt64(l.completionQueueOffset), at: RingLayout.Offset.completionQueue)
        self.store(UInt64(l.dataOffset), at: RingLayout.Offset.dataArea)
        self.store(UInt64(l.dataSize), at: RingLayout.Offset.dataSize)
    }

    // MARK: The words both sides write

    /// An acquire load: what the other side wrote before its release store of this word is visible after it.
    @inlinable
    public func loadAcquire(_ offset: Int) -> UInt32 { cgmem_load_acquire_u32(self.base + offset) }

    /// A release store: everything written before it is visible to an acquire load of this word.
    @inlinable
    public func storeRelease(_ value: UInt32, at offset: Int) { cgmem_store_release_u32(self.base + offset, value) }

    /// An atomic exchange (sequentially consistent): used to clear a flag and learn whether it was set.
    @inlinable
    public func exchange(_ value: UInt32, at offset: Int) -> UInt32 { cgmem_exchange_u32(self.base + offset, value) }

    /// A full barrier between publishing an index and reading the other side's flag word (10.5).
    @inlinable
    public static func fence() { cgmem_fence() }

    // MARK: Slots and data

    /// The submission slot of a free-running index.
    @inlinable
    public func submissionSlot(_ index: UInt32) -> UnsafeMutableRawPointer {
        self.base + self.layout.submissionQueueOffset + self.layout.slot(index) * RingLayout.submissionSize
    }

    /// The completion slot of a free-running index.
    @inlinable
    public func completionSlot(_ index: UInt32) -> UnsafeMutableRawPointer {
        self.base + self.layout.completionQueueOffset + self.layout.slot(index) * RingLayout.completionSize
    }

    /// The whole data area.
    @inlinable
    public var dataArea: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: self.base + self.layout.dataOffset, count: self.layout.dataSize)
    }

    private func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        self.base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}
