//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// MAP_REGION's reply: the guest memfd itself, for the one process that stands in for KVM.
//
//===----------------------------------------------------------------------===//

/// MAP_REGION's success reply: `{u64 mmap_size, u64 region_id}`, sent with one file descriptor, the guest memfd.
public struct MapRegionReply: Hashable, Sendable, WireEncodable, WireDecodable {
    public static let size = 16

    /// Bytes to map from offset 0 of the memfd: the whole region.
    public var mmapSize: UInt64
    /// HELLO's `region_id`: the region this memfd holds.
    public var regionID: UInt64

    public init(mmapSize: UInt64, regionID: UInt64) {
        self.mmapSize = mmapSize
        self.regionID = regionID
    }

    public var encodedLength: Int { MapRegionReply.size }

    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.mmapSize)
        writer.writeInteger(self.regionID)
    }

    /// - Throws: ``Errno/protocolError`` for any size but 16.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(MapRegionReply.size)
        self.mmapSize = try reader.readInteger()
        self.regionID = try reader.readInteger()
    }
}
