//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// A client killed with SIGKILL while it holds GPCs and has a frame half-sent.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A dying client must leak nothing: its GPCs are deactivated when its socket closes, so the pages lose their
/// references and are unmapped again.
@Suite("Killed clients")
struct KilledClientTests {
    @Test(
        "a client SIGKILLed mid-frame while holding GPCs leaves every page unreferenced and unmapped",
        .enabled(if: PythonClients.python3 != nil, "needs python3")
    )
    func sigkilledClient() throws {
        let session = try Session()
        let probe = session.connection
        let gpas: [UInt64] = [0x3000, 0x4000, 0x4000 + 128, 0x7000, 0xff000]
        let pages = Set(gpas.map { $0 & ~(pageSize - 1) })
        let client = try Subprocess(
            executable: try #require(PythonClients.python3),
            arguments: [
                "-c", PythonClients.gpcHolder, session.daemon.socketPath,
                gpas.map { "0x" + String($0, radix: 16) }.joined(separator: ","),
            ],
            standardOutput: .pipe
        )
        let output = try client.readOutput(until: "\n", timeout: .seconds(15))
        try #require(output.hasPrefix("ready "), "client output: \(output)")

        // While it lives, the client holds one reference per GPC and its pages are mapped.
        var held: [UInt64: UInt16] = [:]
        for gpa in gpas { held[gpa & ~(pageSize - 1), default: 0] += 1 }
        try expectPages(held, in: session.daemon, probe: probe)
        #expect(try statistic("gpc_active", of: probe) == UInt64(gpas.count))

        client.send(signal: SIGKILL)
        #expect(try client.wait(timeout: .seconds(5)) == .signaled(SIGKILL))

        try waitUntil("the killed client's GPCs to be released") {
            try statistic("gpc_active", of: probe) == 0 && statistic("connections", of: probe) == 1
        }
        try expectPages(Dictionary(uniqueKeysWithValues: pages.map { ($0, 0) }), in: session.daemon, probe: probe)
        for page in pages {
            let state = try probe.pageState(at: page)
            #expect(state.isPrivate && !state.isAccessible && state.refcount == 0)
        }
        // The half-sent WRITE was never applied, and the daemon serves on.
        #expect(try probe.readBytes(gpa: 0x3000, length: 8) == [0, 0, 0, 0, 0, 0, 0, 0])
        let newcomer = try session.connect()
        _ = try newcomer.activateGpc(gpa: 0x3000, length: 8)
        try expectPages([0x3000: 1], in: session.daemon, probe: probe)
    }

    @Test("several clients killed at once: the survivors' references are exactly what is left")
    func survivorsKeepTheirReferences() throws {
        let session = try Session()
        let probe = session.connection
        let survivor = try session.connect()
        let survivorHandle = try survivor.activateGpc(gpa: 0x8000, length: 16)

        // In-process clients dropped without a goodbye are the same, from the daemon's side, as killed ones.
        var doomed: [RawConnection] = []
        for index in 0..<6 {
            let connection = try session.connect()
            _ = try connection.activateGpc(gpa: 0x8000 + UInt64(index) * 16 + 16, length: 16)
            _ = try connection.activateGpc(gpa: 0x9000, length: 16)
            doomed.append(connection)
        }
        try expectPages([0x8000: 7, 0x9000: 6], in: session.daemon, probe: probe)
        for connection in doomed { connection.close() }
        try waitUntil("the dropped connections' GPCs to be released") { try statistic("gpc_active", of: probe) == 1 }
        try expectPages([0x8000: 1, 0x9000: 0], in: session.daemon, probe: probe)
        #expect(try survivor.gpcRead(handle: survivorHandle, length: 16).isSuccess)
    }
}
