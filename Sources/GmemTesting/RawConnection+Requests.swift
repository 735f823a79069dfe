//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RawConnection requests: send one request, wait for its reply.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

extension RawConnection {
    /// Sends a request frame with the next id and returns its reply.
    ///
    /// Event frames that arrive first are appended to ``events``. The reply is validated with
    /// ``ReplyFrame/init(decoding:)`` (flags, status range, error payload rules) and must carry the request's opcode
    /// and id.
    ///
    /// - Throws: ``GmemTestingError/connectionClosed(_:)`` if the daemon closes instead of replying,
    ///   ``GmemTestingError/unexpectedFrame(_:payload:expected:)`` for a reply to something else,
    ///   ``GmemTestingError/protocolViolation(_:)`` for a frame a server must not send.
    public func request(
        opcode: Opcode,
        payload: [UInt8] = [],
        flags: UInt16 = 0,
        status: Int32 = 0,
        timeout: Duration = .seconds(5)
    ) throws -> ReplyFrame {
        let id = self.takeID()
        try self.sendFrame(opcode: opcode, id: id, flags: flags, status: status, payload: payload)
        return try self.receiveReply(opcode: opcode, id: id, timeout: timeout)
    }

    /// Sends an encoded ``Request`` with the next id and returns its reply (see
    /// ``request(opcode:payload:flags:status:timeout:)``).
    public func request(
        _ encode: (UInt32) throws -> [UInt8],
        opcode: Opcode,
        timeout: Duration = .seconds(5)
    ) throws -> ReplyFrame {
        let id = self.takeID()
        try self.send(try encode(id))
        return try self.receiveReply(opcode: opcode, id: id, timeout: timeout)
    }

    /// Receives frames until the reply to (`opcode`, `id`), keeping events in ``events``.
    public func receiveReply(opcode: Opcode, id: UInt32, timeout: Duration = .seconds(5)) throws -> ReplyFrame {
        let deadline = Deadline(after: timeout)
        while true {
            guard let (header, payload) = try self.receiveFrame(timeout: deadline.remaining) else {
                throw GmemTestingError.connectionClosed("waiting for the reply to \(opcode) id=\(id)")
            }
            let frame = try Self.validated(header, payload)
            if frame.isEvent {
                self.events.append(frame)
                continue
            }
            guard header.opcode == opcode, header.id == id else {
                throw GmemTestingError.unexpectedFrame(
                    header,
                    payload: payload,
                    expected: "the reply to \(opcode) id=\(id)"
                )
            }
            return frame
        }
    }

    /// Checks a received frame against the rules every server frame obeys.
    public static func validated(_ header: FrameHeader, _ payload: [UInt8]) throws -> ReplyFrame {
        var bytes: [UInt8] = []
        header.write(to: &bytes)
        bytes.writeBytes(payload)
        do {
            return try ReplyFrame(decoding: bytes)
        } catch {
            throw GmemTestingError.protocolViolation(
                "malformed server frame \(header) payload=\(hexString(payload.prefix(32)))"
            )
        }
    }

    /// Removes and returns the events collected so far.
    public func takeEvents() -> [ReplyFrame] {
        defer { self.events.removeAll() }
        return self.events
    }

    /// The next request id.
    public func takeID() -> UInt32 {
        defer { self.nextID &+= 1 }
        return self.nextID
    }

    // MARK: HELLO

    /// Sends HELLO and returns the decoded success reply.
    ///
    /// - Throws: ``GmemTestingError/errorReply(_:_:)`` if the daemon refuses it.
    @discardableResult
    public func hello(features: HelloReply.Features = [], version: UInt32 = WireProtocol.version) throws -> HelloReply {
        let reply = try self.helloReply(features: features, version: version)
        try reply.requireSuccess()
        return try Self.decode(HelloReply.self, from: reply)
    }

    /// Sends HELLO and returns the reply as it came, success or not.
    public func helloReply(
        features: HelloReply.Features = [],
        version: UInt32 = WireProtocol.version
    ) throws -> ReplyFrame {
        try self.request(
            { try Request.hello(version: version, features: features.rawValue).encoded(id: $0) },
            opcode: .hello
        )
    }

    /// Decodes a success reply's payload, mapping a decoding failure to ``GmemTestingError/protocolViolation(_:)``.
    static func decode<T: WireDecodable>(_ type: T.Type, from reply: ReplyFrame) throws -> T {
        do {
            return try reply.decodePayload(as: type)
        } catch {
            throw GmemTestingError.protocolViolation(
                "\(reply.header) payload is not a valid \(type): \(hexString(reply.payload.prefix(64)))"
            )
        }
    }
}

extension ReplyFrame {
    /// Throws ``GmemTestingError/errorReply(_:_:)`` unless this is a success reply.
    public func requireSuccess() throws {
        guard self.isSuccess else {
            throw GmemTestingError.errorReply(self.header.opcode, self.errno ?? Errno(rawValue: -self.header.status))
        }
    }

    /// Whether this is an error reply with `errno` and an empty payload.
    public func isError(_ errno: Errno) -> Bool {
        self.header.flags == .reply && self.errno == errno && self.payload.isEmpty
    }

    /// `EFAULT`, `success` or `event`, for test messages.
    public var outcome: String {
        if self.isEvent { return "event" }
        return self.errno?.name ?? (self.header.status == 0 ? "success" : "status \(self.header.status)")
    }
}
