import CGmemSys
import GmemCore
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The gmemd server: accepts connections on a Unix socket and serves guest
/// memory to them until ``shutdown()``.
///
/// Contract: call ``start(listeningOn:)`` once; it returns when the socket
/// serves. ``shutdown()`` stops accepting, lets every connection finish the
/// requests it has received, closes all of them and completes
/// ``closeFuture``. Safe to call from any thread, more than once.
public final class GmemServer: Sendable {
    /// Where the listening socket comes from.
    public enum Listener: Sendable {
        /// Create a socket file at ``ServerConfiguration/socketPath``.
        case path
        /// Serve an inherited, already listening socket (systemd socket activation).
        case inherited(descriptor: Int32)
    }

    enum State {
        case idle
        case serving(any Channel, ownsSocketFile: Bool)
        case stopping
        case stopped
    }

    let context: ServerContext
    let group: any EventLoopGroup
    private let state = Locked<State>(.idle)
    private let children = Locked<[ObjectIdentifier: any Channel]>([:])
    private let closed: EventLoopPromise<Void>

    public var memory: GuestMemory { self.context.memory }

    public init(
        memory: GuestMemory,
        configuration: ServerConfiguration,
        group: any EventLoopGroup,
        threadPool: NIOThreadPool,
        logger: Logger
    ) {
        self.context = ServerContext(
            memory: memory,
            configuration: configuration,
            logger: logger,
            threadPool: threadPool
        )
        self.group = group
        self.closed = group.next().makePromise()
    }

    /// Completes once the server has stopped and every connection is closed.
    public var closeFuture: EventLoopFuture<Void> { self.closed.futureResult }

    public var connectionCount: Int { self.context.connections.load(ordering: .relaxed) }

    /// Binds (or adopts) the listening socket and starts accepting.
    public func start(listeningOn listener: Listener = .path) async throws {
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                self.initializeConnection(channel)
            }
        let channel: any Channel
        switch listener {
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
        case .inherited(let descriptor):
            channel = try await bootstrap.withBoundSocket(descriptor).get()
        }
        let ownsSocketFile: Bool
        if case .path = listener { ownsSocketFile = true } else { ownsSocketFile = false }
        self.state.withLock { $0 = .serving(channel, ownsSocketFile: ownsSocketFile) }
    }

    private func initializeConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        let server = self.context
        let open = server.connections.wrappingAdd(1, ordering: .relaxed).newValue
        server.connectionsTotal.wrappingAdd(1, ordering: .relaxed)
        let key = ObjectIdentifier(channel)
        self.children.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.children.withLock { $0.removeValue(forKey: key) }
        }
        let access = server.configuration.access
        return PeerCredentials.read(
            from: channel,
            withGroups: access.usesGroups,
            logger: server.logger
        ).flatMapThrowing { credentials in
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
            let handler = ConnectionHandler(server: server, admission: admission, peer: peer)
            try channel.pipeline.syncOperations.addHandler(handler)
        }.flatMapErrorThrowing { error in
            // Without a handler nobody would decrement the count for this socket.
            server.connections.wrappingSubtract(1, ordering: .relaxed)
            server.logger.warning("refusing a connection: \(error)")
            throw error
        }
    }

    /// Stops accepting, answers what was received, closes every connection.
    public func shutdown() {
        enum Step {
            case drain(any Channel, ownsSocketFile: Bool)
            case finishWithoutServing
            case nothing
        }
        let step: Step = self.state.withLock { state in
            switch state {
            case .serving(let channel, let ownsSocketFile):
                state = .stopping
                return .drain(channel, ownsSocketFile: ownsSocketFile)
            case .idle:
                state = .stopped
                return .finishWithoutServing
            case .stopping, .stopped:
                // A second signal must not cut the drain short: closeFuture
                // completes once the first shutdown has closed everything.
                return .nothing
            }
        }
        let serving: (channel: any Channel, ownsSocketFile: Bool)
        switch step {
        case .drain(let channel, let ownsSocketFile): serving = (channel, ownsSocketFile)
        case .finishWithoutServing: return self.closed.succeed()
        case .nothing: return
        }
        let path = self.context.configuration.socketPath
        serving.channel.close().whenComplete { [self] _ in
            let channels = self.children.withLock { Array($0.values) }
            let drained = channels.map { channel in
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                return channel.closeFuture
            }
            EventLoopFuture.andAllComplete(drained, on: self.group.next()).whenComplete { [self] _ in
                // An inherited socket belongs to systemd; only our own file is removed.
                if serving.ownsSocketFile { unlink(path) }
                self.state.withLock { $0 = .stopped }
                self.closed.succeed()
            }
        }
    }
}
