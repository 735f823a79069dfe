import GmemCore
import GmemSystemd
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("the attribute state file")
struct StateFileTests {
    let pageSize = GuestMemory.systemPageSize

    func header(size: UInt64 = 8 << 20, id: UInt64 = 0x1234_5678_9abc_def0) throws -> StateFileHeader {
        StateFileHeader(
            regionID: id,
            geometry: try RegionGeometry(regionSize: size, pageSize: self.pageSize, folioSize: self.pageSize),
            backing: .memfd,
            directMap: false
        )
    }

    @Test("the header round-trips and its checksum is zlib's CRC-32")
    func headerRoundTrip() throws {
        let header = try self.header()
        let bytes = header.encoded()
        #expect(bytes.count == 128)
        #expect(try StateFileHeader(decoding: bytes) == header)
        // An independent bitwise CRC-32 agrees with the stored one (zlib.crc32 of bytes 0..<124).
        #expect(Self.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        let stored = bytes[124..<128].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(stored == Self.crc32(Array(bytes[0..<124])))
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    @Test(
        "a flipped bit, a wrong magic or version is refused by name",
        arguments: [(0, "magic"), (8, "version"), (30, "checksum")]
    )
    func headerCorruption(offset: Int, word: String) throws {
        var bytes = try self.header().encoded()
        bytes[offset] ^= 0x01
        #expect {
            try StateFileHeader(decoding: bytes)
        } throws: { error in
            (error as? GmemError)?.reason.contains(word) == true
        }
    }

    @Test("a 1 TiB region's bitmap is 32 MiB and sparse")
    func terabyteSizing() throws {
        let header = try self.header(size: 1 << 40)
        #expect(header.bitmapLength == (1 << 40) / UInt64(self.pageSize) / 8)
        let state = try StateFile.create(header)
        var status = stat()
        fstat(state.fileDescriptor, &status)
        #expect(UInt64(status.st_size) == header.fileSize)
        #expect(status.st_blocks * 512 <= 64 << 10, "only the header page is allocated: \(status.st_blocks) blocks")
        state.setPages(100_000_000..<100_000_100, shared: true)
        var runs: [Range<Int>] = []
        try state.forEachSharedRun { (run: Range<Int>) throws(GmemError) in runs.append(run) }
        #expect(runs == [100_000_000..<100_000_100])
    }

    @Test("bits set and clear in place; runs merge across words and skip holes")
    func bitmapRuns() throws {
        let state = try StateFile.create(try self.header())
        state.setPages(3..<5, shared: true)
        state.setPages(60..<200, shared: true)
        state.setPages(100..<101, shared: false)
        state.setPages(1500..<2048, shared: true)
        #expect(state.isShared(page: 3) && !state.isShared(page: 5) && !state.isShared(page: 100))
        var runs: [Range<Int>] = []
        try state.forEachSharedRun { (run: Range<Int>) throws(GmemError) in runs.append(run) }
        #expect(runs == [3..<5, 60..<100, 101..<200, 1500..<2048])
    }

    @Test("recovery restores contents and attributes from duplicated fds, as after a restart")
    func recoverInProcess() throws {
        let configuration = GuestMemory.Configuration(size: 8 << 20)
        var (memory, state) = try GuestMemory.makePersistent(configuration, regionID: 42)
        let pattern: [UInt8] = (0..<9000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try pattern.withUnsafeBytes { try memory.write(at: 5000, from: $0) }
        try memory.setAttributes(at: 0, size: 2 << 20, shared: true)  // a whole chunk: the bulk path
        try memory.setAttributes(
            at: GuestPhysicalAddress(UInt64(3 * self.pageSize)),
            size: UInt64(self.pageSize),
            shared: false
        )
        try memory.setAttributes(
            at: GuestPhysicalAddress(UInt64(600 * self.pageSize)),
            size: UInt64(7 * self.pageSize),
            shared: true
        )
        // The fd store keeps duplicates; the first process's own fds die with it.
        let guestCopy = dup(memory.region.fileDescriptor)
        let stateCopy = dup(state.fileDescriptor)
        (memory, state) = try GuestMemory.makePersistent(configuration, regionID: 1)  // drops the originals
        let recoveredState = try StateFile.adopt(stateCopy)
        #expect(recoveredState.header.regionID == 42)
        let recovered = try GuestMemory.recover(
            guestDescriptor: guestCopy,
            state: recoveredState,
            configuration: configuration
        )
        var readBack = [UInt8](repeating: 0, count: pattern.count)
        try readBack.withUnsafeMutableBytes { try recovered.read(at: 5000, into: $0) }
        #expect(readBack == pattern)
        let states = try recovered.pageStates(at: 0, pageCount: 1024)
        let sharedPages = states.indices.filter { !states[$0].isPrivate }
        let expected = Array(0..<512).filter { $0 != 3 } + Array(600..<607)
        #expect(sharedPages == expected)
        #expect(recovered.invariantViolations().isEmpty)
    }

    @Test("geometry that disagrees with the flags is named in the refusal")
    func geometryMismatch() throws {
        let (memory, state) = try GuestMemory.makePersistent(GuestMemory.Configuration(size: 8 << 20), regionID: 7)
        let guestCopy = dup(memory.region.fileDescriptor)
        defer { close(guestCopy) }
        #expect {
            try GuestMemory.recover(
                guestDescriptor: guestCopy,
                state: state,
                configuration: GuestMemory.Configuration(size: 4 << 20, backing: .memfd)
            )
        } throws: { error in
            (error as? GmemError)?.reason.contains("region size: stored 8388608 bytes, --size asks 4194304") == true
        }
    }
}
