import ArgumentParser
import GmemCommandLine
import GmemCore
import GmemProtocol
import GmemServer
import GmemSystemd
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
struct Gmemd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmemd",
        abstract: "Own a VM's guest memory and serve it to other processes over a Unix socket.",
        discussion: """
            Private pages stay inaccessible in gmemd's own mapping except while a client \
            reads, writes or caches them (reference-counted restore and zap). SIGTERM or \
            SIGINT stops gmemd gracefully. Sizes take K, M, G and T (binary) suffixes and \
            0x hex.
            """
    )

    @Option(
        help:
            "The Unix socket to listen on. Default: $GMEMD_SOCKET, $XDG_RUNTIME_DIR/gmemd.sock, /run/gmemd/gmemd.sock for root, else ./gmemd.sock."
    )
    var socket: String?

    @Option(help: "Guest memory size, a multiple of the folio size.")
    var size: ByteCountArgument = ByteCountArgument(64 << 20)

    @Option(help: "Pages per lock: a power of two from the page size up to 2M. Default: the page size.")
    var folioSize: ByteCountArgument?

    @Option(help: "memfd, or secretmem (memfd_secret: the pages also leave the kernel's direct map).")
    var backing: Backing = .memfd

    @Flag(help: "Keep every page accessible (no restore/zap protection calls); references are still counted.")
    var directMap = false

    @Option(help: "The largest frame payload clients may send or receive.")
    var maxPayload: ByteCountArgument = ByteCountArgument(UInt64(WireProtocol.defaultMaxPayload))

    @Option(name: .customLong("max-gpcs"), help: "Active guest page caches per connection.")
    var maxGPCs: Int = 4096

    @Option(help: "Open connections; more are refused with EBUSY.")
    var maxConnections: Int = 1024

    @Option(help: "Shared-memory rings one connection may open; more are refused with ENOSPC (0: no rings).")
    var maxRings: Int = 8

    @Option(
        name: .customLong("ring-poll-us"),
        help: "Microseconds a ring poller keeps polling after its last entry before it sleeps (0: doorbell only)."
    )
    var ringPollMicroseconds: Int = 50

    @Option(help: "Poller threads serving every connection's rings.")
    var ringThreads: Int = 1

    @Option(
        name: .customLong("allow-uid"),
        help: "Also allow this uid (repeatable). Root and gmemd's own uid are always allowed."
    )
    var allowUIDs: [UInt32] = []

    @Option(
        name: .customLong("allow-gid"),
        help: "Also allow peers in this group, as primary or supplementary gid (repeatable)."
    )
    var allowGIDs: [UInt32] = []

    @Option(
        name: .customLong("read-only-gid"),
        help: "Peers in this group (primary or supplementary gid) may only read, root included."
    )
    var readOnlyGID: UInt32?

    @Option(help: "Seconds a frame may stay half-sent before its connection is closed.")
    var frameTimeout: Double = 30

    @Option(help: "The socket file's mode, in octal.")
    var socketMode: String = "0600"

    @Option(help: "Event loop threads serving connections.")
    var threads: Int = System.coreCount

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(
        name: .customLong("allow-group"),
        help: "Also allow members of this group, by name, primary or supplementary (repeatable)."
    )
    var allowGroups: [String] = []

    @Option(
        name: .customLong("allow-map-uid"),
        help: """
            Let peers with this uid receive the guest memfd with MAP_REGION (repeatable; none by default, \
            root included). Such a peer sees all guest memory: name only the vCPU process's uid.
            """
    )
    var allowMapUIDs: [UInt32] = []

    @Option(
        name: .customLong("allow-map-group"),
        help: "Let members of this group (a name or a gid; primary or supplementary) MAP_REGION (repeatable)."
    )
    var allowMapGroups: [String] = []

    @Flag(help: "Discard guest memory handed back by systemd's fd store and start a new region (new region_id).")
    var resetRegion = false

    func validate() throws {
        guard UInt32(self.socketMode, radix: 8) != nil else {
            throw ValidationError("--socket-mode must be octal, such as 0600 or 0660")
        }
        guard self.maxGPCs > 0, self.maxConnections > 0, self.threads > 0 else {
            throw ValidationError("--max-gpcs, --max-connections and --threads must be positive")
        }
        guard self.frameTimeout > 0 else { throw ValidationError("--frame-timeout must be positive") }
        guard self.maxRings >= 0, self.maxRings <= 1024 else {
            throw ValidationError("--max-rings must lie between 0 and 1024")
        }
        guard self.ringPollMicroseconds >= 0, self.ringPollMicroseconds <= 1_000_000 else {
            throw ValidationError("--ring-poll-us must lie between 0 and 1000000 (one second)")
        }
        guard self.ringThreads >= 1, self.ringThreads <= 64 else {
            throw ValidationError("--ring-threads must lie between 1 and 64")
        }
        // The floor keeps every fixed-size reply (HELLO, STATS) within one payload.
        guard self.maxPayload.value >= 4096, self.maxPayload.value <= 64 << 20 else {
            throw ValidationError("--max-payload must lie between 4K and 64M")
        }
    }

    func run() async throws {
        // First: a watchdog abort must end gmemd even while it is starting.
        AbortSignal.terminateOnAbort()
        // Then: a SIGTERM before the service group traps it still ends in an orderly exit.
        StartupSignal.trap()
        let environment = Environment.current
        // Structured entries when stderr is the journal, readable lines elsewhere.
        LogDestination.detect(journalStream: environment["JOURNAL_STREAM"]).bootstrap(level: self.logLevel)
        let logger = Logger(label: "gmemd")
        let notifier = SystemdNotifier()

        // Socket activation and the fd store: what the service manager handed over.
        let inherited = InheritedDescriptors.take()
        for extra in inherited.unrecognized {
            logger.warning(
                "closing an inherited fd: \(extra.reason)",
                metadata: ["fd": "\(extra.descriptor)", "fd_name": "\(extra.name)"]
            )
            close(extra.descriptor)
        }
        let allowedGroupIDs: [UInt32]
        let mapGroupIDs: [UInt32]
        do {
            allowedGroupIDs = try self.allowGroups.map { name throws(GmemError) in
                try GroupLookup.id(named: name, option: "--allow-group")
            }
            mapGroupIDs = try self.allowMapGroups.map { name throws(GmemError) in
                if let gid = UInt32(name) { return gid }
                return try GroupLookup.id(named: name, option: "--allow-map-group")
            }
        } catch {
            Self.exit(withMessage: error.reason)
        }

        let region: PersistentRegion
        do {
            region = try PersistentRegion.open(
                configuration: GuestMemory.Configuration(
                    size: self.size.value,
                    folioSize: self.folioSize.map { Int($0.value) },
                    backing: self.backing,
                    directMap: self.directMap
                ),
                inherited: inherited,
                resetRegion: self.resetRegion,
                notifier: notifier,
                logger: logger
            )
        } catch {
            Self.exit(
                withMessage: inherited.hasStoredRegion ? error.reason : "cannot create guest memory: \(error.reason)"
            )
        }
        let memory = region.memory

        var configuration = ServerConfiguration(
            socketPath: self.socket ?? SocketPath.resolveDefault(environment: environment, uid: UInt32(getuid()))
        )
        configuration.socketMode = UInt32(self.socketMode, radix: 8) ?? 0o600
        configuration.maxPayload = Int(self.maxPayload.value)
        configuration.maxCachesPerConnection = self.maxGPCs
        configuration.maxConnections = self.maxConnections
        configuration.maxRingsPerConnection = self.maxRings
        configuration.ringPollMicroseconds = self.ringPollMicroseconds
        configuration.ringThreads = self.ringThreads
        configuration.frameTimeout = .nanoseconds(Int64(self.frameTimeout * 1e9))
        configuration.access.allowedUIDs = Set(self.allowUIDs)
        configuration.access.allowedGIDs = Set(self.allowGIDs + allowedGroupIDs)
        configuration.access.readOnlyGID = self.readOnlyGID
        configuration.access.mapUIDs = Set(self.allowMapUIDs)
        configuration.access.mapGIDs = Set(mapGroupIDs)
        configuration.recovered = region.recovered
        configuration.regionID = region.regionID

        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.threads)
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        // An inherited listening socket is served as is; only without one is a socket file created.
        let listener: GmemServer.Listener = inherited.listener.map { .inherited(descriptor: $0) } ?? .path
        let socketDescription = inherited.listener.map { "inherited fd \($0)" } ?? configuration.socketPath
        let servingMetadata: Logger.Metadata = [
            "socket": "\(socketDescription)",
            "size": "\(ByteCount(memory.geometry.regionSize))",
            "folio": "\(ByteCount(UInt64(memory.geometry.folioSize)))",
            "backing": "\(self.backing.rawValue)",
            "mode": "\(self.directMap ? "direct-map" : "no-direct-map")",
            "region_id": "\(HelloReply.formatted(regionID: region.regionID))",
            "recovered": "\(region.recovered)",
        ]
        let stall = StallInjection(environment: environment)
        StartupPause.apply(environment: environment)
        let server = GmemServer(
            memory: memory,
            configuration: configuration,
            listener: listener,
            group: group,
            threadPool: threadPool,
            logger: logger,
            onServing: { server in
                // A signal that came during startup is handled now, as a graceful shutdown.
                if StartupSignal.replayIfCaught() { return }
                // READY=1 only now: the region is in the fd store and the socket accepts.
                logger.info("serving", metadata: servingMetadata)
                if notifier.ready(status: Self.summary(server: server, region: region)) {
                    logger.debug("sent READY=1")
                }
                stall?.arm(group: group, logger: logger)
            },
            onShutdown: { _ in
                logger.info("shutting down")
                notifier.stopping(status: "stopping: graceful shutdown")
            }
        )
        // Installs the SIGTERM/SIGINT handlers, then runs every service until
        // the drain is over or its time is up (the server cuts it short then).
        let services = Self.serviceGroup(
            server: server,
            region: region,
            group: group,
            notifier: notifier,
            logger: logger
        )
        let failure: (any Error)?
        do {
            try await services.run()
            failure = nil
        } catch {
            failure = error
        }
        // Stop the threads before exiting, also after a failed start: nothing may
        // be left running (LeakSanitizer in scripts/sanitizers.sh checks that path).
        // Shutting the event loops down closes any connection still open.
        try? await threadPool.shutdownGracefully()
        try? await group.shutdownGracefully()
        if let failure {
            Self.exit(
                withMessage: (failure as? GmemError)?.reason ?? "cannot listen on \(socketDescription): \(failure)"
            )
        }
        // The region (and its fds, still in the fd store) is released only now.
        withExtendedLifetime(region) {}
        logger.info("stopped")
    }

    static func exit(withMessage message: String) -> Never {
        FileHandleStandardError.write("gmemd: \(message)\n")
        Glibc.exit(1)
    }
}

extension Backing: ExpressibleByArgument {}

/// Group names for --allow-group and --allow-map-group, resolved once at start.
enum GroupLookup {
    static func id(named name: String, option: String) throws(GmemError) -> UInt32 {
        var group = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        // getgrnam_r: reentrant, and its errors are told apart from "no such group".
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard status == 0, result != nil else {
            let why = status == 0 ? "no such group" : String(cString: strerror(status))
            throw GmemError(.invalidArgument, "\(option) \(name): \(why)")
        }
        return UInt32(group.gr_gid)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A ``ByteCount`` as a command-line value.
struct ByteCountArgument: ExpressibleByArgument, Sendable {
    var value: UInt64
    init(_ value: UInt64) { self.value = value }
    init?(argument: String) {
        guard let count = ByteCount(parsing: argument) else { return nil }
        self.value = count.value
    }
    var defaultValueDescription: String { ByteCount(self.value).description }
}
