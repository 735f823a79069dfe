import GmemProtocol
import NIOCore

/// Lets the protocol's encoders write straight into NIO's outbound buffers.
///
/// NIO's own `writeInteger` defaults to big-endian and returns the byte
/// count; these witnesses pin little-endian and discard the count.
extension ByteBuffer: @retroactive WireWriter {
    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        let _: Int = self.writeInteger(value, endianness: .little, as: T.self)
    }

    @inlinable
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        let _: Int = self.writeBytes(bytes)
    }
}

extension ByteBuffer {
    /// Appends a frame header.
    @inlinable
    mutating func writeHeader(_ header: FrameHeader) {
        self.writeMultipleIntegers(
            header.length,
            header.opcode.rawValue,
            header.flags.rawValue,
            header.id,
            header.status,
            endianness: .little
        )
    }

    /// Appends a reply with an empty payload and the given status.
    @inlinable
    mutating func writeReply(to request: FrameHeader, status: Int32 = 0) {
        self.writeHeader(.reply(to: request, status: status, payloadLength: 0))
    }

    /// Appends a reply whose payload `body` writes, patching the header's
    /// length afterwards so the payload's size need not be known up front.
    @inlinable
    mutating func writeReply(to request: FrameHeader, _ body: (inout ByteBuffer) -> Void) {
        let start = self.writerIndex
        self.writeHeader(.reply(to: request, status: 0, payloadLength: 0))
        body(&self)
        self.setInteger(UInt32(self.writerIndex - start), at: start, endianness: .little)
    }
}
