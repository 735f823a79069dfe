import GmemCore
import GmemProtocol
import Logging
import NIOCore

/// Serves one client connection, synchronously on its event loop.
///
/// Every frame decoded from one socket read is dispatched in order, and all
/// their replies go out in one write, flushed once per read batch. Only
/// conversions and discards of large ranges leave the loop (see
/// ``ServerConfiguration/offloadThreshold``); while one runs, later frames
/// wait, so replies stay in request order.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ServerContext
    let connectionID: UInt64
    var logger: Logger
    /// The connection's life: every decision about reading, pausing, timing
    /// and closing is its; this handler carries its actions out.
    var state: ConnectionState
    /// Replies and events of the current batch.
    var outbound: ByteBufferWireWriter
    /// Caches by wire handle, shared with the connection's rings. Handles
    /// count up and are never reused.
    let caches = CacheTable()
    var nextHandle: UInt64 = 1
    let counters: AccessCounters
    /// READ, WRITE and the rest, as both transports carry them.
    let dataPath: DataPath
    /// Open rings by id (see ``OpenRing``).
    var rings: [UInt32: OpenRing] = [:]
    var nextRingID: UInt32 = 1
    /// The kernel's identity of this connection's socket, to find its
    /// descriptor when a ring's reply must carry descriptors.
    let socketCookie: UInt64
    /// That descriptor, once looked up.
    var socket: Int32?
    /// Whether the access policy lets this peer receive the guest memfd
    /// (MAP_REGION): it then sees all guest memory, as KVM does.
    let mayMapRegion: Bool
    /// Pages the current read batch keeps accessible; released when it ends.
    var held = HeldPages()
    var context: ChannelHandlerContext?
    /// The handle of the frame timer the state machine armed, to cancel it.
    private var frameTimer: Scheduled<Void>?

    init(
        server: ServerContext,
        admission: ConnectionState.Admission,
        peer: String,
        socketCookie: UInt64 = 0,
        mayMapRegion: Bool = false
    ) {
        self.server = server
        self.mayMapRegion = mayMapRegion
        self.socketCookie = socketCookie
        self.connectionID = server.connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        self.state = ConnectionState(admission: admission, maxPayload: server.configuration.maxPayload)
        self.counters = server.memory.makeCounters()
        self.dataPath = DataPath(
            memory: server.memory,
            caches: self.caches,
            counters: self.counters,
            maxPayload: server.configuration.maxPayload
        )
        self.outbound = ByteBufferWireWriter(buffer: ByteBuffer())
        var logger = server.logger
        logger[metadataKey: "connection"] = "\(self.connectionID)"
        logger[metadataKey: "peer"] = "\(peer)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.outbound.buffer = context.channel.allocator.buffer(capacity: 4096)
        self.logger.debug("connection opened")
        self.carryOut(self.state.opened())
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tearDown()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.tearDown()
        self.context = nil
    }

    /// Releases everything the connection holds: a dying client leaks nothing.
    private func tearDown() {
        guard let teardown = self.state.closed() else { return }
        self.carryOut(teardown.timer)
        self.server.memory.release(&self.held)
        // Rings first: their pollers may still be using the caches (a use
        // after deactivation answers -ENOENT, never touches a page).
        self.closeAllRings()
        let caches = self.caches.removeAll()
        for cache in caches { self.server.memory.deactivate(cache) }
        if !caches.isEmpty { self.logger.debug("released \(caches.count) caches of a closed connection") }
        self.server.memory.retire(self.counters)
        self.server.connections.wrappingSubtract(1, ordering: .relaxed)
        self.logger.debug("connection closed")
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.reuseOutbound()
        var incoming = self.unwrapInboundIn(data)
        self.state.bytesReceived(&incoming)
        self.dispatchFrames()
        // One write per read batch; channelReadComplete flushes.
        self.carryOut(self.state.writeAction(flush: false))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The read burst is over: its pages become inaccessible again unless
        // someone else holds them. Every frame the burst decoded shared one
        // reference per page, so a hot page is restored and zapped once.
        self.server.memory.release(&self.held)
        context.flush()
        context.fireChannelReadComplete()
    }

    /// Dispatches the frames the state machine hands out until the batch ends.
    private func dispatchFrames() {
        while true {
            switch self.state.nextFrame(pendingReplyBytes: self.outbound.buffer.readableBytes) {
            case .frame(let header, let payload, let action):
                self.perform(action, for: header, payload: payload)
            case .flushReplies:
                self.carryOut(.write(flush: true))
                let isWritable = self.context?.channel.isWritable ?? false
                if let flow = self.state.repliesFlushed(isWritable: isWritable) {
                    self.carryOut(flow)
                } else {
                    self.reuseOutbound()
                }
            case .batchEnded(let timer):
                return self.carryOut(timer)
            }
        }
    }

    private func perform(_ action: ConnectionState.FrameAction, for header: FrameHeader, payload: ByteBuffer) {
        switch action {
        case .dispatch(let readOnly):
            payload.withUnsafeReadableBytes { self.dispatch(header, payload: $0, readOnly: readOnly) }
        case .acceptHello(let readOnly, let features):
            let reply = HelloReply(
                features: features,
                pageSize: UInt32(self.server.memory.geometry.pageSize),
                folioSize: UInt32(self.server.memory.geometry.folioSize),
                regionSize: self.server.memory.geometry.regionSize,
                regionID: self.server.configuration.regionID,
                maxPayload: UInt32(self.server.configuration.maxPayload),
                maxGpcs: UInt32(self.server.configuration.maxCachesPerConnection),
                regionFlags: self.server.regionFlags(readOnly: readOnly, mayMap: self.mayMapRegion),
                maxSegments: UInt32(DataPath.maxSegments)
            )
            Reply.encode(replyingTo: header, payload: reply, into: &self.outbound)
            self.logger.debug("HELLO accepted", metadata: ["readOnly": "\(readOnly)", "features": "\(features)"])
        case .fail(let errno, let close):
            if errno == .protocolNotSupported {
                Reply.encodeVersionNotSupported(replyingTo: header, into: &self.outbound)
            } else {
                Reply.encodeError(replyingTo: header, errno, into: &self.outbound)
            }
            self.server.errors.wrappingAdd(1, ordering: .relaxed)
            if close { self.logger.debug("closing after \(errno.name) to \(header.opcode)") }
        }
    }

    // MARK: Writing

    /// Hands the batch's replies to the channel as the state machine decided.
    func carryOut(_ write: ConnectionState.WriteAction) {
        guard let context = self.context else { return }
        switch write {
        case .write(let flush):
            if self.outbound.buffer.readableBytes > 0 {
                context.write(self.wrapOutboundOut(self.takeBatch()), promise: nil)
            }
            if flush { context.flush() }
        case .writeAndClose:
            // Without a batch, an empty write: its promise completes only after
            // every earlier write, so replies already queued reach the peer first.
            context.writeAndFlush(self.wrapOutboundOut(self.takeBatch())).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// The buffered replies, as one write.
    func takeBatch() -> ByteBuffer {
        let batch = self.outbound.buffer
        // Keep the storage: once the channel has written the batch it is ours
        // alone again and reuseOutbound() recycles it, no allocation.
        self.outbound.buffer.moveReaderIndex(forwardBy: batch.readableBytes)
        return batch
    }

    /// Resets the outbound buffer before a new batch. When the previous batch
    /// is written, the storage is reused in place; otherwise clear() gives it a new one.
    @inline(__always)
    func reuseOutbound() {
        if self.outbound.buffer.readableBytes == 0 { self.outbound.buffer.clear() }
    }

    // MARK: Pausing and resuming

    func carryOut(_ flow: ConnectionState.FlowAction) {
        switch flow {
        case .pauseReading:
            self.context?.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        case .resumeDispatch:
            self.context?.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            self.reuseOutbound()
            self.dispatchFrames()
            self.server.memory.release(&self.held)
            self.carryOut(self.state.writeAction(flush: true))
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let flow = self.state.writable() { self.carryOut(flow) }
        context.fireChannelWritabilityChanged()
    }

    // MARK: The frame timeout

    private func carryOut(_ timer: ConnectionState.TimerAction) {
        switch timer {
        case .none:
            return
        case .cancel:
            self.frameTimer?.cancel()
            self.frameTimer = nil
        case .arm:
            self.frameTimer?.cancel()
            guard let context = self.context else { return }
            let timeout = self.server.configuration.frameTimeout
            self.frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                guard self.state.timerFired() else { return }
                self.logger.info(
                    "no complete frame for \(timeout.nanoseconds / 1_000_000) ms (a half-sent frame, or no HELLO); closing the connection"
                )
                context.close(promise: nil)
            }
        }
    }

    // MARK: Shutdown

    /// NIO's quiescing event, sent to every connection when the server shuts
    /// down gracefully: answer what was received, then close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        if let write = self.state.quiesce() { self.carryOut(write) }
    }
}
