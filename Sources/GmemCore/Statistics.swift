import Synchronization

/// A consistent-enough snapshot of the core's counters.
public struct Statistics: Hashable, Sendable {
    public var reads: UInt64 = 0
    public var writes: UInt64 = 0
    public var bytesRead: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    public var restores: UInt64 = 0
    public var zaps: UInt64 = 0
    public var protectCalls: UInt64 = 0
    public var protectFailures: UInt64 = 0
    public var cacheActivations: UInt64 = 0
    public var cachesActive: UInt64 = 0
    public var invalidations: UInt64 = 0

    public init() {}
}

/// Counters of successful accesses, kept per caller.
///
/// Each connection owns one, so the hot path increments an uncontended cache
/// line instead of one shared by every thread. ``GuestMemory/statistics``
/// sums them.
public final class AccessCounters: Sendable {
    let reads = Atomic<UInt64>(0)
    let writes = Atomic<UInt64>(0)
    let bytesRead = Atomic<UInt64>(0)
    let bytesWritten = Atomic<UInt64>(0)

    public init() {}

    @inline(__always)
    func recordRead(_ bytes: Int) {
        self.reads.increment(by: 1)
        self.bytesRead.increment(by: UInt64(bytes))
    }

    @inline(__always)
    func recordWrite(_ bytes: Int) {
        self.writes.increment(by: 1)
        self.bytesWritten.increment(by: UInt64(bytes))
    }

    func add(to statistics: inout Statistics) {
        statistics.reads &+= self.reads.load(ordering: .relaxed)
        statistics.writes &+= self.writes.load(ordering: .relaxed)
        statistics.bytesRead &+= self.bytesRead.load(ordering: .relaxed)
        statistics.bytesWritten &+= self.bytesWritten.load(ordering: .relaxed)
    }
}

extension Atomic where Value == UInt64 {
    /// A relaxed increment: counters order nothing, they only count.
    @inline(__always)
    func increment(by amount: UInt64) {
        _ = self.wrappingAdd(amount, ordering: .relaxed)
    }

    @inline(__always)
    func decrement(by amount: UInt64) {
        _ = self.wrappingSubtract(amount, ordering: .relaxed)
    }
}

/// The counters the map/unmap protocol and cache lifecycle keep. Their events
/// come with a system call or a folio lock already, so a shared atomic is cheap.
final class ProtocolCounters: Sendable {
    let restores = Atomic<UInt64>(0)
    let zaps = Atomic<UInt64>(0)
    let protectCalls = Atomic<UInt64>(0)
    let protectFailures = Atomic<UInt64>(0)
    let cacheActivations = Atomic<UInt64>(0)
    let cachesActive = Atomic<UInt64>(0)
    let invalidations = Atomic<UInt64>(0)

    func add(to statistics: inout Statistics) {
        statistics.restores = self.restores.load(ordering: .relaxed)
        statistics.zaps = self.zaps.load(ordering: .relaxed)
        statistics.protectCalls = self.protectCalls.load(ordering: .relaxed)
        statistics.protectFailures = self.protectFailures.load(ordering: .relaxed)
        statistics.cacheActivations = self.cacheActivations.load(ordering: .relaxed)
        statistics.cachesActive = self.cachesActive.load(ordering: .relaxed)
        statistics.invalidations = self.invalidations.load(ordering: .relaxed)
    }
}
