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
    var state: ConnectionState

    /// Bytes received but not yet dispatched: a partial frame, or frames
    /// waiting behind an offloaded operation.
    private var inbound: ByteBuffer?
    /// Replies and events of the current batch.
    var outbound: ByteBuffer
    /// Caches by wire handle. Handles count up and are never reused.
    var caches: [UInt64: GuestPageCache] = [:]
    var nextHandle: UInt64 = 1
    let counters: AccessCounters
    /// Pages the current read batch keeps accessible; released when it ends.
    var held = HeldPages()
    var context: ChannelHandlerContext?
    /// True while frames of a read are being dispatched: events then join the batch.
    var isDispatching = false
    var isOffloading = false
    /// The peer stopped reading: dispatch waits until the channel drains.
    private var isWaitingForWritability = false
    var isPaused: Bool { self.isOffloading || self.isWaitingForWritability }
    /// Replies buffered beyond this are handed to the channel mid-batch, so
    /// a client that pipelines large READs without reading cannot make the
    /// daemon buffer without bound.
    static let outboundHighWater = 256 << 10
    private var closeWhenFlushed = false
    private var frameTimer: Scheduled<Void>?

    init(server: ServerContext, admission: ConnectionState.Admission, peer: String) {
        self.server = server
        self.connectionID = server.connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        self.state = ConnectionState(admission: admission)
        self.counters = server.memory.makeCounters()
        self.outbound = ByteBuffer()
        var logger = server.logger
        logger[metadataKey: "connection"] = "\(self.connectionID)"
        logger[metadataKey: "peer"] = "\(peer)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.outbound = context.channel.allocator.buffer(capacity: 4096)
        self.logger.debug("connection opened")
        // A peer that connects and never says HELLO would hold a connection
        // slot forever: it gets the frame timeout too.
        self.armFrameTimer(partial: true, restart: true)
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
        guard !self.state.isTornDown else { return }
        self.state.tearDown()
        self.frameTimer?.cancel()
        self.server.memory.release(&self.held)
        for cache in self.caches.values { self.server.memory.deactivate(cache) }
        if !self.caches.isEmpty { self.logger.debug("released \(self.caches.count) caches of a closed connection") }
        self.caches.removeAll()
        self.server.memory.retire(self.counters)
        self.server.connections.wrappingSubtract(1, ordering: .relaxed)
        self.logger.debug("connection closed")
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.reuseOutbound()
        var incoming = self.unwrapInboundIn(data)
        if var pending = self.inbound {
            self.inbound = nil
            pending.writeBuffer(&incoming)
            incoming = pending
        }
        self.dispatchFrames(&incoming)
        if incoming.readableBytes > 0 {
            incoming.discardReadBytes()
            self.inbound = incoming
        }
        self.writeOutbound(flush: false)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The read burst is over: its pages become inaccessible again unless
        // someone else holds them. Every frame the burst decoded shared one
        // reference per page, so a hot page is restored and zapped once.
        self.server.memory.release(&self.held)
        context.flush()
        context.fireChannelReadComplete()
    }

    /// Dispatches every complete frame in `buffer`, leaving a partial one.
    private func dispatchFrames(_ buffer: inout ByteBuffer) {
        var completedFrame = false
        self.isDispatching = true
        while !self.isPaused && !self.state.isClosing, buffer.readableBytes >= FrameHeader.size {
            guard !self.pausedForBackpressure() else { break }
            let header = buffer.withUnsafeReadableBytes { FrameHeader(decoding: $0) }!
            guard header.hasValidLength(maxPayload: self.server.configuration.maxPayload) else {
                // Never read or allocate what a bad length claims.
                self.logger.debug("bad frame length \(header.length); closing")
                self.perform(self.state.badLengthReceived(), for: header)
                buffer.clear()
                break
            }
            let length = Int(header.length)
            guard buffer.readableBytes >= length else { break }
            buffer.withUnsafeReadableBytes { bytes in
                self.frameReceived(header, payload: UnsafeRawBufferPointer(rebasing: bytes[FrameHeader.size..<length]))
            }
            buffer.moveReaderIndex(forwardBy: length)
            completedFrame = true
        }
        self.isDispatching = false
        // Replies the peer has not read yet put the connection on hold before
        // the timer is armed: a frame the peer has half-sent while the daemon
        // waits for it to read is not timed (PROTOCOL.md section 2).
        if !self.isPaused && !self.state.isClosing { _ = self.pausedForBackpressure() }
        self.armFrameTimer(partial: buffer.readableBytes > 0 && !self.isPaused, restart: completedFrame)
    }

    /// Backpressure: once the replies waiting to go out reach the high-water
    /// mark they are flushed, and if the socket takes no more the connection
    /// pauses until it is writable. Returns whether it paused.
    private func pausedForBackpressure() -> Bool {
        guard self.outbound.readableBytes >= Self.outboundHighWater, let context = self.context else { return false }
        self.writeOutbound(flush: true)
        guard context.channel.isWritable else {
            self.pauseUntilWritable(context)
            return true
        }
        self.reuseOutbound()
        return false
    }

    private func frameReceived(_ header: FrameHeader, payload: UnsafeRawBufferPointer) {
        var hello: (version: UInt32, features: UInt32)? = nil
        if header.opcode == .hello, payload.count == 8, header.flags.rawValue == 0, header.status == 0 {
            hello = (
                UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
                UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            )
        }
        self.perform(self.state.frameReceived(opcode: header.opcode, hello: hello), for: header, payload: payload)
    }

    private func perform(
        _ action: ConnectionState.FrameAction,
        for header: FrameHeader,
        payload: UnsafeRawBufferPointer = .init(start: nil, count: 0)
    ) {
        switch action {
        case .ignore:
            return
        case .dispatch(let readOnly):
            self.dispatch(header, payload: payload, readOnly: readOnly)
        case .acceptHello(let readOnly, let events):
            let reply = HelloReply(
                features: events ? .events : [],
                pageSize: UInt32(self.server.memory.geometry.pageSize),
                folioSize: UInt32(self.server.memory.geometry.folioSize),
                regionSize: self.server.memory.geometry.regionSize,
                regionID: self.server.configuration.regionID,
                maxPayload: UInt32(self.server.configuration.maxPayload),
                maxGpcs: UInt32(self.server.configuration.maxCachesPerConnection),
                regionFlags: HelloReply.RegionFlags(rawValue: self.server.regionFlags(readOnly: readOnly))
            )
            Reply.encode(replyingTo: header, payload: reply, into: &self.outbound)
            self.logger.debug("HELLO accepted", metadata: ["readOnly": "\(readOnly)", "events": "\(events)"])
        case .fail(let errno, let close):
            if errno == .protocolNotSupported {
                Reply.encodeVersionNotSupported(replyingTo: header, into: &self.outbound)
            } else {
                Reply.encodeError(replyingTo: header, errno, into: &self.outbound)
            }
            self.server.errors.wrappingAdd(1, ordering: .relaxed)
            if close {
                self.logger.debug("closing after \(errno.name) to \(header.opcode)")
                self.closeWhenFlushed = true
            }
        }
    }

    // MARK: Writing

    /// Hands the batch's replies to the channel. After a fatal reply or a
    /// drain, closes it once everything owed is written.
    func writeOutbound(flush: Bool) {
        guard let context = self.context else { return }
        // Not while frames are being dispatched or the connection is paused:
        // requests are still to be answered, and this is called again after.
        let closeAfterwards = self.closeWhenFlushed && !self.isPaused && !self.isDispatching
        // Without a batch, an empty write: its promise completes only after
        // every earlier write, so replies already queued reach the peer first.
        var batch = ByteBuffer()
        if self.outbound.readableBytes > 0 {
            batch = self.outbound
            // Keep the storage: once the channel has written the batch it is
            // ours alone again and reuseOutbound() recycles it, no allocation.
            self.outbound.moveReaderIndex(forwardBy: batch.readableBytes)
        } else if !closeAfterwards {
            if flush || self.closeWhenFlushed { context.flush() }
            return
        }
        if closeAfterwards {
            context.writeAndFlush(self.wrapOutboundOut(batch)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.write(self.wrapOutboundOut(batch), promise: nil)
            if flush || self.closeWhenFlushed { context.flush() }
        }
    }

    /// Resets the outbound buffer before a new batch. When the previous batch
    /// is written, the storage is reused in place; otherwise clear() gives it a new one.
    @inline(__always)
    func reuseOutbound() {
        if self.outbound.readableBytes == 0 { self.outbound.clear() }
    }

    // MARK: The frame timeout

    /// A frame counts from its first byte (HELLO from the accept): the timer restarts whenever a
    /// frame completes and another one has begun.
    private func armFrameTimer(partial: Bool, restart: Bool) {
        guard partial else {
            self.frameTimer?.cancel()
            self.frameTimer = nil
            return
        }
        guard restart || self.frameTimer == nil, let context = self.context else { return }
        self.frameTimer?.cancel()
        let timeout = self.server.configuration.frameTimeout
        self.frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.logger.info(
                "no complete frame for \(timeout.nanoseconds / 1_000_000) ms (a half-sent frame, or no HELLO); closing the connection"
            )
            self.state.close()
            context.close(promise: nil)
        }
    }

    // MARK: Shutdown

    /// NIO's quiescing event, sent to every connection when the server shuts
    /// down gracefully: answer what was received, then close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        self.closeWhenFlushed = true
        // An offloaded operation finishes first; resumeAfterOffload then closes.
        if !self.isOffloading { self.writeOutbound(flush: true) }
    }

    // MARK: Resuming after offloaded work

    /// Stops reading and dispatching until the peer has read our replies.
    private func pauseUntilWritable(_ context: ChannelHandlerContext) {
        self.isWaitingForWritability = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && self.isWaitingForWritability {
            self.isWaitingForWritability = false
            self.resume()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Called on the loop when an offloaded operation has replied.
    func resumeAfterOffload() {
        self.isOffloading = false
        self.resume()
    }

    /// Dispatches the frames that waited while the connection was paused.
    private func resume() {
        guard !self.isPaused else { return }
        self.context?.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        self.reuseOutbound()
        if var pending = self.inbound {
            self.inbound = nil
            self.dispatchFrames(&pending)
            if pending.readableBytes > 0 { self.inbound = pending }
        }
        self.server.memory.release(&self.held)
        self.writeOutbound(flush: true)
    }
}
