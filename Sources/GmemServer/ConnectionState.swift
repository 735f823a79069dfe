import GmemProtocol

/// The life of one connection as the protocol sees it, as a plain state
/// machine: event methods return the action the handler carries out.
struct ConnectionState {
    enum State {
        /// Accepted; only HELLO is allowed. Carries what the peer may do.
        case awaitingHello(Admission)
        /// HELLO done.
        case ready(readOnly: Bool, events: Bool)
        /// A fatal reply was queued; everything after it is dropped.
        case closing
        /// Closed and its caches released.
        case tornDown
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

    /// What to do with a frame.
    enum FrameAction: Equatable {
        /// Dispatch it; `readOnly` says whether modifying requests get -EPERM.
        case dispatch(readOnly: Bool)
        /// Answer HELLO with success.
        case acceptHello(readOnly: Bool, events: Bool)
        /// Reply with this errno, then close if `close`.
        case fail(Errno, close: Bool)
        /// Drop the frame: the connection is closing.
        case ignore
    }

    private(set) var state: State

    init(admission: Admission) {
        self.state = .awaitingHello(admission)
    }

    var eventsGranted: Bool {
        if case .ready(_, let events) = self.state { return events }
        return false
    }

    var isClosing: Bool {
        switch self.state {
        case .closing, .tornDown: return true
        case .awaitingHello, .ready: return false
        }
    }

    var isTornDown: Bool {
        if case .tornDown = self.state { return true }
        return false
    }

    /// A frame of valid length arrived. Applies the HELLO-first rule and the
    /// HELLO rules; `hello` is the decoded HELLO payload, nil if malformed.
    mutating func frameReceived(opcode: Opcode, hello: (version: UInt32, features: UInt32)?) -> FrameAction {
        switch self.state {
        case .closing, .tornDown:
            return .ignore
        case .awaitingHello(let admission):
            guard opcode == .hello else {
                self.state = .closing
                return .fail(.protocolError, close: true)
            }
            switch admission {
            case .denied:
                self.state = .closing
                return .fail(.permissionDenied, close: true)
            case .overLimit:
                self.state = .closing
                return .fail(.busy, close: true)
            case .readWrite, .readOnly:
                // A HELLO of the wrong size is a shape error: -EINVAL, stay open.
                guard let hello else { return .fail(.invalidArgument, close: false) }
                guard hello.version == WireProtocol.version else {
                    self.state = .closing
                    return .fail(.protocolNotSupported, close: true)
                }
                let readOnly = admission == .readOnly
                let events = hello.features & HelloFeatures.events != 0
                self.state = .ready(readOnly: readOnly, events: events)
                return .acceptHello(readOnly: readOnly, events: events)
            }
        case .ready(let readOnly, _):
            if opcode == .hello { return .fail(.alreadyInProgress, close: false) }
            return .dispatch(readOnly: readOnly)
        }
    }

    /// A header with an invalid length arrived: -EMSGSIZE, then close.
    mutating func badLengthReceived() -> FrameAction {
        if self.isClosing { return .ignore }
        self.state = .closing
        return .fail(.messageTooLong, close: true)
    }

    /// The server is closing the connection (timeout, shutdown).
    mutating func close() {
        if !self.isTornDown { self.state = .closing }
    }

    /// The connection is gone; nothing may touch its caches any more.
    mutating func tearDown() {
        self.state = .tornDown
    }
}

/// Feature bits of HELLO.
enum HelloFeatures {
    static let events: UInt32 = 1 << 0
    static let supported: UInt32 = events
}
