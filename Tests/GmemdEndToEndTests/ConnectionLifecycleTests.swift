//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Connection lifecycle: truncated frames, the frame timeout, churn, the connection limit.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// How connections come and go, and what they leave behind: nothing.
@Suite("Connection lifecycle")
struct ConnectionLifecycleTests {
    @Test("a frame cut off mid-payload, then close: the daemon keeps serving the others")
    func truncatedFrameThenClose() throws {
        let session = try Session()
        let bystander = session.connection
        let handle = try bystander.activateGpc(gpa: 0x1000, length: 8)

        for afterHello in [false, true] {
            let victim = try session.daemon.connect()
            if afterHello { try victim.hello() }
            let payload = Payload.write(gpa: 0x1000, data: Payload.pattern(200, seed: 1))
            try victim.sendFrame(
                opcode: .write,
                id: 5,
                payload: Array(payload.prefix(60)),
                length: UInt32(16 + payload.count)
            )
            victim.close()
            try bystander.requirePing()
        }
        try waitUntil("the two dropped connections to be gone") { try statistic("connections", of: bystander) == 1 }
        // The cut-off WRITE never happened, the bystander's GPC is intact, and new clients are served.
        #expect(try bystander.readBytes(gpa: 0x1000, length: 8) == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try bystander.gpcRead(handle: handle, length: 8).isSuccess)
        let newcomer = try session.connect()
        try newcomer.requirePing()
        #expect(session.daemon.isRunning)
    }

    @Test("a frame left half-sent is closed after --frame-timeout while others keep being served")
    func frameTimeout() throws {
        let session = try Session(arguments: ["--frame-timeout", "1"])
        let stalled = try session.connect()
        _ = try stalled.activateGpc(gpa: 0x2000, length: 8)
        let steady = session.connection
        let started = ContinuousClock.now
        try stalled.sendFrame(opcode: .ping, id: 1, payload: [1, 2, 3, 4], length: 16 + 64)

        var pings = 0
        var closedAfter: Duration? = nil
        while closedAfter == nil {
            // Each round waits up to 50 ms for the close, then proves the other connection is served.
            if try stalled.waitForClose(timeout: .milliseconds(50)) {
                closedAfter = started.duration(to: .now)
            }
            try steady.requirePing([UInt8(truncatingIfNeeded: pings)])
            pings += 1
            if started.duration(to: .now) > .seconds(4) { break }
        }
        let elapsed = try #require(closedAfter, "the stalled connection was not closed within 4 s")
        #expect(elapsed >= .milliseconds(900), "closed after \(elapsed), before the 1 s timeout")
        #expect(elapsed <= .seconds(3), "closed after \(elapsed)")
        #expect(pings >= 10)
        // Closing released the stalled connection's GPC.
        try waitUntil("the stalled connection's GPC to be released") { try steady.pageState(at: 0x2000).refcount == 0 }
        try expectPages([0x2000: 0], in: session.daemon, probe: steady)
    }

    @Test("a frame trickled byte by byte is still cut off: the timeout counts from the frame's first byte")
    func trickledFrame() throws {
        let session = try Session(arguments: ["--frame-timeout", "1"])
        // Before HELLO: the timeout guards a connection from its first byte.
        let trickler = try session.daemon.connect()
        let frame = RawConnection.frame(opcode: .hello, id: 3, payload: Payload.hello())
        let started = ContinuousClock.now
        var closedAfter: Duration? = nil
        for byte in frame.dropLast() {
            // One byte every 100 ms: the 24-byte HELLO cannot complete within the 1 s timeout.
            do {
                try trickler.send([byte])
            } catch let error as GmemTestingError where error.code == .connectionClosed {
                closedAfter = started.duration(to: .now)
                break
            }
            if try trickler.waitForClose(timeout: .milliseconds(100)) {
                closedAfter = started.duration(to: .now)
                break
            }
            try session.connection.requirePing()
            if started.duration(to: .now) > .seconds(4) { break }
        }
        let elapsed = try #require(closedAfter, "a trickled frame kept the connection open for 4 s")
        #expect(elapsed >= .milliseconds(900) && elapsed <= .seconds(3), "closed after \(elapsed)")
    }

    @Test("an idle connection between frames is not subject to the frame timeout")
    func idleIsNotStalled() throws {
        let session = try Session(arguments: ["--frame-timeout", "1"])
        // No partial frame: waiting 1.5 s must not close the connection.
        #expect(try session.connection.waitForClose(timeout: .milliseconds(1500)) == false)
        try session.connection.requirePing()
    }

    @Test("1000 connections opened and dropped, with and without HELLO, leave nothing behind")
    func connectionChurn() throws {
        let session = try Session()
        let probe = session.connection
        let before = try statistic("connections_total", of: probe)
        #expect(before == 1)
        let gpas: [UInt64] = (0..<8).map { 0x10000 + UInt64($0) * pageSize }
        var opened = 0
        for batch in 0..<20 {
            var batchConnections: [RawConnection] = []
            for index in 0..<50 {
                let connection = try session.daemon.connect()
                switch (batch * 50 + index) % 4 {
                case 0:
                    break  // Dropped before HELLO.
                case 1:
                    try connection.hello()
                case 2:
                    try connection.hello(features: .events)
                    _ = try connection.activateGpc(gpa: gpas[index % gpas.count] + UInt64(index), length: 8)
                default:
                    // Dropped mid-frame, before HELLO completes.
                    try connection.send(
                        Array(RawConnection.frame(opcode: .hello, id: 1, payload: Payload.hello()).prefix(10))
                    )
                }
                batchConnections.append(connection)
                opened += 1
            }
            for connection in batchConnections { connection.close() }
        }
        #expect(opened == 1000)
        try waitUntil("the daemon to notice every close", timeout: .seconds(10)) {
            try statistic("connections", of: probe) == 1
        }
        #expect(try statistic("connections_total", of: probe) == before + 1000)
        #expect(try statistic("gpc_active", of: probe) == 0)
        let states = try probe.pageStates(gpa: 0, count: UInt32(regionSize / pageSize))
        let held = states.indices.filter { states[$0].refcount != 0 || states[$0].isAccessible }
        #expect(held.isEmpty, "pages still held: \(held.prefix(10))")
        try expectPages(Dictionary(uniqueKeysWithValues: gpas.map { ($0, 0) }), in: session.daemon, probe: probe)
    }

    @Test("with --max-connections 5 the sixth connection gets -EBUSY on HELLO, then close; a slot freed is reusable")
    func connectionLimit() throws {
        let daemon = try DaemonProcess.start(arguments: ["--max-connections", "5"])
        let first = try daemon.connectWithHello()
        // DaemonProcess waited for the socket to listen without connecting: ours is the only connection.
        #expect(try statistic("connections", of: first) == 1)
        var open = [first]
        for _ in 1..<5 { open.append(try daemon.connectWithHello()) }
        #expect(try statistic("connections", of: first) == 5)

        let sixth = try daemon.connect()
        sixth.nextID = 66
        let refused = try sixth.helloReply()
        #expect(refused.isError(.busy), "got \(refused.outcome)")
        try sixth.expectClosed()
        for connection in open { try connection.requirePing() }

        open.removeLast().close()
        try waitUntil("the closed connections to be gone") { try statistic("connections", of: first) == 4 }
        let replacement = try daemon.connectWithHello()
        try replacement.requirePing()
        #expect(try statistic("connections", of: first) == 5)
    }
}
