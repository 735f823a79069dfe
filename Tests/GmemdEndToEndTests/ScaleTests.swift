//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Many references on one page: saturation on the wire, and the cost of letting go.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tens of thousands of GPCs on a single page: what PAGE_STATE reports, and whether releasing them stays cheap.
@Suite("Many references on one page")
struct ScaleTests {
    /// Activates `count` one-byte GPCs on `page` with pipelined batches; returns their handles in order.
    private func activate(_ count: Int, on page: UInt64, with connection: RawConnection) throws -> [UInt64] {
        var handles: [UInt64] = []
        handles.reserveCapacity(count)
        while handles.count < count {
            let first = handles.count
            let batch = min(4096, count - first)
            var bytes: [UInt8] = []
            for index in first..<(first + batch) {
                let payload = Payload.gpcActivate(gpa: page + UInt64(index % Int(pageSize)), length: 1)
                bytes += RawConnection.frame(opcode: .gpcActivate, id: UInt32(index), payload: payload)
            }
            try connection.send(bytes)
            for index in first..<(first + batch) {
                let frame = try #require(try connection.receiveFrame(timeout: .seconds(10)))
                try #require(
                    frame.header.id == UInt32(index) && frame.header.status == 0,
                    "activation \(index): \(frame.header)"
                )
                handles.append(try GpcActivateReply(decoding: frame.payload).handle)
            }
        }
        return handles
    }

    @Test("PAGE_STATE saturates a page's refcount at 65535; the real count goes on")
    func refcountSaturates() throws {
        let session = try Session(arguments: ["--max-gpcs", "70000"])
        let holder = try session.connect()
        let probe = session.connection
        let page: UInt64 = 0x7000
        let total = 65_537
        let handles = try self.activate(total, on: page, with: holder)
        #expect(Set(handles).count == total)
        #expect(try probe.pageState(at: page).refcount == 65535)
        #expect(try statistic("gpc_active", of: probe) == UInt64(total))
        try holder.deactivateGpc(handles[0])
        try holder.deactivateGpc(handles[1])
        #expect(try probe.pageState(at: page).refcount == 65535)
        try holder.deactivateGpc(handles[2])
        #expect(try probe.pageState(at: page).refcount == 65534)
        try expectPages([page: 65534], in: session.daemon, probe: probe)
        // Releasing 65534 GPCs of one page is the subject of the next test; it is not waited for here.
        session.daemon.kill()
    }

    @Test("closing a connection with 16384 GPCs on one page releases them promptly without stalling other clients")
    func teardownIsCheap() throws {
        // Two event loops and several bystanders: at least one bystander shares the holder's loop.
        let session = try Session(arguments: ["--max-gpcs", "20000", "--threads", "2"])
        let holder = try session.connect()
        var bystanders: [RawConnection] = []
        for _ in 0..<4 { bystanders.append(try session.connect()) }
        let count = 16_384
        let started = ContinuousClock.now
        _ = try self.activate(count, on: 0x3000, with: holder)
        let activation = started.duration(to: .now)
        #expect(try statistic("gpc_active", of: session.connection) == UInt64(count))

        let closed = ContinuousClock.now
        holder.close()
        var worstPing: Duration = .zero
        var released: Duration? = nil
        while closed.duration(to: .now) < .seconds(10) {
            for bystander in bystanders {
                let sent = ContinuousClock.now
                // A generous timeout: the delay is what is measured, and asserted below.
                #expect(try bystander.request(opcode: .ping, payload: [1], timeout: .seconds(30)).payload == [1])
                worstPing = max(worstPing, sent.duration(to: .now))
            }
            if try statistic("gpc_active", of: session.connection) == 0 {
                released = closed.duration(to: .now)
                break
            }
        }
        let releaseTime = try #require(
            released,
            "16384 GPCs not released 10 s after the close (activating them took \(activation))"
        )
        #expect(releaseTime < .seconds(2), "releasing took \(releaseTime); activating them took \(activation)")
        #expect(worstPing < .seconds(1), "a bystander's PING took \(worstPing) while the GPCs were released")
        try expectPages([0x3000: 0], in: session.daemon, probe: session.connection)
    }
}
