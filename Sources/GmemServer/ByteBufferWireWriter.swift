import GmemProtocol
import NIOCore

/// Lets the protocol's encoders write straight into a NIO `ByteBuffer`,
/// little-endian.
///
/// A wrapper, not a `ByteBuffer: WireWriter` conformance: that would add a
/// public little-endian `writeInteger(_:)` to `ByteBuffer`, shadowing NIO's
/// big-endian default in every module that imports this one.
struct ByteBufferWireWriter: WireWriter {
    var buffer: ByteBuffer

    @inlinable
    mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        self.buffer.writeInteger(value, endianness: .little, as: T.self)
    }

    @inlinable
    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.writeBytes(bytes)
    }
}
