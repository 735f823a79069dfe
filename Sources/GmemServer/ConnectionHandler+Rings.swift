import CGmemSys
import GmemCore
import GmemProtocol
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// RING_SETUP and RING_CLOSE: the socket's side of the ring transport.
///
/// A ring's reply carries three descriptors (``replyWithDescriptors(_:payload:descriptors:isWanted:whenSent:)``).
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

        let reply = RingSetupReply(
            ringID: ringID,
            entries: layout.entries,
            dataSize: UInt64(layout.dataSize),
            mmapSize: UInt64(layout.mappingSize)
        )
        self.replyWithDescriptors(
            header,
            payload: reply,
            descriptors: memory.descriptorsForClient,
            // A ring closed meanwhile (the connection ended) has nothing left to send; ids are never reused.
            isWanted: { self.rings[ringID] != nil },
            whenSent: {
                // The client has its copy; gmemd keeps only the mapping. The
                // client can submit now, so serving starts now.
                memory.closeMemfd()
                self.rings[ringID]?.handedToPoller = true
                poller.add(ring)
            }
        )
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
