//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// ClientConnectionHandler: pipelined requests matched to in-order replies.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import NIOCore
import Synchronization

/// Matches gmemd's replies to the requests of one connection and forwards events.
///
/// Contract:
/// - Outbound ``OutgoingBatch``es get consecutive ids, in the order the event loop sees them, and their promises
///   join a FIFO in that same order; every frame of a batch is written before the batch is flushed.
/// - The daemon replies in request order, so every reply must match the FIFO's head by id and opcode; anything else
///   (a reply nobody waits for, a mismatch) is a protocol violation that fails every outstanding request and
///   closes the connection.
/// - A reply with status 0 succeeds its promise with the frame; any other status fails it with a
///   ``GmemClientError`` whose code is ``GmemClientError/Code/daemonError``.
/// - GPC_INVALIDATED events go to the ``GmemClient/events`` continuation before the reply that follows them
///   completes; unknown event opcodes are ignored (a newer daemon may send events this client does not know).
/// - Once the connection is unusable (closed by either side, protocol violation), every outstanding and every later
///   request fails with the same error, and the event stream finishes.
///
/// Not `Sendable`: confined to its channel's event loop like every NIO handler.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ReplyFrame
    typealias OutboundIn = OutgoingBatch
    typealias OutboundOut = ByteBuffer

    private struct InFlight {
        var id: UInt32
        var opcode: Opcode
        var promise: EventLoopPromise<ReplyFrame>
    }

    /// Requests written and not yet answered, oldest first.
    private var inFlight = CircularBuffer<InFlight>(initialCapacity: 16)
    /// The id of the next request; 0 is skipped so that it only ever appears in events.
    private var nextID: UInt32 = 1
    /// Set once the connection can no longer carry requests; a copy of ``outcome``'s, for the event loop.
    private var failure: GmemClientError?
    /// Shared with the ``GmemClient``, which outlives this handler's place in the pipeline.
    private let outcome: ConnectionOutcome
    private let events: AsyncStream<GpcInvalidatedEvent>.Continuation

    init(events: AsyncStream<GpcInvalidatedEvent>.Continuation, outcome: ConnectionOutcome) {
        self.events = events
        self.outcome = outcome
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = Self.unwrapOutboundIn(data)
        if let failure = self.failure {
            for request in batch.requests {
                request.promise.fail(failure.attributed(to: request.opcode))
            }
            promise?.fail(failure)
            return
        }
        guard let last = batch.requests.indices.last else {
            promise?.succeed()
            return
        }
        for index in batch.requests.indices {
            var request = batch.requests[index]
            let id = self.allocateID()
            // Offset 8 of the header is the id; the frame was encoded with 0 there.
            request.frame.setInteger(id, at: request.frame.readerIndex + 8, endianness: .little, as: UInt32.self)
            self.inFlight.append(InFlight(id: id, opcode: request.opcode, promise: request.promise))
            context.write(Self.wrapOutboundOut(request.frame), promise: index == last ? promise : nil)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { self.fail(with: .closedByClient) }
        context.close(mode: mode, promise: promise)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        guard self.failure == nil else { return }
        if frame.isEvent {
            return self.eventReceived(frame, context: context)
        }
        guard let head = self.inFlight.popFirst() else {
            return self.violation("a reply (\(frame.header)) to no outstanding request", context: context)
        }
        guard frame.header.id == head.id, frame.header.opcode == head.opcode else {
            self.inFlight.prepend(head)
            return self.violation(
                "a reply (\(frame.header)) where the reply to \(head.opcode) id=\(head.id) was due",
                context: context
            )
        }
        if let errno = frame.errno {
            head.promise.fail(GmemClientError.daemon(errno, opcode: head.opcode, bytesCompleted: frame.bytesCompleted))
        } else {
            head.promise.succeed(frame)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as GmemClientError:
            self.fail(with: error)
        case is ByteToMessageDecoderError:
            // Leftover bytes at close: the daemon closed in the middle of a frame.
            self.fail(with: .closedByDaemon)
        default:
            self.fail(
                with: GmemClientError(
                    code: .connectionClosed,
                    errno: .connectionReset,
                    detail: "the connection to gmemd failed: \(error)"
                )
            )
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(with: .closedByDaemon)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.fail(with: .closedByDaemon)
    }

    // MARK: Helpers

    private func allocateID() -> UInt32 {
        let id = self.nextID
        self.nextID = self.nextID &+ 1
        if self.nextID == 0 { self.nextID = 1 }
        return id
    }

    private func eventReceived(_ frame: ReplyFrame, context: ChannelHandlerContext) {
        guard frame.header.opcode == .gpcInvalidated else { return }
        do {
            self.events.yield(try frame.decodePayload(as: GpcInvalidatedEvent.self))
        } catch {
            self.violation("a malformed GPC_INVALIDATED event", context: context)
        }
    }

    private func violation(_ detail: String, context: ChannelHandlerContext) {
        self.fail(with: .protocolViolation(detail))
        context.close(promise: nil)
    }

    /// Makes the connection unusable: fails every outstanding request and finishes the event stream. The first
    /// error wins; later calls only fail requests that arrived in between (none, in practice).
    private func fail(with error: GmemClientError) {
        if self.failure == nil {
            self.failure = self.outcome.record(error)
            self.events.finish()
        }
        let failure = self.failure ?? error
        while let request = self.inFlight.popFirst() {
            request.promise.fail(failure.attributed(to: request.opcode))
        }
    }
}

/// Why a connection ended: the first error recorded wins.
///
/// The handler records it on the event loop; ``GmemClient`` reads it for requests sent after the pipeline is gone
/// and records ``GmemClientError/closedByClient`` from ``GmemClient/close()``. `Sendable`: a mutex guards the
/// value.
final class ConnectionOutcome: Sendable {
    private let error = Mutex<GmemClientError?>(nil)

    /// Records `error` unless another was recorded first; returns the one that stands.
    @discardableResult
    func record(_ error: GmemClientError) -> GmemClientError {
        self.error.withLock { recorded in
            if let recorded { return recorded }
            recorded = error
            return error
        }
    }

    /// The recorded error, if the connection has ended.
    var current: GmemClientError? {
        self.error.withLock { $0 }
    }
}
