import GmemCore

/// The fixed header of the attribute state file (memfd `gmemd-state`).
///
/// Layout, little-endian, 128 bytes at offset 0, written once at creation and
/// never again (so it cannot be torn by a crash after it was stored):
///
/// | offset | size | field                                          |
/// |--------|------|------------------------------------------------|
/// | 0      | 8    | magic `"GMEMDST\0"`                            |
/// | 8      | 4    | version, 1                                     |
/// | 12     | 4    | header length, 128                             |
/// | 16     | 8    | region_id                                      |
/// | 24     | 8    | region size in bytes                           |
/// | 32     | 4    | page size                                      |
/// | 36     | 4    | folio size                                     |
/// | 40     | 4    | backing: 0 memfd, 1 secretmem                  |
/// | 44     | 4    | flags: bit 0 direct-map                        |
/// | 48     | 8    | bitmap offset (4096)                           |
/// | 56     | 8    | bitmap length in bytes (whole 64-bit words)    |
/// | 64     | 60   | reserved, zero                                 |
/// | 124    | 4    | CRC-32 (IEEE, as zlib's) of bytes 0..<124       |
///
/// The bitmap that follows holds one bit per page, 1 = shared: page `p` is
/// bit `p % 64` of the little-endian word `p / 64`.
public struct StateFileHeader: Hashable, Sendable {
    public static let magic: [UInt8] = Array("GMEMDST".utf8) + [0]
    public static let version: UInt32 = 1
    public static let length = 128
    public static let bitmapOffset: UInt64 = 4096
    static let checksumOffset = 124

    public var regionID: UInt64
    public var regionSize: UInt64
    public var pageSize: UInt32
    public var folioSize: UInt32
    public var backing: Backing
    public var directMap: Bool

    public init(regionID: UInt64, geometry: RegionGeometry, backing: Backing, directMap: Bool) {
        self.regionID = regionID
        self.regionSize = geometry.regionSize
        self.pageSize = UInt32(geometry.pageSize)
        self.folioSize = UInt32(geometry.folioSize)
        self.backing = backing
        self.directMap = directMap
    }

    /// Bytes of bitmap for the region: one bit per page, whole words. A 1 TiB
    /// region of 4 KiB pages needs 32 MiB, which the sparse memfd only
    /// allocates where bits were ever set.
    public var bitmapLength: UInt64 {
        let pages = self.regionSize / UInt64(max(self.pageSize, 1))
        return (pages + 63) / 64 * 8
    }

    /// The state file's whole size, a multiple of 4 KiB.
    public var fileSize: UInt64 {
        let end = Self.bitmapOffset + self.bitmapLength
        return (end + 4095) / 4096 * 4096
    }

    /// The 128 header bytes, checksum included.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.length)
        bytes.replaceSubrange(0..<8, with: Self.magic)
        Self.put(Self.version, at: 8, in: &bytes)
        Self.put(UInt32(Self.length), at: 12, in: &bytes)
        Self.put(self.regionID, at: 16, in: &bytes)
        Self.put(self.regionSize, at: 24, in: &bytes)
        Self.put(self.pageSize, at: 32, in: &bytes)
        Self.put(self.folioSize, at: 36, in: &bytes)
        Self.put(self.backing == .secretmem ? UInt32(1) : 0, at: 40, in: &bytes)
        Self.put(self.directMap ? UInt32(1) : 0, at: 44, in: &bytes)
        Self.put(Self.bitmapOffset, at: 48, in: &bytes)
        Self.put(self.bitmapLength, at: 56, in: &bytes)
        Self.put(CRC32.checksum(bytes[0..<Self.checksumOffset]), at: Self.checksumOffset, in: &bytes)
        return bytes
    }

    /// Decodes and checks a header. Every refusal names what is wrong.
    public init(decoding bytes: [UInt8]) throws(GmemError) {
        guard bytes.count >= Self.length else {
            throw GmemError(.invalidArgument, "state header is \(bytes.count) bytes, expected \(Self.length)")
        }
        guard Array(bytes[0..<8]) == Self.magic else {
            throw GmemError(.invalidArgument, "state header magic is wrong (not a gmemd state file)")
        }
        let version: UInt32 = Self.get(8, bytes)
        guard version == Self.version else {
            throw GmemError(
                .invalidArgument,
                "state header version is \(version), this gmemd reads version \(Self.version)"
            )
        }
        let stored: UInt32 = Self.get(Self.checksumOffset, bytes)
        let computed = CRC32.checksum(bytes[0..<Self.checksumOffset])
        guard stored == computed else {
            throw GmemError(
                .invalidArgument,
                "state header checksum mismatch: stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))"
            )
        }
        let headerLength: UInt32 = Self.get(12, bytes)
        let offset: UInt64 = Self.get(48, bytes)
        guard headerLength == UInt32(Self.length), offset == Self.bitmapOffset else {
            throw GmemError(
                .invalidArgument,
                "state header layout (length \(headerLength), bitmap at \(offset)) is not version 1's"
            )
        }
        let backing: UInt32 = Self.get(40, bytes)
        let flags: UInt32 = Self.get(44, bytes)
        guard backing <= 1, flags <= 1 else {
            throw GmemError(
                .invalidArgument,
                "state header has unknown backing \(backing) or flags 0x\(String(flags, radix: 16))"
            )
        }
        self.regionID = Self.get(16, bytes)
        self.regionSize = Self.get(24, bytes)
        self.pageSize = Self.get(32, bytes)
        self.folioSize = Self.get(36, bytes)
        self.backing = backing == 1 ? .secretmem : .memfd
        self.directMap = flags & 1 != 0
        let length: UInt64 = Self.get(56, bytes)
        guard self.pageSize > 0, length == self.bitmapLength else {
            throw GmemError(
                .invalidArgument,
                "state header bitmap length \(length) does not fit its region size \(self.regionSize)"
            )
        }
    }

    /// The differences between this header and what the daemon was started
    /// with, one phrase each; empty when they agree.
    public func mismatches(
        regionSize: UInt64,
        pageSize: Int,
        folioSize: Int,
        backing: Backing,
        directMap: Bool
    ) -> [String] {
        var result: [String] = []
        if self.regionSize != regionSize {
            result.append("region size: stored \(self.regionSize) bytes, --size asks \(regionSize)")
        }
        if Int(self.pageSize) != pageSize {
            result.append("page size: stored \(self.pageSize), this system's is \(pageSize)")
        }
        if Int(self.folioSize) != folioSize {
            result.append("folio size: stored \(self.folioSize), --folio-size asks \(folioSize)")
        }
        if self.backing != backing {
            result.append("backing: stored \(self.backing.rawValue), --backing asks \(backing.rawValue)")
        }
        if self.directMap != directMap {
            result.append(
                "direct-map: stored \(self.directMap ? "on" : "off"), --direct-map is \(directMap ? "on" : "off")"
            )
        }
        return result
    }

    private static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<MemoryLayout<T>.size {
            bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
        }
    }

    private static func get<T: FixedWidthInteger>(_ offset: Int, _ bytes: [UInt8]) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            value |= T(bytes[offset + index]) << (index * 8)
        }
        return value
    }
}

/// CRC-32 with the IEEE polynomial, bit-compatible with zlib's `crc32`.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = Self.table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
