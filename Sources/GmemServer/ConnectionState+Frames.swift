import GmemProtocol
import NIOCore

/// Bytes in, frames out: the inbound buffer, the HELLO rules and the frame timer.
extension ConnectionState {
    /// The connection was accepted. A peer that connects and never says
    /// HELLO would hold a connection slot forever: it gets the frame timeout
    /// too, counted from the accept.
    mutating func opened() -> TimerAction {
        self.frameTimer = .armed
        return .arm
    }

    /// A read delivered `bytes`; starts a dispatch batch unless paused. Call
    /// ``nextFrame(pendingReplyBytes:)`` until it ends the batch.
    mutating func bytesReceived(_ bytes: inout ByteBuffer) {
        guard let activity = self.activity else { return }
        if self.inbound == nil {
            self.inbound = bytes
        } else {
            // In place: the payload slices of earlier frames are gone by now.
            self.inbound!.discardReadBytes()
            self.inbound!.writeBuffer(&bytes)
        }
        if activity == .idle { self.activity = .dispatching(completedFrame: false) }
    }

    /// The next step of the current batch. `pendingReplyBytes` are the
    /// replies buffered and not yet handed to the channel.
    mutating func nextFrame(pendingReplyBytes: Int) -> NextStep {
        guard case .dispatching = self.activity else { return .batchEnded(self.endBatch()) }
        switch self.state {
        case .serving(let peer, _), .draining(let peer, _):
            // Before the next frame, and before the batch ends (so before the
            // timer is armed): a peer that does not read pauses the connection.
            if pendingReplyBytes >= Self.outboundHighWater { return .flushReplies }
            guard var inbound = self.inbound else { return .batchEnded(self.endBatch()) }
            let decision = inbound.withUnsafeReadableBytes { self.decoder.decodeNext($0) }
            switch decision {
            case .needMoreBytes:
                return .batchEnded(self.endBatch())
            case .badLength(let header):
                // Never read or allocate what a bad length claims; the stream
                // cannot be resynchronised.
                self.inbound = nil
                self.startClosing()
                return .frame(header, payload: ByteBuffer(), .fail(.messageTooLong, close: true))
            case .frame(let header):
                // Checked by the decoder: 16 <= length <= readable bytes.
                inbound.moveReaderIndex(forwardBy: FrameHeader.size)
                let payload = inbound.readSlice(length: header.payloadLength)!
                self.inbound = inbound.readableBytes > 0 ? inbound : nil
                self.activity = .dispatching(completedFrame: true)
                return .frame(header, payload: payload, self.frameAction(header, payload: payload, peer: peer))
            }
        case .closing, .tornDown:
            // Everything after a fatal reply is dropped.
            return .batchEnded(self.endBatch())
        }
    }

    /// Applies the HELLO-first rule and the HELLO rules (PROTOCOL.md section 4).
    private mutating func frameAction(_ header: FrameHeader, payload: ByteBuffer, peer: Peer) -> FrameAction {
        switch peer {
        case .ready(let readOnly, _):
            if header.opcode == .hello { return .fail(.alreadyInProgress, close: false) }
            return .dispatch(readOnly: readOnly)
        case .awaitingHello(let admission):
            guard header.opcode == .hello else { return self.fatal(.protocolError) }
            switch admission {
            case .denied: return self.fatal(.permissionDenied)
            case .overLimit: return self.fatal(.busy)
            case .readWrite, .readOnly: break
            }
            let request = payload.withUnsafeReadableBytes { try? Request.decode(header: header, payload: $0) }
            // A HELLO of the wrong shape is -EINVAL and the connection stays open.
            guard case .hello(let version, let requested) = request else {
                return .fail(.invalidArgument, close: false)
            }
            guard version == WireProtocol.version else { return self.fatal(.protocolNotSupported) }
            let readOnly = admission == .readOnly
            let features = HelloReply.Features(rawValue: requested).intersection(.all)
            self.setPeer(.ready(readOnly: readOnly, features: features))
            return .acceptHello(readOnly: readOnly, features: features)
        }
    }

    private mutating func fatal(_ errno: Errno) -> FrameAction {
        self.startClosing()
        return .fail(errno, close: true)
    }

    private mutating func setPeer(_ peer: Peer) {
        switch self.state {
        case .serving(_, let activity): self.state = .serving(peer, activity)
        case .draining(_, let activity): self.state = .draining(peer, activity)
        case .closing, .tornDown: return
        }
    }

    /// Ends the batch and decides the timer. A frame counts from its first
    /// byte: the timer runs while a frame is partly received and dispatch is
    /// not paused, and restarts whenever a frame completed and another began.
    private mutating func endBatch() -> TimerAction {
        let partial = (self.inbound?.readableBytes ?? 0) > 0
        switch self.activity {
        case .dispatching(let completedFrame):
            self.activity = .idle
            return self.decideTimer(partial: partial, restart: completedFrame)
        case .idle:
            return self.decideTimer(partial: partial, restart: false)
        case .paused, nil:
            // Paused: the daemon waits, not the peer; nothing is timed.
            return self.decideTimer(partial: false, restart: false)
        }
    }

    private mutating func decideTimer(partial: Bool, restart: Bool) -> TimerAction {
        guard partial else {
            guard self.frameTimer == .armed else { return .none }
            self.frameTimer = .disarmed
            return .cancel
        }
        guard restart || self.frameTimer == .disarmed else { return .none }
        self.frameTimer = .armed
        return .arm
    }

    /// The frame timer fired: close now. A timer cancelled meanwhile is ignored.
    mutating func timerFired() -> Bool {
        guard self.frameTimer == .armed, self.activity != nil else { return false }
        self.frameTimer = .disarmed
        self.startClosing()
        return true
    }
}
