import CGmemSys
import GmemCore
import Logging
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The gmemd server: accepts connections on a Unix socket and serves guest
/// memory to them, as a `Service` of swift-service-lifecycle.
///
/// Contract: ``run()`` binds (or adopts) the listening socket, calls
/// `onServing` once it accepts, and serves until the graceful shutdown of its
/// service group. Then it calls `onShutdown`, stops accepting, lets every
/// connection answer the requests it has received, and returns once all of
/// them are closed (see GmemServer+Service.swift). A failure to bind is
/// thrown from ``run()``.
public final class GmemServer: Sendable {
    /// Where the listening socket comes from.
    public enum Listener: Sendable {
        /// Create a socket file at ``ServerConfiguration/socketPath``.
        case path
        /// Serve an inherited, already listening socket (systemd socket activation).
        case inherited(descriptor: Int32)
    }

    /// The listening socket once bound, and what the drain needs of it.
    struct Listening {
        let channel: any Channel
        /// Knows every open connection: fires the quiescing event at each and reports when all are closed.
        let quiescing: ServerQuiescingHelper
        let ownsSocketFile: Bool
    }

    let context: ServerContext
    let group: any EventLoopGroup
    let listener: Listener
    let onServing: @Sendable (GmemServer) -> Void
    let onShutdown: @Sendable (GmemServer) -> Void

    public var memory: GuestMemory { self.context.memory }

    /// `onServing` runs once the socket accepts connections, unless a graceful
    /// shutdown began while it was being bound; `onShutdown` runs once the
    /// shutdown begins, before the drain. Both run on the server's task.
    public init(
        memory: GuestMemory,
        configuration: ServerConfiguration,
        listener: Listener = .path,
        group: any EventLoopGroup,
        threadPool: NIOThreadPool,
        logger: Logger,
        onServing: @escaping @Sendable (GmemServer) -> Void = { _ in },
        onShutdown: @escaping @Sendable (GmemServer) -> Void = { _ in }
    ) {
        self.context = ServerContext(
            memory: memory,
            configuration: configuration,
            logger: logger,
            threadPool: threadPool
        )
        self.listener = listener
        self.group = group
        self.onServing = onServing
        self.onShutdown = onShutdown
    }

    public var connectionCount: Int { self.context.connections.load(ordering: .relaxed) }

    /// Binds (or adopts) the listening socket and starts accepting.
    func bind() async throws -> Listening {
        let quiescing = ServerQuiescingHelper(group: self.group)
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelInitializer { channel in
                // First in the server pipeline: it sees every accepted connection before it is set up.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                self.initializeConnection(channel)
            }
        let channel: any Channel
        switch self.listener {
        case .path:
            let path = self.context.configuration.socketPath
            try SocketFile.prepare(path: path)
            let mode = mode_t(self.context.configuration.socketMode)
            // bind(2) creates the file with 0777 & ~umask. A umask of ~mode
            // makes it appear with the final mode at once, never wider;
            // nothing else creates files while the daemon starts.
            let savedMask = umask(~mode & 0o777)
            let bound = bootstrap.bind(unixDomainSocketPath: path)
            channel = try await bound.always { _ in umask(savedMask) }.get()
            guard chmod(path, mode) == 0 else {
                let saved = errno
                try? await channel.close()
                throw GmemError.systemCall("chmod \(path)", errno: saved)
            }
            return Listening(channel: channel, quiescing: quiescing, ownsSocketFile: true)
        case .inherited(let descriptor):
            channel = try await bootstrap.withBoundSocket(descriptor).get()
            return Listening(channel: channel, quiescing: quiescing, ownsSocketFile: false)
        }
    }

    private func initializeConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        let server = self.context
        let open = server.connections.wrappingAdd(1, ordering: .relaxed).newValue
        server.connectionsTotal.wrappingAdd(1, ordering: .relaxed)
        let access = server.configuration.access
        // SO_COOKIE names the socket, so that a ring's reply can find its descriptor (NIO does not expose it).
        let cookie: EventLoopFuture<UInt64> =
            (channel as? any SocketOptionProvider)?.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET),
                name: 57
            ) ?? channel.eventLoop.makeSucceededFuture(0)
        return PeerCredentials.read(
            from: channel,
            withGroups: access.usesGroups,
            logger: server.logger
        ).and(cookie.recover { _ in 0 }).flatMapThrowing { credentials, cookie in
            let admission: ConnectionState.Admission
            if open > server.configuration.maxConnections {
                admission = .overLimit
            } else {
                switch access.decide(uid: credentials.uid, gid: credentials.gid, groups: credentials.groups) {
                case .readWrite: admission = .readWrite
                case .readOnly: admission = .readOnly
                case .denied: admission = .denied
                }
            }
            let peer = credentials.description
            let handler = ConnectionHandler(
                server: server,
                admission: admission,
                peer: peer,
                socketCookie: cookie,
                mayMapRegion: access.mayMap(uid: credentials.uid, gid: credentials.gid, groups: credentials.groups)
            )
            try channel.pipeline.syncOperations.addHandler(handler)
        }.flatMapErrorThrowing { error in
            // Without a handler nobody would decrement the count for this socket.
            server.connections.wrappingSubtract(1, ordering: .relaxed)
            server.logger.warning("refusing a connection: \(error)")
            throw error
        }
    }
}
