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
    private var decoder: FrameDecoder
    /// Bytes of a frame split across reads.
    private var partial: ByteBuffer?
    private var greeted = false
    private var out: [UInt8] = []

    init(server: RawServer) {
        self.server = server
        self.decoder = FrameDecoder(maxPayload: server.maxPayload)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if var partial = self.partial {
            partial.writeBuffer(&incoming)
            incoming = partial
            self.partial = nil
        }
        var close = false
        let consumed = incoming.withUnsafeReadableBytes { bytes in
            var start = 0
            while true {
                let pending = UnsafeRawBufferPointer(rebasing: bytes[start...])
                switch self.decoder.decodeNext(pending) {
                case .needMoreBytes:
                    return start
                case .badLength(let header):
                    Reply.encodeError(replyingTo: header, .messageTooLong, into: &self.out)
                    close = true
                    return start
                case .frame(let header):
                    let length = Int(header.length)
                    let payload = UnsafeRawBufferPointer(rebasing: pending[FrameHeader.size..<length])
                    start += length
                    if !self.greeted && header.opcode != .hello {
                        Reply.encodeError(replyingTo: header, .protocolError, into: &self.out)
                        close = true
                        return start
                    }
                    self.greeted = true
                    self.server.answer(header, payload, into: &self.out)
                }
            }
        }
        incoming.moveReaderIndex(forwardBy: consumed)
        if incoming.readableBytes > 0 { self.partial = incoming }
        if !self.out.isEmpty {
            context.write(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: self.out)), promise: nil)
            self.out.removeAll(keepingCapacity: true)
        }
        if close { context.close(promise: nil) }
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
