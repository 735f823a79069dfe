import GmemProtocol
import NIOCore
import NIOPosix

// The raw-nio baseline (`run --raw --raw-nio`): the same answers as RawServer, served by the smallest SwiftNIO
// server that can frame them: one handler, one write per read, one flush per read burst, as gmemd does. Not a
// target baseline; it shows what SwiftNIO itself costs over a hand-written epoll loop, the floor of any server
// built on it.

/// Serves one connection of the raw-nio baseline.
final class RawNIOHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: RawServer
    private var session: RawSession
    /// Bytes of a frame split across reads.
    private var partial: ByteBuffer?
    private var out: [UInt8] = []

    init(server: RawServer) {
        self.server = server
        self.session = RawSession(maxPayload: server.maxPayload)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if var partial = self.partial {
            partial.writeBuffer(&incoming)
            incoming = partial
            self.partial = nil
        }
        let served = incoming.withUnsafeReadableBytes {
            self.session.answerFrames($0, server: self.server, into: &self.out)
        }
        incoming.moveReaderIndex(forwardBy: served.consumed)
        if incoming.readableBytes > 0 { self.partial = incoming }
        if !self.out.isEmpty {
            context.write(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: self.out)), promise: nil)
            self.out.removeAll(keepingCapacity: true)
        }
        if served.mustClose {
            // The error reply goes out before the connection ends.
            context.flush()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

extension RawServer {
    /// Serves the listening socket with SwiftNIO event loops, one per core, until ``stop()`` closes the group.
    func startNIO(listenFD: Int32) throws -> MultiThreadedEventLoopGroup {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let bootstrap = ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawNIOHandler(server: self))
                }
            }
        _ = try bootstrap.withBoundSocket(listenFD).wait()
        return group
    }
}
