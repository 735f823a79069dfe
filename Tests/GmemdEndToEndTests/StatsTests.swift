//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// STATS: every required counter, moving by exactly what the requests did.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// The counters of section 5.12, checked by their deltas around known requests. Counters are daemon-wide: what one
/// connection does shows in another connection's STATS.
@Suite("STATS counters")
struct StatsTests {
    /// Every counter's change between two snapshots.
    private func delta(_ before: StatsReply, _ after: StatsReply) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for name in StatsReply.requiredNames {
            result[name] = Int64(bitPattern: (after[name] ?? 0) &- (before[name] ?? 0))
        }
        return result
    }

    @Test("the reply has every required counter, each name once, with a valid encoding")
    func requiredCounters() throws {
        let session = try Session()
        let stats = try session.connection.statistics()
        for name in StatsReply.requiredNames {
            #expect(stats[name] != nil, "missing \(name)")
        }
        #expect(stats["connections"] == 1)
        #expect(stats["gpc_active"] == 0)
        #expect(stats["protect_failures"] == 0)
    }

    @Test("reads, writes and their bytes count successful requests of any connection")
    func accessCounters() throws {
        let session = try Session()
        let worker = try session.connect()
        let observer = session.connection
        let handle = try worker.activateGpc(gpa: 0x4000, length: 100)
        let before = try observer.statistics()

        try worker.writeBytes(gpa: 0x1000, data: Payload.pattern(300, seed: 1))  // writes +1, bytes +300
        #expect(try worker.gpcWrite(handle: handle, offset: 10, data: [1, 2, 3]).isSuccess)  // writes +1, bytes +3
        _ = try worker.readBytes(gpa: 0x1000, length: 200)  // reads +1, bytes +200
        #expect(try worker.gpcRead(handle: handle, offset: 0, length: 50).isSuccess)  // reads +1, bytes +50
        // Refused requests are errors, not accesses.
        #expect(try worker.read(gpa: regionSize, length: 8).isError(.badAddress))
        #expect(try worker.write(gpa: regionSize, data: [1]).isError(.badAddress))
        #expect(try worker.gpcRead(handle: handle, offset: 99, length: 2).isError(.invalidArgument))
        #expect(try worker.gpcRead(handle: 777, length: 1).isError(.noSuchEntry))

        let change = self.delta(before, try observer.statistics())
        #expect(change["reads"] == 2)
        #expect(change["writes"] == 2)
        #expect(change["bytes_read"] == 250)
        #expect(change["bytes_written"] == 303)
        #expect(change["errors"] == 4)
    }

    @Test("restores and zaps count pages made accessible and inaccessible around accesses")
    func restoreAndZapCounters() throws {
        let session = try Session()
        let connection = session.connection
        let held = try connection.activateGpc(gpa: 0x8000, length: 8)
        var before = try connection.statistics()

        // Three private, unreferenced pages: each restored and zapped once.
        _ = try connection.readBytes(gpa: 0x1000 + 10, length: UInt32(2 * pageSize))
        var change = self.delta(before, try connection.statistics())
        #expect(change["restores"] == 3)
        #expect(change["zaps"] == 3)
        #expect((change["protect_calls"] ?? 0) >= 2)
        #expect(change["protect_failures"] == 0)

        // A page a GPC holds is already accessible: reading it restores and zaps nothing.
        before = try connection.statistics()
        _ = try connection.readBytes(gpa: 0x8000, length: 64)
        change = self.delta(before, try connection.statistics())
        #expect(change["restores"] == 0)
        #expect(change["zaps"] == 0)

        // Deactivating the last reference zaps; activating the first restores.
        before = try connection.statistics()
        try connection.deactivateGpc(held)
        _ = try connection.activateGpc(gpa: 0x9000, length: 8)
        change = self.delta(before, try connection.statistics())
        #expect(change["zaps"] == 1)
        #expect(change["restores"] == 1)
    }

    @Test("GPC counters: activations in total, active now, invalidations")
    func gpcCounters() throws {
        let session = try Session()
        let owner = try session.connect()
        let observer = session.connection
        let before = try observer.statistics()
        var handles: [UInt64] = []
        for index in 0..<5 { handles.append(try owner.activateGpc(gpa: 0x2000 + UInt64(index) * pageSize, length: 8)) }
        #expect(try owner.gpcActivate(gpa: 0x2000, length: 0).isError(.invalidArgument))
        try owner.deactivateGpc(handles[0])
        // Two GPCs lose their pages to a conversion.
        #expect(try observer.setAttributes(gpa: 0x3000, size: 2 * pageSize, attributes: 0).isSuccess)
        var change = self.delta(before, try observer.statistics())
        #expect(change["gpc_activations"] == 5)
        #expect(change["gpc_active"] == 4)
        #expect(change["gpc_invalidations"] == 2)

        // Invalidated GPCs are still active until deactivated; closing the connection deactivates the rest.
        owner.close()
        try waitUntil("the owner's GPCs to be released") { try statistic("gpc_active", of: observer) == 0 }
        change = self.delta(before, try observer.statistics())
        #expect(change["gpc_activations"] == 5)
        #expect(change["gpc_invalidations"] == 2)
    }

    @Test("connection counters: open now, accepted in total")
    func connectionCounters() throws {
        let session = try Session()
        let observer = session.connection
        let before = try observer.statistics()
        var extra: [RawConnection] = []
        for index in 0..<4 {
            let connection = try session.daemon.connect()
            if index % 2 == 0 { try connection.hello() }
            extra.append(connection)
        }
        try waitUntil("four more connections") {
            try statistic("connections", of: observer) == (before["connections"] ?? 0) + 4
        }
        #expect(self.delta(before, try observer.statistics())["connections_total"] == 4)
        extra.removeAll()
        try waitUntil("the four to be gone") { try statistic("connections", of: observer) == 1 }
        #expect(self.delta(before, try observer.statistics())["connections_total"] == 4)
    }
}
