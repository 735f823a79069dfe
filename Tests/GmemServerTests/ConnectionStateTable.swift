import GmemProtocol
import NIOCore
import Testing

@testable import GmemServer

/// One row of a state machine table: events fed in order, each with the
/// outcome it must produce.
struct ConnectionStateRow: CustomTestStringConvertible, Sendable {
    var name: String
    var admission: ConnectionState.Admission = .readWrite
    var steps: [(ConnectionStateEvent, ConnectionStateOutcome)]

    var testDescription: String { self.name }
}

/// The events of ``ConnectionState``, as the handler delivers them.
enum ConnectionStateEvent: Sendable {
    case opened
    case bytes([UInt8])
    /// Asks for the next step with this many reply bytes buffered.
    case next(pendingReplyBytes: Int)
    case flushed(isWritable: Bool)
    case offloadStarted
    case offloadDone
    case descriptorsPending
    case descriptorsSent
    case writable
    case quiesce
    case timerFired
    case closed
    case write(flush: Bool)
    case eventReady
}

/// What an event returned, in a form a table can spell.
enum ConnectionStateOutcome: Equatable, Sendable {
    /// The event returns nothing (bytesReceived), or nil.
    case nothing
    case timer(ConnectionState.TimerAction)
    case frame(Opcode, id: UInt32, ConnectionState.FrameAction)
    case flushReplies
    case batchEnded(ConnectionState.TimerAction)
    case flow(ConnectionState.FlowAction)
    case write(ConnectionState.WriteAction)
    case event(ConnectionState.EventDelivery)
    case teardown(ConnectionState.TimerAction)
    case fired(Bool)
}

extension ConnectionState {
    /// Feeds one event and reports what it returned.
    mutating func feed(_ event: ConnectionStateEvent) -> ConnectionStateOutcome {
        switch event {
        case .opened:
            return .timer(self.opened())
        case .bytes(let bytes):
            var buffer = ByteBuffer(bytes: bytes)
            self.bytesReceived(&buffer)
            return .nothing
        case .next(let pending):
            switch self.nextFrame(pendingReplyBytes: pending) {
            case .frame(let header, _, let action): return .frame(header.opcode, id: header.id, action)
            case .flushReplies: return .flushReplies
            case .batchEnded(let timer): return .batchEnded(timer)
            }
        case .flushed(let isWritable):
            return self.repliesFlushed(isWritable: isWritable).map { .flow($0) } ?? .nothing
        case .offloadStarted:
            return .flow(self.offloadStarted())
        case .offloadDone:
            return self.offloadDone().map { .flow($0) } ?? .nothing
        case .descriptorsPending:
            return .flow(self.descriptorsPending())
        case .descriptorsSent:
            return self.descriptorsSent().map { .flow($0) } ?? .nothing
        case .writable:
            return self.writable().map { .flow($0) } ?? .nothing
        case .quiesce:
            return self.quiesce().map { .write($0) } ?? .nothing
        case .timerFired:
            return .fired(self.timerFired())
        case .closed:
            return self.closed().map { .teardown($0.timer) } ?? .nothing
        case .write(let flush):
            return .write(self.writeAction(flush: flush))
        case .eventReady:
            return self.eventReady().map { .event($0) } ?? .nothing
        }
    }
}

/// Request frames, built with the protocol's own encoder.
enum Frames {
    static let maxPayload = 4096

    static func frame(_ opcode: Opcode, id: UInt32, payload: [UInt8] = [], length: UInt32? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        let header = FrameHeader(
            length: length ?? UInt32(FrameHeader.size + payload.count),
            opcode: opcode,
            flags: [],
            id: id,
            status: 0
        )
        header.write(to: &bytes)
        bytes.writeBytes(payload)
        return bytes
    }

    static func hello(id: UInt32 = 1, version: UInt32 = WireProtocol.version, features: UInt32 = 1) -> [UInt8] {
        var payload: [UInt8] = []
        payload.writeInteger(version)
        payload.writeInteger(features)
        return Self.frame(.hello, id: id, payload: payload)
    }

    static func ping(id: UInt32, count: Int = 8) -> [UInt8] {
        Self.frame(.ping, id: id, payload: [UInt8](repeating: 0xA5, count: count))
    }

    /// A connection that has said HELLO (with events) and has nothing pending.
    static let ready: [(ConnectionStateEvent, ConnectionStateOutcome)] = [
        (.opened, .timer(.arm)),
        (.bytes(Self.hello()), .nothing),
        (.next(pendingReplyBytes: 0), .frame(.hello, id: 1, .acceptHello(readOnly: false, features: .events))),
        (.next(pendingReplyBytes: 64), .batchEnded(.cancel)),
    ]
}

extension ConnectionStateRow {
    /// Runs the row, returning a description of the first mismatch.
    func run() -> String? {
        var machine = ConnectionState(admission: self.admission, maxPayload: Frames.maxPayload)
        for (index, (event, expected)) in self.steps.enumerated() {
            let actual = machine.feed(event)
            if actual != expected {
                let what: String
                if case .bytes(let bytes) = event { what = "\(bytes.count) bytes" } else { what = "\(event)" }
                return "step \(index) (\(what)): expected \(expected), got \(actual); state \(machine.state)"
            }
        }
        return nil
    }
}
