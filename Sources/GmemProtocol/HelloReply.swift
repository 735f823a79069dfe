//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// HelloReply: the 48-byte payload of a successful HELLO reply.
//
//===----------------------------------------------------------------------===//

/// The payload of a successful HELLO reply: what the client may rely on for the rest of the connection.
///
/// | offset | size | field            |
/// |-------:|-----:|------------------|
/// |      0 |  u32 | version          |
/// |      4 |  u32 | features granted |
/// |      8 |  u32 | page_size        |
/// |     12 |  u32 | folio_size       |
/// |     16 |  u64 | region_size      |
/// |     24 |  u64 | region_id        |
/// |     32 |  u32 | max_payload      |
/// |     36 |  u32 | max_gpcs         |
/// |     40 |  u32 | region_flags     |
/// |     44 |  u32 | max_segments     | (0 unless DEVICE_OPS is granted)
public struct HelloReply: Sendable, Hashable {
    /// Optional protocol features, requested in HELLO and granted in its reply.
    public struct Features: OptionSet, Hashable, Sendable {
        /// The wire value.
        public var rawValue: UInt32

        /// Wraps any wire value, including bits the protocol does not define.
        @inlinable
        public init(rawValue: UInt32) {
            self.rawValue = rawValue
        }

        /// Bit 0: the server may send event frames (GPC_INVALIDATED) on this connection.
        public static let events = Features(rawValue: 1 << 0)

        /// Bit 1: READV, WRITEV, ATOMIC and GPC_ATOMIC are served, and ``HelloReply/maxSegments`` says how many
        /// segments a READV or WRITEV may carry.
        public static let deviceOps = Features(rawValue: 1 << 1)

        /// Bit 2: RING_SETUP and RING_CLOSE are served: the shared-memory transport (PROTOCOL.md section 10).
        public static let rings = Features(rawValue: 1 << 2)

        /// Every feature protocol v1 defines. A server grants `requested ∩ supported`; unknown bits are not an error.
        public static let all: Features = [.events, .deviceOps, .rings]
    }

    /// Properties of the guest memory region.
    public struct RegionFlags: OptionSet, Hashable, Sendable {
        /// The wire value.
        public var rawValue: UInt32

        /// Wraps any wire value, including bits the protocol does not define.
        @inlinable
        public init(rawValue: UInt32) {
            self.rawValue = rawValue
        }

        /// Bit 0: the memory is removed from the kernel's direct map.
        public static let noDirectMap = RegionFlags(rawValue: 1 << 0)
        /// Bit 1: the memory is backed by `memfd_secret`.
        public static let secretmem = RegionFlags(rawValue: 1 << 1)
        /// Bit 2: the region is read-only; modifying requests get `-EPERM`.
        public static let readOnly = RegionFlags(rawValue: 1 << 2)
        /// Bit 3: the daemon re-attached the region after a restart rather than creating it.
        public static let recovered = RegionFlags(rawValue: 1 << 3)
        /// Bit 4: this connection may send MAP_REGION and receive the guest memfd.
        public static let mayMap = RegionFlags(rawValue: 1 << 4)
    }

    /// Bytes in an encoded HELLO reply payload.
    public static let size = 48

    /// The protocol version the server speaks on this connection (1).
    public var version: UInt32
    /// The requested features the server grants.
    public var features: Features
    /// The page size in bytes: the unit of alignment for SET_ATTRIBUTES, DISCARD and PAGE_STATE.
    public var pageSize: UInt32
    /// The size in bytes of the folios backing the region.
    public var folioSize: UInt32
    /// Guest physical addresses `0 ..< regionSize` are valid.
    public var regionSize: UInt64
    /// Identifies the region instance.
    public var regionID: UInt64
    /// The largest payload of any frame, in either direction.
    public var maxPayload: UInt32
    /// The largest number of guest page caches active at once on a connection.
    public var maxGpcs: UInt32
    /// Properties of the region.
    public var regionFlags: RegionFlags
    /// The most segments of a READV or WRITEV; reported only with ``Features/deviceOps``, else 0 (the field was
    /// `reserved` before DEVICE_OPS, so a client that does not request it still sees 0 there).
    public var maxSegments: UInt32

    /// Creates a reply from its fields.
    public init(
        version: UInt32 = WireProtocol.version,
        features: Features,
        pageSize: UInt32,
        folioSize: UInt32,
        regionSize: UInt64,
        regionID: UInt64,
        maxPayload: UInt32,
        maxGpcs: UInt32,
        regionFlags: RegionFlags,
        maxSegments: UInt32 = 0
    ) {
        self.version = version
        self.features = features
        self.pageSize = pageSize
        self.folioSize = folioSize
        self.regionSize = regionSize
        self.regionID = regionID
        self.maxPayload = maxPayload
        self.maxGpcs = maxGpcs
        self.regionFlags = regionFlags
        self.maxSegments = features.contains(.deviceOps) ? maxSegments : 0
    }
}

extension HelloReply: WireEncodable, WireDecodable {
    /// Always ``size`` (48).
    public var encodedLength: Int {
        HelloReply.size
    }

    /// Appends the 48-byte payload.
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.version)
        writer.writeInteger(self.features.rawValue)
        writer.writeInteger(self.pageSize)
        writer.writeInteger(self.folioSize)
        writer.writeInteger(self.regionSize)
        writer.writeInteger(self.regionID)
        writer.writeInteger(self.maxPayload)
        writer.writeInteger(self.maxGpcs)
        writer.writeInteger(self.regionFlags.rawValue)
        writer.writeInteger(self.maxSegments)
    }

    /// Decodes a 48-byte payload.
    ///
    /// Unknown feature and region flag bits are kept. - Throws: ``Errno/protocolError`` if the payload is not 48
    /// bytes, or if `max_segments` is not 0 without DEVICE_OPS (it is the reserved field then).
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(HelloReply.size)
        self.version = try reader.readInteger()
        self.features = Features(rawValue: try reader.readInteger())
        self.pageSize = try reader.readInteger()
        self.folioSize = try reader.readInteger()
        self.regionSize = try reader.readInteger()
        self.regionID = try reader.readInteger()
        self.maxPayload = try reader.readInteger()
        self.maxGpcs = try reader.readInteger()
        self.regionFlags = RegionFlags(rawValue: try reader.readInteger())
        self.maxSegments = try reader.readInteger()
        guard self.features.contains(.deviceOps) || self.maxSegments == 0 else { throw .protocolError }
        try reader.expectAtEnd()
    }
}

extension HelloReply {
    /// region_id as every tool shows it: `0x` and 16 zero-padded lower-case
    /// hex digits (`0x08e3f4eef5f87f51`). gmemctl, gmemd's log, its STATUS=
    /// line and the journal's GMEM_REGION_ID all use this one function, so an
    /// operator can grep the journal for what gmemctl printed.
    public static func formatted(regionID: UInt64) -> String {
        "0x" + hex(regionID, digits: 16)
    }
}
