//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// MAP_REGION against the real gmemd: who may receive the guest memfd, and that it is the region itself
// (PROTOCOL.md section 5.20).
//
//===----------------------------------------------------------------------===//

import CGmemSys
import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("MAP_REGION")
struct MapRegionTests {
    @Test("without --allow-map-uid or --allow-map-group nobody maps, the daemon's own uid and root included")
    func refusedByDefault() throws {
        let session = try Session()
        #expect(!session.hello.regionFlags.contains(.mayMap))
        #expect(try session.connection.mapRegion().errno == .notPermitted)
        #expect(session.connection.receivedDescriptors.isEmpty)
        try session.connection.requirePing()
    }

    @Test("a peer named by --allow-map-uid gets the guest memfd: the same bytes as gmemd serves, both ways")
    func mapsTheRegion() throws {
        let session = try Session(arguments: ["--allow-map-uid", "\(getuid())"])
        #expect(session.hello.regionFlags.contains(.mayMap))
        let connection = session.connection
        try connection.writeBytes(gpa: 0x5000, data: Array("written over the socket".utf8))
        let reply = try connection.mapRegion()
        try reply.requireSuccess()
        let payload = try reply.payload.withUnsafeBytes { try MapRegionReply(decoding: $0) }
        #expect(payload.mmapSize == session.hello.regionSize)
        #expect(payload.regionID == session.hello.regionID)
        #expect(connection.receivedDescriptors.count == 1)
        let memfd = try #require(connection.receivedDescriptors.first)
        var status = stat()
        #expect(fstat(memfd, &status) == 0 && UInt64(status.st_size) == session.hello.regionSize)

        let size = Int(payload.mmapSize)
        let mapping = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0))
        #expect(mapping != MAP_FAILED)
        defer { munmap(mapping, size) }
        let bytes = mapping.assumingMemoryBound(to: UInt8.self)
        #expect(Array(UnsafeBufferPointer(start: bytes + 0x5000, count: 23)) == Array("written over the socket".utf8))
        for (index, byte) in "written by the vCPU".utf8.enumerated() { bytes[0x9000 + index] = byte }
        #expect(try connection.readBytes(gpa: 0x9000, length: 19) == Array("written by the vCPU".utf8))
        // The peer's mapping is its own: gmemd's pages stay unreferenced and inaccessible to gmemd.
        try expectPages([0x5000: 0, 0x9000: 0], in: session.daemon, probe: connection)
        // Another connection of the same peer may map it too; the memfd stays open in gmemd.
        let second = try session.connect()
        try second.mapRegion().requireSuccess()
        try connection.requirePing()
    }

    @Test("--allow-map-group admits by gid and by group name")
    func mapsByGroup() throws {
        var names = [String(getgid())]
        if let entry = getgrgid(getgid()) { names.append(String(cString: entry.pointee.gr_name)) }
        for group in names {
            let session = try Session(arguments: ["--allow-map-group", group])
            #expect(session.hello.regionFlags.contains(.mayMap), "--allow-map-group \(group)")
            try session.connection.mapRegion().requireSuccess()
        }
    }

    @Test("a read-only connection never maps, even when named")
    func readOnlyRefused() throws {
        let session = try Session(arguments: ["--allow-map-uid", "\(getuid())", "--read-only-gid", "\(getgid())"])
        #expect(session.hello.regionFlags.contains(.readOnly))
        #expect(!session.hello.regionFlags.contains(.mayMap))
        #expect(try session.connection.mapRegion().errno == .notPermitted)
        #expect(session.connection.receivedDescriptors.isEmpty)
    }

    @Test("the payload rules: 8 bytes, flags and reserved 0")
    func payloadRules() throws {
        let session = try Session(arguments: ["--allow-map-uid", "\(getuid())"])
        for payload in [
            [UInt8](), [UInt8](repeating: 0, count: 4), [1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            let reply = try session.connection.request(opcode: .mapRegion, payload: payload)
            #expect(reply.errno == .invalidArgument, "payload \(payload)")
        }
        #expect(session.connection.receivedDescriptors.isEmpty)
    }

    @Test("secretmem cannot back a memslot: -EOPNOTSUPP, and HELLO does not offer it")
    func secretmemRefused() throws {
        let probe = cgmem_memfd_secret(UInt32(O_CLOEXEC))
        guard probe >= 0 else {
            print("MapRegionTests.secretmemRefused: skipped, memfd_secret is unavailable here (errno \(errno))")
            return
        }
        close(probe)
        let session = try Session(arguments: ["--backing", "secretmem", "--allow-map-uid", "\(getuid())"])
        #expect(session.hello.regionFlags.contains(.secretmem))
        #expect(!session.hello.regionFlags.contains(.mayMap))
        #expect(try session.connection.mapRegion().errno == .operationNotSupported)
        #expect(session.connection.receivedDescriptors.isEmpty)
    }
}
