import GmemProtocol
import NIOCore

/// What the state machine tells ``ConnectionHandler`` to do.
extension ConnectionState {
    /// The next step of a dispatch batch, from ``nextFrame(pendingReplyBytes:)``.
    enum NextStep: Equatable {
        /// Carry out `action` for this frame; `payload` is its payload (a
        /// slice of the inbound buffer, no copy).
        case frame(FrameHeader, payload: ByteBuffer, FrameAction)
        /// The replies reached the high-water mark: write and flush them,
        /// then report ``repliesFlushed(isWritable:)`` and ask again.
        case flushReplies
        /// The batch is over; carry out the timer decision.
        case batchEnded(TimerAction)
    }

    /// What to do with a frame.
    enum FrameAction: Equatable {
        /// Decode and dispatch the request; `readOnly` says whether modifying
        /// requests get -EPERM.
        case dispatch(readOnly: Bool)
        /// Answer HELLO with success.
        case acceptHello(readOnly: Bool, features: HelloReply.Features)
        /// Reply with this errno; with `close` the connection closes after it.
        case fail(Errno, close: Bool)
    }

    /// The frame timer decision.
    enum TimerAction: Equatable {
        case none
        /// Schedule the timer, replacing a scheduled one.
        case arm
        case cancel
    }

    /// How to hand the buffered replies to the channel.
    enum WriteAction: Equatable {
        case write(flush: Bool)
        /// Write and flush (an empty write if nothing is buffered), close once
        /// that write completes: it completes only after every earlier one, so
        /// everything owed reaches the peer first.
        case writeAndClose
    }

    /// Reading and dispatching, paused or resumed.
    enum FlowAction: Equatable {
        /// Stop reading from the socket.
        case pauseReading
        /// Read again and dispatch a batch: the frames that waited.
        case resumeDispatch
    }

    /// Where an event frame (GPC_INVALIDATED) goes.
    enum EventDelivery: Equatable {
        /// A batch is being dispatched: the event joins it, ahead of the reply
        /// to the request that caused it.
        case joinBatch
        /// Start a new batch with the event and write it.
        case send(WriteAction)
    }

    /// What the handler releases when the connection is gone.
    struct Teardown: Equatable {
        var timer: TimerAction
    }
}
