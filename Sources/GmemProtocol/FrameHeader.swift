//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// FrameHeader: the 16 bytes that start every frame.
//
//===----------------------------------------------------------------------===//

/// The flag bits at offset 6 of a frame header.
///
/// Requests send no flags; replies set ``reply``; event frames set ``event``. Any other combination is invalid.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    /// The wire value.
    public var rawValue: UInt16

    /// Wraps any wire value, including bits the protocol does not define.
    @inlinable
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// Bit 0: the frame answers the request with the same id.
    public static let reply = FrameFlags(rawValue: 1 << 0)

    /// Bit 1: the frame is an unsolicited event (id 0, status 0).
    public static let event = FrameFlags(rawValue: 1 << 1)
}

/// The fixed 16-byte header of every frame, in either direction.
///
/// | offset | size | field    |
/// |-------:|-----:|----------|
/// |      0 |  u32 | length   |
/// |      4 |  u16 | opcode   |
/// |      6 |  u16 | flags    |
/// |      8 |  u32 | id       |
/// |     12 |  i32 | status   |
///
/// A header is plain data: constructing or decoding one never validates it. Use ``FrameDecoder`` to check the
/// length before trusting it, and ``Request/decode(header:payload:)`` to check the rest of a request.
public struct FrameHeader: Sendable, Hashable {
    /// Bytes in the whole frame, header included.
    public var length: UInt32
    /// The operation; a reply carries its request's opcode.
    public var opcode: Opcode
    /// ``FrameFlags/reply``, ``FrameFlags/event`` or none (requests).
    public var flags: FrameFlags
    /// Chosen by the client and echoed in the reply; 0 in events.
    public var id: UInt32
    /// 0 in requests and events; 0 or a negative Linux errno in replies.
    public var status: Int32

    /// Bytes in an encoded header.
    public static let size = WireProtocol.headerSize

    /// Creates a header from its fields, without validation.
    @inlinable
    public init(length: UInt32, opcode: Opcode, flags: FrameFlags, id: UInt32, status: Int32) {
        self.length = length
        self.opcode = opcode
        self.flags = flags
        self.id = id
        self.status = status
    }

    /// Decodes a header from the first 16 bytes of `bytes`; returns `nil` if fewer than 16 bytes are available.
    ///
    /// Bytes after the first 16 are ignored. No field is validated.
    @inlinable
    public init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= FrameHeader.size else { return nil }
        self.length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        self.opcode = Opcode(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        self.flags = FrameFlags(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        self.id = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        self.status = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: Int32.self))
    }

    /// Appends the 16 encoded bytes to `writer`.
    @inlinable
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.length)
        writer.writeInteger(self.opcode.rawValue)
        writer.writeInteger(self.flags.rawValue)
        writer.writeInteger(self.id)
        writer.writeInteger(self.status)
    }

    /// Bytes after the header according to ``length``.
    ///
    /// Negative when ``length`` is below 16; ``FrameDecoder`` never yields such a header as a frame.
    @inlinable
    public var payloadLength: Int {
        Int(clamping: Int64(self.length) - Int64(FrameHeader.size))
    }

    /// Whether ``length`` lies in `16 ... 16 + maxPayload` (precedence rule 1).
    @inlinable
    public func hasValidLength(maxPayload: Int) -> Bool {
        let maximum = UInt64(FrameHeader.size) + UInt64(clamping: max(0, maxPayload))
        return self.length >= FrameHeader.size && UInt64(self.length) <= maximum
    }
}

extension FrameHeader {
    /// The frame length for `payloadLength` bytes of payload, or `nil` if it does not fit in the `u32` field.
    @inlinable
    public static func frameLength(payloadLength: Int) -> UInt32? {
        guard payloadLength >= 0, payloadLength <= WireProtocol.largestRepresentablePayload else { return nil }
        return UInt32(truncatingIfNeeded: payloadLength + FrameHeader.size)
    }

    /// The header of a request: no flags, status 0.
    ///
    /// - Throws: ``Errno/messageTooLong`` if `payloadLength` cannot be described by a `u32` frame length.
    @inlinable
    public static func request(opcode: Opcode, id: UInt32, payloadLength: Int) throws(Errno) -> FrameHeader {
        guard let length = frameLength(payloadLength: payloadLength) else { throw .messageTooLong }
        return FrameHeader(length: length, opcode: opcode, flags: [], id: id, status: 0)
    }

    /// The header of the reply to `request`: same opcode and id, ``FrameFlags/reply`` set.
    ///
    /// `status` is 0 or a negative errno (see ``Errno/wireStatus``). `payloadLength` is clamped to the range a
    /// `u32` length can describe; a server only ever passes lengths it has checked against `max_payload`.
    @inlinable
    public static func reply(to request: FrameHeader, status: Int32, payloadLength: Int) -> FrameHeader {
        let clamped = min(max(payloadLength, 0), WireProtocol.largestRepresentablePayload)
        return FrameHeader(
            length: UInt32(truncatingIfNeeded: clamped + FrameHeader.size),
            opcode: request.opcode,
            flags: .reply,
            id: request.id,
            status: status
        )
    }

    /// The header of an event frame: ``FrameFlags/event`` set, id 0, status 0.
    @inlinable
    public static func event(opcode: Opcode, payloadLength: Int) -> FrameHeader {
        let clamped = min(max(payloadLength, 0), WireProtocol.largestRepresentablePayload)
        return FrameHeader(
            length: UInt32(truncatingIfNeeded: clamped + FrameHeader.size),
            opcode: opcode,
            flags: .event,
            id: 0,
            status: 0
        )
    }
}

extension FrameHeader: CustomStringConvertible {
    /// For logs, e.g. `READ id=7 len=32 flags=0x0001 status=-14`.
    public var description: String {
        "\(self.opcode) id=\(self.id) len=\(self.length) flags=0x\(hex(self.flags.rawValue, digits: 4)) "
            + "status=\(self.status)"
    }
}
