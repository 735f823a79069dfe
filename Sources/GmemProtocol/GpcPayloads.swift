//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Guest page cache payloads: the GPC_ACTIVATE reply and the GPC_INVALIDATED event.
//
//===----------------------------------------------------------------------===//

/// The payload of a successful GPC_ACTIVATE reply: `{u64 handle}`.
///
/// Handles are chosen by the server, are never 0, and name a cache only on the connection that activated it.
public struct GpcActivateReply: Sendable, Hashable, WireEncodable, WireDecodable {
    /// Bytes in the encoded payload.
    public static let size = 8

    /// The new cache's handle, for GPC_READ, GPC_WRITE, GPC_REFRESH and GPC_DEACTIVATE.
    public var handle: UInt64

    /// Creates the payload.
    public init(handle: UInt64) {
        self.handle = handle
    }

    /// Always ``size`` (8).
    public var encodedLength: Int { GpcActivateReply.size }

    /// Appends the `u64`.
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.handle)
    }

    /// Decodes an 8-byte payload. - Throws: ``Errno/protocolError`` for any other size.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(GpcActivateReply.size)
        self.handle = try reader.readInteger()
    }
}

/// Why a guest page cache was invalidated.
///
/// A struct rather than an enum so that a reason added by a later server decodes; clients must treat any reason as
/// "the cache is invalid" and refresh or deactivate it.
public struct InvalidationReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public var rawValue: UInt32

    /// Wraps any wire value.
    @inlinable
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// 1: SET_ATTRIBUTES changed the attributes of a page the cache covers.
    public static let attributesChanged = InvalidationReason(rawValue: 1)

    /// 2: DISCARD discarded a page the cache covers.
    public static let discarded = InvalidationReason(rawValue: 2)

    /// `attributes_changed`, `discarded` or `reason(N)`.
    public var description: String {
        switch self {
        case .attributesChanged: return "attributes_changed"
        case .discarded: return "discarded"
        default: return "reason(\(self.rawValue))"
        }
    }
}

/// The GPC_INVALIDATED event (opcode 0x80): `{u64 handle, u32 reason, u32 reserved = 0}`.
///
/// Sent only on connections that were granted ``HelloReply/Features/events``, in a frame with flags EVENT, id 0
/// and status 0. An event may arrive between any two replies; it never splits a frame. After it, GPC_READ and
/// GPC_WRITE on the handle fail with `-ESTALE` until a GPC_REFRESH succeeds.
public struct GpcInvalidatedEvent: Sendable, Hashable {
    /// Bytes in the encoded payload.
    public static let size = 16

    /// The invalidated cache.
    public var handle: UInt64
    /// What invalidated it.
    public var reason: InvalidationReason

    /// Creates an event.
    public init(handle: UInt64, reason: InvalidationReason) {
        self.handle = handle
        self.reason = reason
    }

    /// The frame header for this event.
    public var header: FrameHeader {
        FrameHeader.event(opcode: .gpcInvalidated, payloadLength: GpcInvalidatedEvent.size)
    }

    /// Appends the complete event frame, header included.
    public func encodeFrame(into writer: inout some WireWriter) {
        self.header.write(to: &writer)
        self.write(to: &writer)
    }
}

extension GpcInvalidatedEvent: WireEncodable, WireDecodable {
    /// Always ``size`` (16).
    public var encodedLength: Int { GpcInvalidatedEvent.size }

    /// Appends the 16-byte payload.
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.handle)
        writer.writeInteger(self.reason.rawValue)
        writer.writeInteger(UInt32(0))
    }

    /// Decodes a 16-byte payload.
    ///
    /// - Throws: ``Errno/protocolError`` if the payload is not 16 bytes or the reserved field is not 0.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(GpcInvalidatedEvent.size)
        self.handle = try reader.readInteger()
        self.reason = InvalidationReason(rawValue: try reader.readInteger())
        try reader.readZeroUInt32()
    }
}
