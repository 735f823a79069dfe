/// The reply to each request, by the connection's phase, and section 4's HELLO sequence.
extension Session {
    mutating func check(_ header: RequestHeader, _ payload: ArraySlice<UInt8>, _ reply: OutputFrame) {
        switch self.model.phase {
        case .closed:
            self.violation("a reply after the connection should have closed: \(reply.summary)")
        case .awaitingHello:
            self.checkFirst(header, payload, reply)
        case .ready:
            self.checkReady(header, payload, reply)
        }
    }

    /// Section 4's HELLO sequence.
    mutating func checkFirst(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        guard header.opcode == 1 else {
            self.expectError(reply, -Errno.EPROTO, "a request before HELLO")
            self.model.phase = .closed
            return
        }
        guard q.count == 8, header.flags == 0, header.status == 0 else {
            return self.expectError(reply, -Errno.EINVAL, "a malformed HELLO")
        }
        guard q.u32(0) == 1 else {
            let events = self.takeEventsAndReply()
            self.expectNoEvents(events, "HELLO")
            if reply.status != -Errno.EPROTONOSUPPORT || reply.payload != le32(1) {
                self.violation(
                    "HELLO version \(q.u32(0)): expected -EPROTONOSUPPORT with {u32 1}, got \(reply.summary) \(reply.payload)"
                )
            }
            self.model.phase = .closed
            return
        }
        let events = self.expectSuccess(reply, "HELLO", payloadCount: 48)
        self.expectNoEvents(events, "HELLO")
        guard self.violations.isEmpty else { return }
        let p = reply.payload
        let requested = q.u32(4)
        let expectedFlags: UInt32 = (self.model.directMap ? 0 : 1) | (self.model.readOnly ? 4 : 0)
        let fields: [(String, UInt64, UInt64)] = [
            ("version", UInt64(p.u32(0)), 1),
            ("features", UInt64(p.u32(4)), UInt64(requested & 7)),
            ("page_size", UInt64(p.u32(8)), UInt64(self.model.pageSize)),
            ("folio_size", UInt64(p.u32(12)), UInt64(self.model.folioSize)),
            ("region_size", p.u64(16), self.model.regionSize),
            ("max_payload", UInt64(p.u32(32)), UInt64(self.model.maxPayload)),
            ("max_gpcs", UInt64(p.u32(36)), UInt64(self.model.maxCaches)),
            ("region_flags", UInt64(p.u32(40)), UInt64(expectedFlags)),
            ("max_segments", UInt64(p.u32(44)), requested & 2 != 0 ? UInt64(Self.maxSegments) : 0),
        ]
        for (name, actual, expected) in fields where actual != expected {
            self.violation("HELLO reply: \(name) is \(actual), expected \(expected)")
        }
        self.model.eventsGranted = requested & 1 != 0
        self.model.phase = .ready
    }
}
