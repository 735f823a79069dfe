/// Cutting the daemon's output into frames and pairing replies with requests.
extension Session {
    /// Splits the output into frames, checking each header. A frame cut short is a violation.
    mutating func parseOutput(label: String) {
        var offset = 0
        while self.output.count - offset >= 16 {
            let length = self.output.u32(offset)
            guard length >= 16, Int(length) <= 16 + self.model.maxPayload else {
                return self.violation("after \(label): the daemon sent a frame of length \(length)")
            }
            guard self.output.count - offset >= Int(length) else { break }
            let frame = OutputFrame(
                length: length,
                opcode: self.output.u16(offset + 4),
                flags: self.output.u16(offset + 6),
                id: self.output.u32(offset + 8),
                status: Int32(bitPattern: self.output.u32(offset + 12)),
                payload: Array(self.output[(offset + 16)..<(offset + Int(length))])
            )
            guard frame.flags == OutputFrame.reply || frame.flags == OutputFrame.event else {
                return self.violation(
                    "after \(label): flags \(frame.flags) are neither REPLY nor EVENT: \(frame.summary)"
                )
            }
            guard frame.status == 0 || (-4095 ... -1).contains(frame.status) else {
                return self.violation(
                    "after \(label): status \(frame.status) is neither 0 nor a negative errno: \(frame.summary)"
                )
            }
            self.frames.append(frame)
            offset += Int(length)
        }
        if offset < self.output.count {
            return self.violation(
                "after \(label): \(self.output.count - offset) bytes of a frame cut short (writes must be whole frames)"
            )
        }
        self.output = []
    }

    /// The next reply, which must answer `header`; the events before it are left for ``check``.
    mutating func nextReply(for header: RequestHeader) -> OutputFrame? {
        guard let index = self.frames.firstIndex(where: { $0.flags == OutputFrame.reply }) else {
            self.violation("no reply to request opcode \(header.opcode) id \(header.id) (length \(header.length))")
            return nil
        }
        let reply = self.frames[index]
        guard reply.opcode == header.opcode, reply.id == header.id else {
            self.violation(
                "replies out of order: expected opcode \(header.opcode) id \(header.id), got \(reply.summary)"
            )
            return nil
        }
        return reply
    }

    /// The events sent just before the reply about to be consumed, and that reply, removed.
    mutating func takeEventsAndReply() -> [OutputFrame] {
        let index = self.frames.firstIndex(where: { $0.flags == OutputFrame.reply })!
        let events = Array(self.frames[..<index])
        self.frames.removeFirst(index + 1)
        return events
    }

    // MARK: Checking replies

    mutating func expectError(_ reply: OutputFrame, _ status: Int32, _ why: @autoclosure () -> String) {
        let events = self.takeEventsAndReply()
        if !events.isEmpty {
            self.violation("events before an error reply: \(events.map(\.summary))")
        }
        if reply.status != status {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id) (\(why())): expected status \(status), got \(reply.status)"
            )
        } else if !reply.payload.isEmpty {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id): an error reply with a \(reply.payload.count)-byte payload"
            )
        }
    }

    /// Checks a success reply's status and returns its events, which must all be GPC_INVALIDATED.
    mutating func expectSuccess(
        _ reply: OutputFrame,
        _ why: @autoclosure () -> String,
        payloadCount: Int?
    ) -> [OutputFrame] {
        let events = self.takeEventsAndReply()
        if reply.status != 0 {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id) (\(why())): expected success, got status \(reply.status)"
            )
        } else if let payloadCount, reply.payload.count != payloadCount {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id): a \(reply.payload.count)-byte payload, expected \(payloadCount)"
            )
        }
        return events
    }

    mutating func expectNoEvents(_ events: [OutputFrame], _ what: String) {
        if !events.isEmpty { self.violation("events before the reply to \(what): \(events.map(\.summary))") }
    }

    /// The events before a conversion's or discard's reply name exactly the GPCs it invalidated.
    mutating func expectInvalidations(_ events: [OutputFrame], handles: Set<UInt64>, reason: UInt32) {
        var seen: Set<UInt64> = []
        for event in events {
            guard event.opcode == 0x80, event.id == 0, event.status == 0, event.payload.count == 16 else {
                return self.violation("a malformed event: \(event.summary)")
            }
            let handle = event.payload.u64(0)
            guard event.payload.u32(8) == reason, event.payload.u32(12) == 0 else {
                return self.violation(
                    "GPC_INVALIDATED for handle \(handle) with reason \(event.payload.u32(8)), reserved \(event.payload.u32(12)); expected reason \(reason)"
                )
            }
            guard seen.insert(handle).inserted else {
                return self.violation("two GPC_INVALIDATED events for handle \(handle)")
            }
        }
        let expected = self.model.eventsGranted ? handles : []
        if seen != expected {
            self.violation(
                "GPC_INVALIDATED events for \(seen.sorted()), expected \(expected.sorted()) (events granted: \(self.model.eventsGranted))"
            )
        }
    }
}
