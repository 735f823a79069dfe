import GmemCore
import GmemProtocol
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// What every connection shares: the memory, the configuration, and the
/// server-wide counters that STATS reports besides the core's.
final class ServerContext: Sendable {
    let memory: GuestMemory
    let configuration: ServerConfiguration
    let logger: Logger
    /// Runs long conversions and discards off the event loops.
    let threadPool: NIOThreadPool

    let connections = Atomic<Int>(0)
    let connectionsTotal = Atomic<UInt64>(0)
    let errors = Atomic<UInt64>(0)
    let connectionIDs = Atomic<UInt64>(0)
    /// Rings set up and not yet finished by their poller.
    let ringsActive = Atomic<Int>(0)
    /// The threads serving every connection's rings, started with the first ring.
    let ringPollers: RingPollers

    init(memory: GuestMemory, configuration: ServerConfiguration, logger: Logger, threadPool: NIOThreadPool) {
        self.memory = memory
        var configuration = configuration
        configuration.maxPayload = max(configuration.maxPayload, ServerConfiguration.minimumMaxPayload)
        self.configuration = configuration
        self.logger = logger
        self.threadPool = threadPool
        self.ringPollers = RingPollers(
            count: configuration.ringThreads,
            pollMicroseconds: configuration.ringPollMicroseconds
        )
    }

    /// HELLO's region flags for a peer.
    func regionFlags(readOnly: Bool, mayMap: Bool) -> HelloReply.RegionFlags {
        var flags: HelloReply.RegionFlags = []
        if !self.memory.configuration.directMap { flags.insert(.noDirectMap) }
        if self.memory.configuration.backing == .secretmem { flags.insert(.secretmem) }
        if readOnly { flags.insert(.readOnly) }
        if self.configuration.recovered { flags.insert(.recovered) }
        // secretmem cannot back a KVM memslot: nobody may map it (MAP_REGION answers -EOPNOTSUPP).
        if mayMap && !readOnly && self.memory.configuration.backing != .secretmem { flags.insert(.mayMap) }
        return flags
    }

    /// The STATS entries, in the order the protocol lists them.
    func statisticsEntries() -> [(name: String, value: UInt64)] {
        let core = self.memory.statistics
        return [
            ("reads", core.reads),
            ("writes", core.writes),
            ("bytes_read", core.bytesRead),
            ("bytes_written", core.bytesWritten),
            ("restores", core.restores),
            ("zaps", core.zaps),
            ("protect_calls", core.protectCalls),
            ("protect_failures", core.protectFailures),
            ("gpc_activations", core.cacheActivations),
            ("gpc_active", core.cachesActive),
            ("gpc_invalidations", core.invalidations),
            ("connections", UInt64(self.connections.load(ordering: .relaxed))),
            ("connections_total", self.connectionsTotal.load(ordering: .relaxed)),
            ("errors", self.errors.load(ordering: .relaxed)),
            ("rings_active", UInt64(self.ringsActive.load(ordering: .relaxed))),
            ("region_size", self.memory.geometry.regionSize),
        ]
    }
}
