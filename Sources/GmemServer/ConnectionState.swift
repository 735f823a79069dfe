import GmemProtocol
import NIOCore

/// The whole life of one connection as a plain state machine, in the style
/// of swift-nio's: every event is a mutating method that returns what the
/// handler must do, and the handler keeps no flags of its own.
///
/// It owns the bytes received and not yet dispatched, cuts them into frames
/// with ``FrameDecoder``, applies the HELLO rules, knows why dispatch is
/// paused (an offloaded operation, a peer that does not read), whether the
/// connection drains or closes, and when the frame timer runs.
struct ConnectionState {
    enum State: Equatable {
        /// Serving requests.
        case serving(Peer, Activity)
        /// Quiesced (shutdown): answer what was received, then close.
        case draining(Peer, Activity)
        /// A fatal reply is queued, or the timer fired: nothing more is dispatched.
        case closing(Activity)
        /// Closed and its caches released.
        case tornDown
    }

    /// What the peer may send.
    enum Peer: Equatable {
        /// Accepted; only HELLO is allowed. Carries what the peer may do.
        case awaitingHello(Admission)
        /// HELLO done.
        case ready(readOnly: Bool, features: HelloReply.Features)
    }

    /// What accept decided about the peer.
    enum Admission: Equatable {
        case readWrite
        case readOnly
        /// Peer credentials not allowed: -EACCES on HELLO, then close.
        case denied
        /// Over --max-connections: -EBUSY on HELLO, then close.
        case overLimit
    }

    /// What the connection is doing with the frames it received.
    enum Activity: Equatable {
        /// Waiting for bytes.
        case idle
        /// Dispatching the frames of one batch (a read, or a resume): events
        /// join the batch, and nothing closes before it ends.
        case dispatching(completedFrame: Bool)
        /// Dispatch waits; received frames stay in the inbound buffer.
        case paused(Pause)
    }

    /// Why dispatch waits.
    enum Pause: Equatable {
        /// A long conversion or discard runs on the thread pool: later frames
        /// wait so that replies stay in request order.
        case offload
        /// The peer does not read its replies: the daemon stops buffering
        /// them until the socket is writable (PROTOCOL.md section 2).
        case backpressure
        /// RING_SETUP's reply waits for every earlier reply to be written,
        /// then goes out with its descriptors outside the channel: nothing
        /// else may be written meanwhile, events included.
        case descriptors
    }

    /// Whether the frame timer is scheduled.
    enum FrameTimer: Equatable {
        case disarmed
        case armed
    }

    /// Replies buffered beyond this are handed to the channel mid-batch, so a
    /// client that pipelines large READs without reading cannot make the
    /// daemon buffer without bound.
    static let outboundHighWater = 256 << 10

    // Written only by the event methods (in the ConnectionState+ files).
    var state: State
    var frameTimer = FrameTimer.disarmed
    /// Bytes received but not yet dispatched: a partial frame, or frames
    /// waiting behind a pause. nil when empty, so that the next read's buffer
    /// is adopted as it is, without a copy.
    var inbound: ByteBuffer?
    var decoder: FrameDecoder

    init(admission: Admission, maxPayload: Int) {
        self.state = .serving(.awaitingHello(admission), .idle)
        self.decoder = FrameDecoder(maxPayload: maxPayload)
    }

    /// The features HELLO granted, while requests are still answered.
    var features: HelloReply.Features {
        switch self.state {
        case .serving(.ready(_, let features), _), .draining(.ready(_, let features), _): return features
        case .serving, .draining, .closing, .tornDown: return []
        }
    }

    /// Whether HELLO made the peer read-only; nil before HELLO.
    var readOnly: Bool? {
        switch self.state {
        case .serving(.ready(let readOnly, _), _), .draining(.ready(let readOnly, _), _): return readOnly
        case .serving, .draining, .closing, .tornDown: return nil
        }
    }

    /// nil once torn down.
    var activity: Activity? {
        get {
            switch self.state {
            case .serving(_, let activity), .draining(_, let activity), .closing(let activity): return activity
            case .tornDown: return nil
            }
        }
        set {
            guard let newValue else { return }
            switch self.state {
            case .serving(let peer, _): self.state = .serving(peer, newValue)
            case .draining(let peer, _): self.state = .draining(peer, newValue)
            case .closing: self.state = .closing(newValue)
            case .tornDown: return
            }
        }
    }

    /// Moves to ``State/closing(_:)``, keeping the activity.
    mutating func startClosing() {
        guard let activity = self.activity else { return }
        self.state = .closing(activity)
    }
}
