//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// WireEncodable and WireDecodable: payloads that encode and decode themselves.
//
//===----------------------------------------------------------------------===//

/// A payload that knows its encoded size and can write itself after a frame header.
///
/// Reply payload types (``HelloReply``, ``StatsReply``, ``PageStateReply``, ...) conform, so a server can build a
/// complete reply with ``Reply/encode(replyingTo:payload:into:)``.
public protocol WireEncodable {
    /// Exactly the number of bytes ``write(to:)`` appends.
    var encodedLength: Int { get }

    /// Appends the encoded payload, exactly ``encodedLength`` bytes.
    func write(to writer: inout some WireWriter)
}

/// A payload that can be decoded from the bytes after a frame header.
///
/// Decoding is strict: a wrong size, a non-zero reserved field or a malformed list throws
/// ``Errno/protocolError`` (the server sent bytes protocol v1 does not allow).
public protocol WireDecodable {
    /// Decodes the whole of `payload`; trailing bytes are an error.
    init(decoding payload: UnsafeRawBufferPointer) throws(Errno)
}

extension WireDecodable {
    /// Decodes the whole of `payload`; trailing bytes are an error.
    @inlinable
    public init(decoding payload: [UInt8]) throws(Errno) {
        let result = payload.withUnsafeBytes { bytes in Result { () throws(Errno) in try Self(decoding: bytes) } }
        self = try result.get()
    }
}

/// Raw bytes as a payload, e.g. the data of a READ reply.
extension UnsafeRawBufferPointer: WireEncodable {
    /// The number of bytes.
    @inlinable
    public var encodedLength: Int { self.count }

    /// Appends the bytes unchanged.
    @inlinable
    public func write(to writer: inout some WireWriter) {
        writer.writeBytes(self)
    }
}

/// Raw bytes as a payload, e.g. the data of a READ reply.
extension Array: WireEncodable where Element == UInt8 {
    /// The number of bytes.
    @inlinable
    public var encodedLength: Int { self.count }

    /// Appends the bytes unchanged.
    @inlinable
    public func write(to writer: inout some WireWriter) {
        writer.writeBytes(self)
    }
}
