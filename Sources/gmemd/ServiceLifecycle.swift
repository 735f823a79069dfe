import GmemCore
import GmemProtocol
import GmemServer
import GmemSystemd
import Logging
import NIOPosix
import Synchronization

/// gmemd's side of the service manager protocol (sd_notify(3)):
/// READY=1 once the region is mapped and the socket serves, a one-line
/// STATUS= every two seconds, WATCHDOG=1 only while every event loop
/// answers, and STOPPING=1 on shutdown. Without a service manager every
/// notification is a no-op.
final class ServiceLifecycle: Sendable {
    private let notifier: any ServiceNotifier
    private let reporter: StatusReporter
    private let watchdog: Watchdog?
    private let logger: Logger
    /// Set by the first of serving/stopping to stop, so a signal that beats
    /// READY=1 is never followed by READY=1 and timers.
    private let stopped = Atomic<Bool>(false)

    init(
        server: GmemServer,
        region: PersistentRegion,
        group: MultiThreadedEventLoopGroup,
        notifier: any ServiceNotifier,
        logger: Logger
    ) {
        self.notifier = notifier
        self.logger = logger
        self.reporter = StatusReporter(notifier: notifier) { Self.summary(server: server, region: region) }
        self.watchdog = Watchdog.configuredInterval().map { interval in
            Watchdog(interval: interval, probe: EventLoopProbe(group: group), notifier: notifier, logger: logger)
        }
    }

    /// The region is mapped and the socket accepts: tell the manager, then keep it informed.
    func serving(summary: String) {
        guard !self.stopped.load(ordering: .acquiring) else { return }
        if self.notifier.ready(status: summary) {
            self.logger.debug("sent READY=1")
        }
        self.reporter.start()
        self.watchdog?.start()
    }

    /// Shutdown has begun: no more pings (the manager now runs its stop timeout).
    func stopping(reason: String) {
        self.stopped.store(true, ordering: .releasing)
        self.watchdog?.stop()
        self.reporter.stop()
        self.notifier.stopping(status: "stopping: \(reason)")
    }

    /// `64 MiB memfd region 0x0000000000001234, recovered; 2 connections; 3 GPCs active`.
    static func summary(server: GmemServer, region: PersistentRegion) -> String {
        let memory = server.memory
        let configuration = memory.configuration
        var text = "\(ByteCount(memory.geometry.regionSize)) \(configuration.backing.rawValue)"
        if configuration.directMap { text += " direct-map" }
        text += " region \(HelloReply.formatted(regionID: region.regionID))"
        if region.recovered { text += ", recovered" }
        let connections = server.connectionCount
        let caches = memory.statistics.cachesActive
        text +=
            "; \(connections) connection\(connections == 1 ? "" : "s"); \(caches) GPC\(caches == 1 ? "" : "s") active"
        return text
    }
}
