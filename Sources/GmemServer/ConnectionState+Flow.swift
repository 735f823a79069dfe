/// Pausing, resuming, draining and closing.
extension ConnectionState {
    /// The handler wrote and flushed the replies after ``NextStep/flushReplies``.
    /// If the socket takes no more, dispatch pauses until it is writable.
    mutating func repliesFlushed(isWritable: Bool) -> FlowAction? {
        guard !isWritable, case .dispatching = self.activity else { return nil }
        self.activity = .paused(.backpressure)
        return .pauseReading
    }

    /// The current request runs on the thread pool: later frames wait.
    mutating func offloadStarted() -> FlowAction {
        self.activity = .paused(.offload)
        return .pauseReading
    }

    /// The offloaded request's reply is buffered: dispatch what waited.
    mutating func offloadDone() -> FlowAction? {
        guard self.activity == .paused(.offload) else { return nil }
        self.activity = .dispatching(completedFrame: false)
        return .resumeDispatch
    }

    /// RING_SETUP's reply is to be sent with descriptors: later frames wait,
    /// and events are buffered, until ``descriptorsSent()``.
    mutating func descriptorsPending() -> FlowAction {
        self.activity = .paused(.descriptors)
        return .pauseReading
    }

    /// The reply and its descriptors are sent: dispatch what waited.
    mutating func descriptorsSent() -> FlowAction? {
        guard self.activity == .paused(.descriptors) else { return nil }
        self.activity = .dispatching(completedFrame: false)
        return .resumeDispatch
    }

    /// The peer read enough of its replies: dispatch what waited.
    mutating func writable() -> FlowAction? {
        guard self.activity == .paused(.backpressure) else { return nil }
        self.activity = .dispatching(completedFrame: false)
        return .resumeDispatch
    }

    /// Server shutdown (NIO's `ChannelShouldQuiesceEvent`): answer what was
    /// received, then close. A second quiesce leaves the drain alone.
    mutating func quiesce() -> WriteAction? {
        guard case .serving(let peer, let activity) = self.state else { return nil }
        self.state = .draining(peer, activity)
        // An offloaded operation (or a reply with descriptors) finishes
        // first; offloadDone (descriptorsSent) then closes.
        if activity == .paused(.offload) || activity == .paused(.descriptors) { return nil }
        return self.writeAction(flush: true)
    }

    /// How to write the buffered replies outside a batch's frames. A
    /// draining or closing connection closes only once nothing is owed: not
    /// while frames are being dispatched or wait behind a pause.
    func writeAction(flush: Bool) -> WriteAction {
        switch self.state {
        case .serving, .tornDown:
            return .write(flush: flush)
        case .draining(_, let activity), .closing(let activity):
            return activity == .idle ? .writeAndClose : .write(flush: true)
        }
    }

    /// An event frame is ready; nil when HELLO did not grant events.
    func eventReady() -> EventDelivery? {
        guard self.features.contains(.events) else { return nil }
        if case .dispatching = self.activity { return .joinBatch }
        // Written after the reply that carries descriptors, never into its way.
        if self.activity == .paused(.descriptors) { return .joinBatch }
        return .send(self.writeAction(flush: true))
    }

    /// The channel is gone: release everything, once.
    mutating func closed() -> Teardown? {
        guard self.activity != nil else { return nil }
        self.state = .tornDown
        self.inbound = nil
        let timer: TimerAction = self.frameTimer == .armed ? .cancel : .none
        self.frameTimer = .disarmed
        return Teardown(timer: timer)
    }
}
