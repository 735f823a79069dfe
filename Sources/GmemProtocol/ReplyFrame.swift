//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// ReplyFrame: a reply or event frame as a client receives it.
//
//===----------------------------------------------------------------------===//

/// A complete frame from the server, reply or event, with its payload copied out of the receive buffer.
///
/// ``init(decoding:)`` checks what a client can check without knowing the request: the length matches, the flags
/// are exactly REPLY or exactly EVENT, events carry id 0 and status 0, a reply status is 0 or a negative errno, and
/// an error reply's payload is empty or one of the two defined exceptions. The payload of a success reply is
/// decoded with ``decodePayload(as:)`` once the client knows which request it answers.
public struct ReplyFrame: Sendable, Hashable {
    /// The frame header.
    public var header: FrameHeader
    /// The bytes after the header.
    public var payload: [UInt8]

    /// Creates a frame from its parts without validation, e.g. to build test input. The header is used as is.
    public init(header: FrameHeader, payload: [UInt8]) {
        self.header = header
        self.payload = payload
    }

    /// Decodes and validates a complete frame: exactly the bytes of one frame, header included, as delimited by
    /// ``FrameDecoder``.
    ///
    /// - Throws: ``Errno/protocolError`` if the frame breaks a rule a server must follow.
    public init(decoding frame: UnsafeRawBufferPointer) throws(Errno) {
        guard let header = FrameHeader(decoding: frame), header.payloadLength == frame.count - FrameHeader.size else {
            throw .protocolError
        }
        let payload = UnsafeRawBufferPointer(rebasing: frame[FrameHeader.size..<frame.count])
        try ReplyFrame.validate(header: header, payloadLength: payload.count)
        self.header = header
        self.payload = Array(payload)
    }

    /// Decodes and validates a complete frame held in an array.
    public init(decoding frame: [UInt8]) throws(Errno) {
        let result = frame.withUnsafeBytes { bytes in Result { () throws(Errno) in try ReplyFrame(decoding: bytes) } }
        self = try result.get()
    }

    /// Whether this is an event frame rather than a reply.
    public var isEvent: Bool {
        self.header.flags == .event
    }

    /// Whether this is a reply with status 0.
    public var isSuccess: Bool {
        self.header.flags == .reply && self.header.status == 0
    }

    /// The error of an error reply, `nil` for success replies and events.
    public var errno: Errno? {
        Errno(wireStatus: self.header.status)
    }

    /// The bytes completed before a READ or WRITE failed, if this error reply carries them.
    public var bytesCompleted: UInt64? {
        guard self.errno != nil else { return nil }
        if let progress = self.vectorProgress { return progress.bytesCompleted }
        guard self.payload.count == PartialProgressPayload.size else { return nil }
        return try? PartialProgressPayload(decoding: self.payload).bytesCompleted
    }

    /// How far a READV or WRITEV got before it failed, if this error reply says.
    public var vectorProgress: VectorProgressPayload? {
        guard self.errno != nil, self.header.opcode == .readv || self.header.opcode == .writev else { return nil }
        return try? VectorProgressPayload(decoding: self.payload)
    }

    /// The highest version the server supports, if this is the `-EPROTONOSUPPORT` reply to HELLO.
    public var highestSupportedVersion: UInt32? {
        guard self.errno == .protocolNotSupported, self.header.opcode == .hello else { return nil }
        return try? VersionNotSupportedPayload(decoding: self.payload).highestSupportedVersion
    }

    /// Decodes the payload as `type`, e.g. `HelloReply.self` for the success reply to HELLO.
    ///
    /// - Throws: ``Errno/protocolError`` if the payload is malformed for that type.
    public func decodePayload<T: WireDecodable>(as type: T.Type) throws(Errno) -> T {
        try T(decoding: self.payload)
    }

    /// Appends the frame exactly as it was decoded or built.
    public func encode(into writer: inout some WireWriter) {
        self.header.write(to: &writer)
        writer.writeBytes(self.payload)
    }

    /// Checks the rules of a server frame that do not depend on the request it answers.
    static func validate(header: FrameHeader, payloadLength: Int) throws(Errno) {
        switch header.flags {
        case .event:
            guard header.id == 0, header.status == 0 else { throw .protocolError }
        case .reply:
            guard header.status <= 0 else { throw .protocolError }
            guard header.status != 0 else { return }
            guard let errno = Errno(wireStatus: header.status) else { throw .protocolError }
            guard payloadLength != 0 else { return }
            let isPartialProgress =
                (header.opcode == .read || header.opcode == .write) && payloadLength == PartialProgressPayload.size
                || (header.opcode == .readv || header.opcode == .writev) && payloadLength == VectorProgressPayload.size
            let isVersionNotSupported =
                header.opcode == .hello && errno == .protocolNotSupported
                && payloadLength == VersionNotSupportedPayload.size
            guard isPartialProgress || isVersionNotSupported else { throw .protocolError }
        default:
            throw .protocolError
        }
    }
}
