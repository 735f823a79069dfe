import GmemProtocol

/// Counters of a STATS reply the harness reads before and after a measurement.
struct DaemonCounters: Sendable {
    var values: [String: UInt64] = [:]

    init(_ reply: StatsReply) {
        for pair in reply.pairs { self.values[pair.name] = pair.value }
    }

    init() {}

    subscript(_ name: String) -> UInt64 { self.values[name] ?? 0 }

    /// `after - before` for every counter (wrapping).
    static func - (after: DaemonCounters, before: DaemonCounters) -> DaemonCounters {
        var delta = DaemonCounters()
        for (name, value) in after.values { delta.values[name] = value &- before[name] }
        return delta
    }
}
