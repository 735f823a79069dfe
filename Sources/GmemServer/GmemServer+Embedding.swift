import GmemCore
import Logging
import NIOCore
import NIOPosix

extension GmemServer {
    /// A connection handler serving `memory` on a channel the caller owns,
    /// such as NIO's `EmbeddedChannel` in fuzzers and tests. The peer is
    /// treated as allowed (read-write, or read-only); the socket layer's
    /// peer-credential check is not involved.
    ///
    /// Long conversions and discards need `threadPool` only when they exceed
    /// ``ServerConfiguration/offloadThreshold``.
    public static func makeConnectionHandler(
        memory: GuestMemory,
        configuration: ServerConfiguration,
        readOnly: Bool = false,
        threadPool: NIOThreadPool = .singleton,
        logger: Logger = Logger(label: "gmemd", factory: { _ in SwiftLogNoOpLogHandler() })
    ) -> any ChannelInboundHandler {
        let context = ServerContext(
            memory: memory,
            configuration: configuration,
            logger: logger,
            threadPool: threadPool
        )
        context.connections.wrappingAdd(1, ordering: .relaxed)
        return ConnectionHandler(server: context, admission: readOnly ? .readOnly : .readWrite, peer: "embedded")
    }
}
