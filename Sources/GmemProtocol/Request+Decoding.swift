//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Request decoding: precedence rules 3 and 4, the pure shape of a request.
//
//===----------------------------------------------------------------------===//

extension Request {
    /// Decodes the payload of a request frame whose length ``FrameDecoder`` has already accepted (rule 1).
    ///
    /// Checks, first failure wins:
    /// 1. (rule 3) the opcode is a request opcode: otherwise ``Errno/operationNotSupported``;
    /// 2. (rule 4) header flags and status are 0, `header.length` is `16 + payload.count`, the payload has exactly
    ///    the opcode's size (`16 + len` for WRITE and GPC_WRITE), every flags and reserved field is 0 and
    ///    SET_ATTRIBUTES sets no bit but PRIVATE: otherwise ``Errno/invalidArgument``.
    ///
    /// The server checks rule 2 (HELLO first) *before* calling this, since it outranks rule 3, and rules 5 to 9
    /// after it. Byte payloads in the result point into `payload`. Never traps, whatever the input.
    ///
    /// - Throws: the ``Errno`` to send back in the reply status (negated).
    public static func decode(header: FrameHeader, payload: UnsafeRawBufferPointer) throws(Errno) -> Request {
        guard header.opcode.isKnownRequest else { throw .operationNotSupported }
        guard header.flags.rawValue == 0, header.status == 0 else { throw .invalidArgument }
        guard header.payloadLength == payload.count else { throw .invalidArgument }

        var reader = WireReader(payload, malformedError: .invalidArgument)
        if let size = Request.fixedPayloadLength(of: header.opcode) {
            try reader.expectReadableBytes(size)
        }
        let request = try decodeFields(opcode: header.opcode, from: &reader)
        try reader.expectAtEnd()
        return request
    }

    /// Decodes a complete request frame (header and payload) held in one buffer.
    ///
    /// Convenience for fuzzers and tests: applies rule 1 with `maxPayload` (``Errno/messageTooLong``), then
    /// ``decode(header:payload:)``. A buffer shorter than a header, or whose size differs from the header's length,
    /// also fails rule 1.
    public static func decode(
        frame: UnsafeRawBufferPointer,
        maxPayload: Int = WireProtocol.defaultMaxPayload
    ) throws(Errno) -> (header: FrameHeader, request: Request) {
        guard let header = FrameHeader(decoding: frame) else { throw .messageTooLong }
        guard header.hasValidLength(maxPayload: maxPayload), header.payloadLength == frame.count - FrameHeader.size
        else {
            throw .messageTooLong
        }
        let payload = UnsafeRawBufferPointer(rebasing: frame[FrameHeader.size..<frame.count])
        return (header, try decode(header: header, payload: payload))
    }

    /// Reads the fields of a payload whose fixed size has been checked.
    private static func decodeFields(opcode: Opcode, from reader: inout WireReader) throws(Errno) -> Request {
        switch opcode {
        case .hello:
            let version = try reader.readInteger(as: UInt32.self)
            let features = try reader.readInteger(as: UInt32.self)
            return .hello(version: version, features: features)

        case .ping:
            return .ping(reader.readRemainingBytes())

        case .read:
            let gpa = try reader.readInteger(as: UInt64.self)
            let length = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .read(gpa: gpa, length: length)

        case .write:
            let gpa = try reader.readInteger(as: UInt64.self)
            let length = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            try reader.expectReadableBytes(Int(clamping: length))
            return .write(gpa: gpa, data: reader.readRemainingBytes())

        case .gpcActivate:
            let gpa = try reader.readInteger(as: UInt64.self)
            let length = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .gpcActivate(gpa: gpa, length: length)

        case .gpcDeactivate:
            return .gpcDeactivate(handle: try reader.readInteger(as: UInt64.self))

        case .gpcRead:
            let handle = try reader.readInteger(as: UInt64.self)
            let offset = try reader.readInteger(as: UInt32.self)
            let length = try reader.readInteger(as: UInt32.self)
            return .gpcRead(handle: handle, offset: offset, length: length)

        case .gpcWrite:
            let handle = try reader.readInteger(as: UInt64.self)
            let offset = try reader.readInteger(as: UInt32.self)
            let length = try reader.readInteger(as: UInt32.self)
            try reader.expectReadableBytes(Int(clamping: length))
            return .gpcWrite(handle: handle, offset: offset, data: reader.readRemainingBytes())

        case .gpcRefresh:
            let handle = try reader.readInteger(as: UInt64.self)
            let gpa = try reader.readInteger(as: UInt64.self)
            let length = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .gpcRefresh(handle: handle, gpa: gpa, length: length)

        case .setAttributes:
            let gpa = try reader.readInteger(as: UInt64.self)
            let size = try reader.readInteger(as: UInt64.self)
            let attributes = try reader.readInteger(as: UInt64.self)
            guard attributes & ~WireProtocol.validAttributes == 0 else { throw .invalidArgument }
            return .setAttributes(gpa: gpa, size: size, attributes: attributes)

        case .discard:
            let gpa = try reader.readInteger(as: UInt64.self)
            let size = try reader.readInteger(as: UInt64.self)
            return .discard(gpa: gpa, size: size)

        case .stats:
            return .stats

        case .pageState:
            let gpa = try reader.readInteger(as: UInt64.self)
            let pageCount = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .pageState(gpa: gpa, pageCount: pageCount)

        default:
            throw .operationNotSupported
        }
    }
}
