import GmemCommandLine
import GmemCore
import GmemProtocol
import GmemServer
import GmemSystemd
import Logging
import NIOPosix
import ServiceLifecycle

/// gmemd's start and stop on swift-service-lifecycle, and its side of the
/// service manager protocol (sd_notify(3)).
///
/// One `ServiceGroup` runs the server, the watchdog (WATCHDOG=1 only while
/// every event loop answers) and the status reporter (a one-line STATUS=
/// every two seconds). The server sends READY=1 once its socket serves.
/// SIGTERM and SIGINT shut the group down gracefully, in reverse order: the
/// status reporter and the watchdog stop first, then the server sends
/// STOPPING=1 and drains. Without a service manager every notification is a
/// no-op.
extension Gmemd {
    /// How long the drain may take before the group cancels it: the 5 s
    /// promise less a second for closing what is left and stopping the threads.
    static let maximumGracefulShutdownDuration: Duration = .seconds(4)

    static func serviceGroup(
        server: GmemServer,
        region: PersistentRegion,
        group: MultiThreadedEventLoopGroup,
        notifier: any ServiceNotifier,
        logger: Logger
    ) -> ServiceGroup {
        // The server first: the group stops services last to first, so the server drains last.
        var services: [any Service] = [server]
        if let interval = Watchdog.configuredInterval() {
            let probe = EventLoopProbe(group: group)
            services.append(Watchdog(interval: interval, probe: probe, notifier: notifier, logger: logger))
        }
        services.append(StatusReporter(notifier: notifier) { Self.summary(server: server, region: region) })
        var configuration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = Self.maximumGracefulShutdownDuration
        return ServiceGroup(configuration: configuration)
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
