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
    ///    the opcode's size (`16 + len` for WRITE and GPC_WRITE, `8 + 16 × nsegs` for READV plus the lengths' sum for
    ///    WRITEV), every flags and reserved field is 0, SET_ATTRIBUTES sets no bit but PRIVATE, and ATOMIC and
    ///    GPC_ATOMIC name a known operation and width and set no operand bit they do not use:
    ///    otherwise ``Errno/invalidArgument``.
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

        case .readv:
            return .readv(segments: try Request.readSegmentTable(from: &reader).segments)

        case .writev:
            let (segments, total) = try Request.readSegmentTable(from: &reader, withData: true)
            try reader.expectReadableBytes(Int(clamping: total))
            return .writev(segments: segments, data: reader.readRemainingBytes())

        case .atomic:
            let gpa = try reader.readInteger(as: UInt64.self)
            let (operand, expected) = (try reader.readInteger(as: UInt64.self), try reader.readInteger(as: UInt64.self))
            let arguments = try Request.readAtomicArguments(operand: operand, expected: expected, from: &reader)
            try reader.readZeroUInt32()
            return .atomic(gpa: gpa, arguments)

        case .gpcAtomic:
            let handle = try reader.readInteger(as: UInt64.self)
            let (operand, expected) = (try reader.readInteger(as: UInt64.self), try reader.readInteger(as: UInt64.self))
            let offset = try reader.readInteger(as: UInt32.self)
            let arguments = try Request.readAtomicArguments(operand: operand, expected: expected, from: &reader)
            return .gpcAtomic(handle: handle, offset: offset, arguments)

        case .ringSetup:
            let entries = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .ringSetup(entries: entries, dataSize: try reader.readInteger(as: UInt64.self))

        case .ringClose:
            let ringID = try reader.readInteger(as: UInt32.self)
            try reader.readZeroUInt32()
            return .ringClose(ringID: ringID)

        case .mapRegion:
            try reader.readZeroUInt32()
            try reader.readZeroUInt32()
            return .mapRegion

        default:
            throw .operationNotSupported
        }
    }

    /// Reads `{u32 nsegs, u32 flags = 0}` and the segment table. Without data, the table must end the payload;
    /// with it, returns the sum of the lengths the data must match.
    private static func readSegmentTable(
        from reader: inout WireReader,
        withData: Bool = false
    ) throws(Errno) -> (segments: [WireSegment], total: UInt64) {
        let count = Int(try reader.readInteger(as: UInt32.self))
        try reader.readZeroUInt32()
        // Check the table's size before allocating for it: `count` is the client's word.
        let tableSize = count * WireSegment.size
        guard withData ? reader.readableBytes >= tableSize : reader.readableBytes == tableSize else {
            throw .invalidArgument
        }
        var segments: [WireSegment] = []
        segments.reserveCapacity(count)
        var total: UInt64 = 0
        for _ in 0..<count {
            let segment = WireSegment(gpa: try reader.readInteger(), length: try reader.readInteger())
            try reader.readZeroUInt32()
            total += UInt64(segment.length)
            segments.append(segment)
        }
        return (segments, total)
    }

    /// Reads `{u8 op, u8 width, u16 flags = 0}` and checks the arguments' rule 4.
    private static func readAtomicArguments(
        operand: UInt64,
        expected: UInt64,
        from reader: inout WireReader
    ) throws(Errno) -> AtomicArguments {
        guard let op = AtomicOp(rawValue: try reader.readInteger(as: UInt8.self)) else { throw .invalidArgument }
        let width = try reader.readInteger(as: UInt8.self)
        guard try reader.readInteger(as: UInt16.self) == 0 else { throw .invalidArgument }
        let arguments = AtomicArguments(op: op, width: width, operand: operand, expected: expected)
        guard arguments.isWellFormed else { throw .invalidArgument }
        return arguments
    }
}
