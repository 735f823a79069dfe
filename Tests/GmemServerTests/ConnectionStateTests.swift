import GmemProtocol
import Testing

@testable import GmemServer

/// The connection state machine on its own: tables of event sequences and
/// the actions each event must return.
@Suite("ConnectionState")
struct ConnectionStateTests {
    /// A peer refused at accept learns why on HELLO, then the connection closes.
    static let refusedRows: [ConnectionStateRow] = [
        (ConnectionState.Admission.denied, Errno.permissionDenied, "a denied peer gets -EACCES on HELLO"),
        (.overLimit, .busy, "a peer over --max-connections gets -EBUSY on HELLO"),
    ].map { admission, errno, name in
        ConnectionStateRow(
            name: name + ", then close",
            admission: admission,
            steps: [
                (.bytes(Frames.hello()), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.hello, id: 1, .fail(errno, close: true))),
                (.next(pendingReplyBytes: 16), .batchEnded(.none)),
                (.write(flush: false), .write(.writeAndClose)),
            ]
        )
    }

    static let helloRows: [ConnectionStateRow] = [
        ConnectionStateRow(
            name: "HELLO is accepted, requested events granted, the accept timer cancelled",
            steps: Frames.ready
        ),
        ConnectionStateRow(
            name: "unknown feature bits are not granted; EVENTS, DEVICE_OPS and RINGS are",
            steps: [
                (.bytes(Frames.hello(features: 0xFFFF_FFFF)), .nothing),
                (
                    .next(pendingReplyBytes: 0),
                    .frame(.hello, id: 1, .acceptHello(readOnly: false, features: [.events, .deviceOps, .rings]))
                ),
            ]
        ),
        ConnectionStateRow(
            name: "a read-only peer is told so and its requests are dispatched read-only",
            admission: .readOnly,
            steps: [
                (.bytes(Frames.hello(features: 0) + Frames.ping(id: 2)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.hello, id: 1, .acceptHello(readOnly: true, features: []))),
                (.next(pendingReplyBytes: 64), .frame(.ping, id: 2, .dispatch(readOnly: true))),
                (.eventReady, .nothing),
            ]
        ),
        ConnectionStateRow(
            name: "a request before HELLO is -EPROTO and closes after the reply",
            steps: [
                (.opened, .timer(.arm)),
                (.bytes(Frames.ping(id: 7) + Frames.hello(id: 8)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 7, .fail(.protocolError, close: true))),
                // The HELLO behind it is dropped, but counts as a half-sent frame.
                (.next(pendingReplyBytes: 16), .batchEnded(.arm)),
                (.write(flush: false), .write(.writeAndClose)),
                (.quiesce, .nothing),
            ]
        ),
        ConnectionStateRow(
            name: "a malformed HELLO is -EINVAL and the connection stays open for a good one",
            steps: [
                (.bytes(Frames.frame(.hello, id: 1, payload: [1, 0, 0, 0]) + Frames.hello(id: 2)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.hello, id: 1, .fail(.invalidArgument, close: false))),
                (.next(pendingReplyBytes: 16), .frame(.hello, id: 2, .acceptHello(readOnly: false, features: .events))),
            ]
        ),
        ConnectionStateRow(
            name: "HELLO of another version is -EPROTONOSUPPORT, then close",
            steps: [
                (.bytes(Frames.hello(version: 2)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.hello, id: 1, .fail(.protocolNotSupported, close: true))),
            ]
        ),
        ConnectionStateRow(
            name: "a second HELLO is -EALREADY and the connection stays open",
            steps: Frames.ready + [
                (.bytes(Frames.hello(id: 3)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.hello, id: 3, .fail(.alreadyInProgress, close: false))),
            ]
        ),
    ]

    static let framingRows: [ConnectionStateRow] = [
        ConnectionStateRow(
            name: "a length below 16 is -EMSGSIZE, then close, and nothing after it is read",
            steps: Frames.ready + [
                (.bytes(Frames.frame(.ping, id: 5, length: 8) + Frames.ping(id: 6)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 5, .fail(.messageTooLong, close: true))),
                (.next(pendingReplyBytes: 16), .batchEnded(.none)),
                (.write(flush: false), .write(.writeAndClose)),
            ]
        ),
        ConnectionStateRow(
            name: "a length above 16 + max_payload is -EMSGSIZE before its payload arrives",
            steps: Frames.ready + [
                (.bytes(Frames.frame(.read, id: 5, length: UInt32(16 + Frames.maxPayload + 1))), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.read, id: 5, .fail(.messageTooLong, close: true))),
            ]
        ),
        ConnectionStateRow(
            name: "a frame split over reads: the timer runs from its first byte and restarts at the next frame",
            steps: Frames.ready + [
                (.bytes(Array(Frames.ping(id: 2)[..<10])), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.arm)),
                (.bytes(Array(Frames.ping(id: 2)[10..<20])), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                (.bytes(Array(Frames.ping(id: 2)[20...]) + Array(Frames.ping(id: 3)[..<4])), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 2, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.arm)),
                (.bytes(Array(Frames.ping(id: 3)[4...])), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.cancel)),
                (.timerFired, .fired(false)),
            ]
        ),
        ConnectionStateRow(
            name: "the frame timer closes a half-sent frame; a closing connection sends no events and does not drain",
            steps: Frames.ready + [
                (.bytes(Array(Frames.ping(id: 2)[..<10])), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.arm)),
                (.timerFired, .fired(true)),
                (.timerFired, .fired(false)),
                (.eventReady, .nothing),
                (.quiesce, .nothing),
                (.closed, .teardown(.none)),
                (.closed, .nothing),
            ]
        ),
        ConnectionStateRow(
            name: "a connection closed with a frame half-sent cancels its timer",
            steps: Frames.ready + [
                (.bytes(Array(Frames.ping(id: 2)[..<10])), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.arm)),
                (.closed, .teardown(.cancel)),
                (.bytes(Frames.ping(id: 3)), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
            ]
        ),
        ConnectionStateRow(
            name: "a peer that never says HELLO is timed from the accept",
            steps: [
                (.opened, .timer(.arm)),
                (.timerFired, .fired(true)),
                (.eventReady, .nothing),
                (.closed, .teardown(.none)),
            ]
        ),
    ]

    static let flowRows: [ConnectionStateRow] = [
        ConnectionStateRow(
            name: "an offloaded request pauses dispatch; its event goes out at once; the next frame waits",
            steps: Frames.ready + [
                (
                    .bytes(
                        Frames.frame(.setAttributes, id: 2, payload: .init(repeating: 0, count: 24))
                            + Frames.ping(id: 3)
                    ), .nothing
                ),
                (.next(pendingReplyBytes: 0), .frame(.setAttributes, id: 2, .dispatch(readOnly: false))),
                (.eventReady, .event(.joinBatch)),
                (.offloadStarted, .flow(.pauseReading)),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                (.eventReady, .event(.send(.write(flush: true)))),
                (.writable, .nothing),
                (.offloadDone, .flow(.resumeDispatch)),
                (.next(pendingReplyBytes: 16), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 40), .batchEnded(.none)),
                (.write(flush: true), .write(.write(flush: true))),
                (.offloadDone, .nothing),
            ]
        ),
        ConnectionStateRow(
            name:
                "RING_SETUP's reply with descriptors: events wait behind it, a quiesce waits for it, then the drain closes",
            steps: Frames.ready + [
                (
                    .bytes(
                        Frames.frame(.ringSetup, id: 2, payload: .init(repeating: 0, count: 16)) + Frames.ping(id: 3)
                    ),
                    .nothing
                ),
                (.next(pendingReplyBytes: 0), .frame(.ringSetup, id: 2, .dispatch(readOnly: false))),
                (.descriptorsPending, .flow(.pauseReading)),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                // Unlike an offload, nothing may be written before the reply that carries descriptors.
                (.eventReady, .event(.joinBatch)),
                (.quiesce, .nothing),
                (.offloadDone, .nothing),
                (.writable, .nothing),
                (.descriptorsSent, .flow(.resumeDispatch)),
                (.next(pendingReplyBytes: 32), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 56), .batchEnded(.none)),
                (.write(flush: true), .write(.writeAndClose)),
                (.descriptorsSent, .nothing),
            ]
        ),
        ConnectionStateRow(
            name: "replies at the high-water mark are flushed mid-batch; a writable socket keeps dispatching",
            steps: Frames.ready + [
                (.bytes(Frames.ping(id: 2) + Frames.ping(id: 3)), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 2, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: ConnectionState.outboundHighWater), .flushReplies),
                (.flushed(isWritable: true), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.none)),
            ]
        ),
        ConnectionStateRow(
            name: "a quiesced idle connection closes after an empty write, which follows every queued reply",
            steps: Frames.ready + [
                (.quiesce, .write(.writeAndClose)),
                // A second quiesce does nothing more.
                (.quiesce, .nothing),
            ]
        ),
        ConnectionStateRow(
            name: "frames received while draining are answered before the close",
            steps: Frames.ready + [
                (.quiesce, .write(.writeAndClose)),
                (.bytes(Frames.ping(id: 2)), .nothing),
                (.eventReady, .event(.joinBatch)),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 2, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.none)),
                (.write(flush: false), .write(.writeAndClose)),
            ]
        ),
    ]

    /// Ping 2's reply reached the high-water mark and the peer does not
    /// read: ping 3 waits behind the pause.
    static let waitingForThePeer: [(ConnectionStateEvent, ConnectionStateOutcome)] =
        Frames.ready + [
            (.bytes(Frames.ping(id: 2) + Frames.ping(id: 3)), .nothing),
            (.next(pendingReplyBytes: 0), .frame(.ping, id: 2, .dispatch(readOnly: false))),
            (.next(pendingReplyBytes: ConnectionState.outboundHighWater), .flushReplies),
            (.flushed(isWritable: false), .flow(.pauseReading)),
            (.next(pendingReplyBytes: 0), .batchEnded(.none)),
        ]

    /// The four bugs of the README's findings table that came from how the
    /// handler's flags combined. Each row fails if the old logic came back.
    static let pastBugsRows: [ConnectionStateRow] = [
        ConnectionStateRow(
            name:
                "bug: the drain closed on an empty batch, dropping replies owed to frames waiting for the peer to read",
            steps: Self.waitingForThePeer + [
                // The batch is empty, but ping 3 waits: flush, do not close.
                (.quiesce, .write(.write(flush: true))),
                (.write(flush: false), .write(.write(flush: true))),
                (.writable, .flow(.resumeDispatch)),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.none)),
                (.write(flush: true), .write(.writeAndClose)),
            ]
        ),
        ConnectionStateRow(
            name: "bug: a second SIGTERM cut the drain short while a request was still being answered",
            steps: Frames.ready + [
                (
                    .bytes(Frames.frame(.discard, id: 2, payload: .init(repeating: 0, count: 16)) + Frames.ping(id: 3)),
                    .nothing
                ),
                (.next(pendingReplyBytes: 0), .frame(.discard, id: 2, .dispatch(readOnly: false))),
                (.offloadStarted, .flow(.pauseReading)),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                (.quiesce, .nothing),
                (.quiesce, .nothing),
                (.offloadDone, .flow(.resumeDispatch)),
                (.next(pendingReplyBytes: 16), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 40), .batchEnded(.none)),
                (.write(flush: true), .write(.writeAndClose)),
            ]
        ),
        ConnectionStateRow(
            name: "bug: the frame timer ran while the daemon waited for the peer to read",
            steps: Self.waitingForThePeer + [
                // More bytes while paused, a frame half-sent among them: not timed.
                (.bytes(Array(Frames.ping(id: 4)[..<6])), .nothing),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                (.timerFired, .fired(false)),
                // Once the peer reads, the half-sent frame is timed.
                (.writable, .flow(.resumeDispatch)),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 3, .dispatch(readOnly: false))),
                (.next(pendingReplyBytes: 24), .batchEnded(.arm)),
            ]
        ),
        ConnectionStateRow(
            name:
                "bug: a half-sent frame at the end of a burst was timed before the connection paused for backpressure",
            steps: Frames.ready + [
                (.bytes(Frames.ping(id: 2) + Array(Frames.ping(id: 3)[..<6])), .nothing),
                (.next(pendingReplyBytes: 0), .frame(.ping, id: 2, .dispatch(readOnly: false))),
                // The burst's replies reached the mark: the pause comes before the timer decision.
                (.next(pendingReplyBytes: ConnectionState.outboundHighWater), .flushReplies),
                (.flushed(isWritable: false), .flow(.pauseReading)),
                (.next(pendingReplyBytes: 0), .batchEnded(.none)),
                (.timerFired, .fired(false)),
            ]
        ),
    ]

    @Test("HELLO rules", arguments: Self.helloRows + Self.refusedRows)
    func helloRules(_ row: ConnectionStateRow) {
        #expect(row.run() == nil)
    }

    @Test("framing and the frame timer", arguments: Self.framingRows)
    func framing(_ row: ConnectionStateRow) {
        #expect(row.run() == nil)
    }

    @Test("pausing, resuming and draining", arguments: Self.flowRows)
    func flow(_ row: ConnectionStateRow) {
        #expect(row.run() == nil)
    }

    @Test("the four past bugs stay fixed", arguments: Self.pastBugsRows)
    func pastBugs(_ row: ConnectionStateRow) {
        #expect(row.run() == nil)
    }
}
