import GmemProtocol
import NIOCore

/// Lets the protocol's encoders write straight into NIO's outbound buffers.
///
/// NIO's own `writeInteger` defaults to big-endian and returns the byte
/// count; these witnesses pin little-endian and discard the count.
extension ByteBuffer: WireWriter {
    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        let _: Int = self.writeInteger(value, endianness: .little, as: T.self)
    }

    @inlinable
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        let _: Int = self.writeBytes(bytes)
    }
}
