import CGmemSys
import GmemCore
import GmemProtocol
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// RING_SETUP and RING_CLOSE: the socket's side of the ring transport.
///
/// A ring's reply carries three descriptors (SCM_RIGHTS), which SwiftNIO
/// cannot send. So gmemd pauses the connection (``ConnectionState/descriptorsPending()``),
/// lets NIO write every earlier reply, and then sends this one frame itself
/// with sendmsg(2) on the connection's socket, found by its SO_COOKIE. While
/// paused nothing else is written, events included, so the frame cannot land
/// inside another.
///
/// Until that frame is sent the ring is the event loop's alone: only then is
/// it handed to its poller thread, so the descriptors it sends cannot be
/// closed under it by a poller dropping the ring (a closed descriptor's
/// number could by then name another connection's file).
struct OpenRing {
    let ring: ServedRing
    /// The thread that serves the ring once the client has its descriptors.
    let poller: RingPoller
    /// Whether the poller has it; until then the loop finishes it itself.
    var handedToPoller = false
}

extension ConnectionHandler {
    func setUpRing(_ header: FrameHeader, entries: UInt32, dataSize: UInt64) throws {
        let layout = try RingLayout(entries: entries, dataSize: dataSize)
        guard self.rings.count < self.server.configuration.maxRingsPerConnection else { throw Errno.noSpace }
        guard let context = self.context, let readOnly = self.state.readOnly else { throw Errno.protocolError }
        let ringID = self.nextRingID
        let memory: RingMemory
        do {
            memory = try RingMemory(layout: layout, ringID: ringID)
        } catch {
            throw Errno.noMemory
        }
        let poller: RingPoller
        do {
            poller = try self.server.ringPollers.poller()
        } catch {
            memory.close()
            throw Errno.noMemory
        }
        self.nextRingID += 1
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let ring = ServedRing(
            ringID: ringID,
            memory: memory,
            dataPath: DataPath(
                memory: self.server.memory,
                caches: self.caches,
                counters: self.server.memory.makeCounters(),
                maxPayload: self.server.configuration.maxPayload
            ),
            readOnly: readOnly,
            server: self.server,
            onFailure: { ringID in loop.execute { handler.value.ringFailed(ringID) } }
        )
        self.rings[ringID] = OpenRing(ring: ring, poller: poller)

        var frame = ByteBufferWireWriter(buffer: context.channel.allocator.buffer(capacity: 48))
        let reply = RingSetupReply(
            ringID: ringID,
            entries: layout.entries,
            dataSize: UInt64(layout.dataSize),
            mmapSize: UInt64(layout.mappingSize)
        )
        Reply.encode(replyingTo: header, payload: reply, into: &frame)
        self.carryOut(self.state.descriptorsPending())
        // Every earlier reply goes first; the promise completes once NIO has written them.
        let earlier = self.takeBatch()
        context.writeAndFlush(self.wrapOutboundOut(earlier)).assumeIsolated().whenComplete { result in
            guard case .success = result else { return }
            self.sendWithDescriptors(Array(frame.buffer.readableBytesView), ring: ring, attempt: 0)
        }
        self.logger.debug("ring \(ringID) set up: \(entries) entries, \(dataSize) data bytes")
    }

    func closeRing(_ ringID: UInt32) throws {
        guard let open = self.rings.removeValue(forKey: ringID) else { throw Errno.noSuchEntry }
        Self.stop(open)
    }

    /// Stops every ring of a closing connection.
    func closeAllRings() {
        for open in self.rings.values { Self.stop(open) }
        self.rings.removeAll()
    }

    private static func stop(_ open: OpenRing) {
        guard open.handedToPoller else {
            // Never served: nothing consumed, no page held; the loop unmaps it.
            return open.ring.finish()
        }
        // The poller completes what it consumed, then releases the ring's pages and unmaps it.
        open.ring.requestStop()
        open.poller.wake()
    }

    /// Sends RING_SETUP's reply with its descriptors, retrying while the
    /// socket is full, for at most the frame timeout.
    private func sendWithDescriptors(_ frame: [UInt8], ring: ServedRing, attempt: Int) {
        // A ring closed meanwhile (the connection ended) has nothing left to send.
        guard let open = self.rings[ring.ringID], open.ring === ring, !open.handedToPoller else { return }
        guard let context = self.context, context.channel.isActive else { return }
        guard let socket = self.socketDescriptor() else {
            self.logger.error("cannot find the connection's socket to send a ring's descriptors; closing")
            return context.close(promise: nil)
        }
        let fds = ring.memory.descriptorsForClient
        let sent = frame.withUnsafeBytes { bytes in
            fds.withUnsafeBufferPointer {
                cgmem_send_with_fds(socket, bytes.baseAddress, UInt(bytes.count), $0.baseAddress, UInt32($0.count))
            }
        }
        if sent == frame.count {
            // The client has its copy; gmemd keeps only the mapping. The
            // client can submit now, so serving starts now.
            ring.memory.closeMemfd()
            self.rings[ring.ringID]?.handedToPoller = true
            open.poller.add(ring)
            if let flow = self.state.descriptorsSent() { self.carryOut(flow) }
            return
        }
        let retryInterval = TimeAmount.milliseconds(1)
        let attempts = Int(self.server.configuration.frameTimeout.nanoseconds / retryInterval.nanoseconds)
        if sent < 0, errno == EAGAIN || errno == EWOULDBLOCK, attempt < attempts {
            context.eventLoop.assumeIsolated().scheduleTask(in: retryInterval) {
                self.sendWithDescriptors(frame, ring: ring, attempt: attempt + 1)
            }
            return
        }
        // A partial frame, or a peer that never reads: the stream cannot go on.
        self.logger.notice(
            "cannot send a ring's descriptors (\(sent < 0 ? "errno \(errno)" : "partial write")); closing"
        )
        context.close(promise: nil)
    }

    /// This connection's socket among gmemd's descriptors: the one whose
    /// SO_COOKIE is the channel's. Looked up once per connection.
    private func socketDescriptor() -> Int32? {
        if let known = self.socket { return known }
        let cookie = self.socketCookie
        guard cookie != 0 else { return nil }
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), cgmem_socket_cookie(fd) == cookie else { continue }
            self.socket = fd
            return fd
        }
        return nil
    }

    /// On the loop: a ring's indices were corrupt. RING_FAILED (with EVENTS), then close, through the state
    /// machine like any event and any close: never into the way of a reply that carries descriptors.
    func ringFailed(_ ringID: UInt32) {
        self.logger.notice("ring \(ringID): corrupt indices; closing the connection")
        self.rings.removeValue(forKey: ringID)
        if let delivery = self.state.eventReady() {
            if case .send = delivery { self.reuseOutbound() }
            RingFailedEvent(ringID: ringID, status: -Errno.protocolError.rawValue).encodeFrame(into: &self.outbound)
        }
        // Nothing after this event is answered; the connection closes once what it owes is written.
        self.state.startClosing()
        // A batch or a pause in progress ends with that write itself.
        guard self.state.activity == .idle else { return }
        self.carryOut(self.state.writeAction(flush: true))
    }
}
