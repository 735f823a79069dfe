//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Error reply payloads: the only two cases where an error reply is not empty.
//
//===----------------------------------------------------------------------===//

/// The payload of the `-EPROTONOSUPPORT` reply to a HELLO with an unsupported version: `{u32 version}`, the
/// highest version the server supports.
public struct VersionNotSupportedPayload: Sendable, Hashable, WireEncodable, WireDecodable {
    /// Bytes in the encoded payload.
    public static let size = 4

    /// The highest protocol version the server supports.
    public var highestSupportedVersion: UInt32

    /// Creates the payload; by default for this module's ``WireProtocol/version``.
    public init(highestSupportedVersion: UInt32 = WireProtocol.version) {
        self.highestSupportedVersion = highestSupportedVersion
    }

    /// Always ``size`` (4).
    public var encodedLength: Int { VersionNotSupportedPayload.size }

    /// Appends the `u32`.
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.highestSupportedVersion)
    }

    /// Decodes a 4-byte payload. - Throws: ``Errno/protocolError`` for any other size.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(VersionNotSupportedPayload.size)
        self.highestSupportedVersion = try reader.readInteger()
    }
}

/// The payload of an error reply to a READ or WRITE that failed after partial progress: `{u64 bytes completed}`.
///
/// READ replies with partial progress carry no data: the client re-reads what it needs. Every other error reply has
/// an empty payload, except ``VersionNotSupportedPayload``.
public struct PartialProgressPayload: Sendable, Hashable, WireEncodable, WireDecodable {
    /// Bytes in the encoded payload.
    public static let size = 8

    /// Bytes read or written before the failure, counted from the request's `gpa`.
    public var bytesCompleted: UInt64

    /// Creates the payload.
    public init(bytesCompleted: UInt64) {
        self.bytesCompleted = bytesCompleted
    }

    /// Always ``size`` (8).
    public var encodedLength: Int { PartialProgressPayload.size }

    /// Appends the `u64`.
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.bytesCompleted)
    }

    /// Decodes an 8-byte payload. - Throws: ``Errno/protocolError`` for any other size.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(PartialProgressPayload.size)
        self.bytesCompleted = try reader.readInteger()
    }
}
