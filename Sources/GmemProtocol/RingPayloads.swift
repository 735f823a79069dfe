//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The socket frames of the ring transport: RING_SETUP's reply and the RING_FAILED event.
//
//===----------------------------------------------------------------------===//

/// RING_SETUP's success reply: `{u32 ring_id, u32 entries, u64 data_size, u64 mmap_size}`, sent with three file
/// descriptors (the ring memfd, the submit doorbell, the completion doorbell).
public struct RingSetupReply: Hashable, Sendable, WireEncodable, WireDecodable {
    public static let size = 24

    public var ringID: UInt32
    public var entries: UInt32
    public var dataSize: UInt64
    /// Bytes to map from offset 0 of the ring memfd.
    public var mmapSize: UInt64

    public init(ringID: UInt32, entries: UInt32, dataSize: UInt64, mmapSize: UInt64) {
        self.ringID = ringID
        self.entries = entries
        self.dataSize = dataSize
        self.mmapSize = mmapSize
    }

    public var encodedLength: Int { RingSetupReply.size }

    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.ringID)
        writer.writeInteger(self.entries)
        writer.writeInteger(self.dataSize)
        writer.writeInteger(self.mmapSize)
    }

    /// - Throws: ``Errno/protocolError`` for any size but 24.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(RingSetupReply.size)
        self.ringID = try reader.readInteger()
        self.entries = try reader.readInteger()
        self.dataSize = try reader.readInteger()
        self.mmapSize = try reader.readInteger()
    }
}

/// RING_FAILED (0x81): the server stopped a ring whose shared indices were impossible; the connection closes next.
public struct RingFailedEvent: Hashable, Sendable, WireEncodable, WireDecodable {
    public static let size = 16

    public var ringID: UInt32
    /// Why, as a reply status would say it: `-EPROTO` for corrupt indices.
    public var status: Int32

    public init(ringID: UInt32, status: Int32) {
        self.ringID = ringID
        self.status = status
    }

    public var encodedLength: Int { RingFailedEvent.size }

    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.ringID)
        writer.writeInteger(self.status)
        writer.writeInteger(UInt64(0))
    }

    /// Appends the complete event frame, header included.
    public func encodeFrame(into writer: inout some WireWriter) {
        FrameHeader.event(opcode: .ringFailed, payloadLength: RingFailedEvent.size).write(to: &writer)
        self.write(to: &writer)
    }

    /// - Throws: ``Errno/protocolError`` for any size but 16 or a non-zero reserved field.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(RingFailedEvent.size)
        self.ringID = try reader.readInteger()
        self.status = try reader.readInteger()
        guard try reader.readInteger(as: UInt64.self) == 0 else { throw .protocolError }
    }
}
