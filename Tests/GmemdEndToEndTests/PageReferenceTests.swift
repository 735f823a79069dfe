//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Reference-counted restore and zap across connections, checked against /proc/PID/maps.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// The failure cases of the seed design (kernel-background.md), replayed over the wire by several clients: a
/// private page is mapped in the daemon exactly while someone holds a reference, whatever the order of events.
/// After every step, PAGE_STATE and the kernel's `/proc/PID/maps` must agree.
@Suite("Page references across connections")
struct PageReferenceTests {
    @Test("the seed's interleaving: map(A) map(B) read(A) unmap(A) read(B) unmap(B)")
    func seedInterleaving() throws {
        let session = try Session()
        let probe = session.connection
        let page: UInt64 = 0x2000
        let a = try session.connect()
        let b = try session.connect()
        try expectPages([page: 0], in: session.daemon, probe: probe)

        let handleA = try a.activateGpc(gpa: page, length: 64)
        try expectPages([page: 1], in: session.daemon, probe: probe)
        // The seed design refused this second cache with -EINVAL.
        let handleB = try b.activateGpc(gpa: page + 64, length: 64)
        try expectPages([page: 2], in: session.daemon, probe: probe)

        // A transient READ by A takes and drops its own reference; the page stays mapped for the GPCs.
        try a.writeBytes(gpa: page, data: Payload.pattern(128, seed: 11))
        #expect(try a.readBytes(gpa: page, length: 128) == Payload.pattern(128, seed: 11))
        try expectPages([page: 2], in: session.daemon, probe: probe)

        try a.deactivateGpc(handleA)
        try expectPages([page: 1], in: session.daemon, probe: probe)

        // With one bit instead of a count, the page would be zapped now and this read would fault the daemon.
        let throughB = try b.gpcRead(handle: handleB, length: 64)
        #expect(throughB.isSuccess)
        #expect(throughB.payload == Array(Payload.pattern(128, seed: 11)[64..<128]))
        #expect(try b.readBytes(gpa: page, length: 16) == Array(Payload.pattern(128, seed: 11).prefix(16)))
        #expect(session.daemon.isRunning)
        try expectPages([page: 1], in: session.daemon, probe: probe)

        try b.deactivateGpc(handleB)
        try expectPages([page: 0], in: session.daemon, probe: probe)
        let state = try probe.pageState(at: page)
        #expect(state.isPrivate && !state.isAccessible)
        #expect(try session.daemon.mapsProtection(ofPageAt: page) == .noneShared)
    }

    @Test("eight clients hold GPCs on one gfn and let go in random order", arguments: [UInt64(1), 2, 3])
    func eightClients(seed: UInt64) throws {
        let session = try Session()
        let probe = session.connection
        let page: UInt64 = 0x5000
        var generator = SplitMix64(state: seed)
        var clients: [(connection: RawConnection, handle: UInt64, offset: UInt64)] = []
        for index in 0..<8 {
            let connection = try session.connect()
            let offset = UInt64(index) * 64 + UInt64(index)  // Different, unaligned windows in the same page.
            let handle = try connection.activateGpc(gpa: page + offset, length: 32)
            clients.append((connection, handle, offset))
            try expectPages([page: UInt16(index + 1)], in: session.daemon, probe: probe)
        }
        for (index, client) in clients.enumerated() {
            #expect(
                try client.connection.gpcWrite(handle: client.handle, data: Payload.pattern(32, seed: index)).isSuccess
            )
        }

        clients.shuffle(using: &generator)
        var remaining = clients.count
        for client in clients {
            try client.connection.deactivateGpc(client.handle)
            remaining -= 1
            try expectPages([page: UInt16(remaining)], in: session.daemon, probe: probe)
            // Every client still holding its GPC can use it; the departed one cannot.
            #expect(try client.connection.gpcRead(handle: client.handle, length: 1).isError(.noSuchEntry))
        }
        // The data written through the caches is in guest memory.
        for client in clients {
            let index = Int(client.offset / 64)
            #expect(try probe.readBytes(gpa: page + client.offset, length: 32) == Payload.pattern(32, seed: index))
        }
        try expectPages([page: 0, page - pageSize: 0, page + pageSize: 0], in: session.daemon, probe: probe)
    }

    @Test("interleaved reads through the remaining GPCs while others deactivate")
    func readsWhileDeactivating() throws {
        let session = try Session()
        let probe = session.connection
        let page: UInt64 = 0x9000
        var clients: [(RawConnection, UInt64)] = []
        for index in 0..<8 {
            let connection = try session.connect()
            clients.append((connection, try connection.activateGpc(gpa: page + UInt64(index) * 8, length: 8)))
        }
        while let (leaving, handle) = clients.popLast() {
            try leaving.deactivateGpc(handle)
            for (connection, remainingHandle) in clients {
                #expect(try connection.gpcRead(handle: remainingHandle, length: 8).isSuccess)
                #expect(try connection.read(gpa: page, length: 8).isSuccess)
            }
            try expectPages([page: UInt16(clients.count)], in: session.daemon, probe: probe)
        }
    }

    @Test("shared pages are always mapped; converting back to private unmaps an unreferenced page")
    func sharedPages() throws {
        let session = try Session()
        let connection = session.connection
        let range: UInt64 = 0x20000
        #expect(try connection.setAttributes(gpa: range, size: 4 * pageSize, attributes: 0).isSuccess)
        let shared = try connection.pageStates(gpa: range, count: 4)
        #expect(shared.allSatisfy { !$0.isPrivate && $0.isAccessible && $0.refcount == 0 })
        let first = Int(range / pageSize)
        #expect(
            try session.daemon.mapsProtections(ofRegionIn: first..<(first + 4)).allSatisfy { $0 == .readWriteShared }
        )

        // Making the range private again invalidates the GPC on it and unmaps all four pages.
        let handle = try connection.activateGpc(gpa: range + pageSize, length: 8)
        #expect(try connection.setAttributes(gpa: range, size: 4 * pageSize, attributes: 8).isSuccess)
        #expect(try connection.gpcRead(handle: handle, length: 8).isError(.stale))
        try expectPages(
            [range: 0, range + pageSize: 0, range + 2 * pageSize: 0, range + 3 * pageSize: 0],
            in: session.daemon,
            probe: connection
        )
        #expect(try connection.pageStates(gpa: range, count: 4).allSatisfy { $0.isPrivate })
    }

    @Test("a READ and a WRITE across held, unreferenced and shared pages leave each page as it was")
    func mixedPagesAccess() throws {
        let session = try Session()
        let connection = session.connection
        let base: UInt64 = 0x40000
        let handle = try connection.activateGpc(gpa: base, length: 8)  // page 0: held
        // Page 2: shared.
        #expect(try connection.setAttributes(gpa: base + 2 * pageSize, size: pageSize, attributes: 0).isSuccess)
        let data = Payload.pattern(Int(4 * pageSize) - 200, seed: 17)
        try connection.writeBytes(gpa: base + 100, data: data)
        #expect(try connection.readBytes(gpa: base + 100, length: UInt32(data.count)) == data)
        try expectPages([base: 1, base + pageSize: 0, base + 3 * pageSize: 0], in: session.daemon, probe: connection)
        let shared = try connection.pageState(at: base + 2 * pageSize)
        #expect(!shared.isPrivate && shared.isAccessible && shared.refcount == 0)
        #expect(try session.daemon.mapsProtection(ofPageAt: base + 2 * pageSize) == .readWriteShared)
        #expect(try connection.gpcRead(handle: handle, length: 8).payload == Array(repeating: 0, count: 8))
    }
}
