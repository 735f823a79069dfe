//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// HELLO's own sequence: version, shape, features, and HELLO after HELLO.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// The HELLO sequence of section 4: rule 1, refusal, rule 4 (`-EINVAL`, stays open), version
/// (`-EPROTONOSUPPORT` with `{u32 1}`, close), success; and `-EALREADY` on a connection that completed HELLO.
@Suite("HELLO")
struct HelloTests {
    @Test("the HELLO reply describes the region and the daemon's limits")
    func helloReply() throws {
        let daemon = try DaemonProcess.start(arguments: ["--max-gpcs", "12", "--max-payload", "64K"])
        let connection = try daemon.connect()
        // Unknown feature bits are ignored, not an error: only EVENTS, DEVICE_OPS and RINGS are granted.
        let hello = try connection.hello(features: HelloReply.Features(rawValue: 0xffff_ffff))
        #expect(hello.version == 1)
        #expect(hello.features == [.events, .deviceOps, .rings])
        // The floor for a descriptor chain is 64 segments; gmemd serves 1024.
        #expect(hello.maxSegments == 1024)
        #expect(UInt64(hello.pageSize) == pageSize)
        #expect(hello.folioSize == hello.pageSize)
        #expect(hello.regionSize == regionSize)
        #expect(hello.regionID != 0)
        #expect(hello.maxPayload == 64 << 10)
        #expect(hello.maxGpcs == 12)
        #expect(hello.regionFlags == .noDirectMap)

        // Without features requested, none is granted and max_segments (once `reserved`) stays 0; every
        // connection sees the same region.
        let other = try daemon.connect()
        let plain = try other.hello()
        #expect(plain.features == [])
        #expect(plain.maxSegments == 0)
        #expect(plain.regionID == hello.regionID)
    }

    @Test(
        "HELLO with version 2 gets -EPROTONOSUPPORT carrying {u32 1}, then close",
        arguments: [UInt32(2), 0, 0xffff_ffff]
    )
    func unsupportedVersion(version: UInt32) throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        try connection.sendFrame(opcode: .hello, id: 100, payload: Payload.hello(version: version))
        let frame = try #require(try connection.receiveFrame())
        let reply = try RawConnection.validated(frame.header, frame.payload)
        #expect(reply.header.opcode == .hello && reply.header.id == 100)
        #expect(reply.errno == .protocolNotSupported)
        #expect(reply.payload == [1, 0, 0, 0])
        #expect(reply.highestSupportedVersion == 1)
        try connection.expectClosed()
    }

    static let malformedHellos: [RuleCase] = [
        RuleCase(name: "payload of 4 bytes", opcode: .hello, payload: [1, 0, 0, 0], errno: .invalidArgument),
        RuleCase(
            name: "payload of 12 bytes",
            opcode: .hello,
            payload: Payload.hello() + [0, 0, 0, 0],
            errno: .invalidArgument
        ),
        RuleCase(name: "empty payload", opcode: .hello, payload: [], errno: .invalidArgument),
        RuleCase(
            name: "header flags REPLY",
            opcode: .hello,
            flags: 1,
            payload: Payload.hello(),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "header status -1",
            opcode: .hello,
            status: -1,
            payload: Payload.hello(),
            errno: .invalidArgument
        ),
        // Shape comes before the version check: a short HELLO is -EINVAL even if it cannot be version 1.
        RuleCase(
            name: "version 2 with a short payload",
            opcode: .hello,
            payload: [2, 0, 0, 0],
            errno: .invalidArgument
        ),
    ]

    @Test(
        "a malformed HELLO gets -EINVAL; the connection stays open and still expects HELLO",
        arguments: malformedHellos
    )
    func malformedHello(rule: RuleCase) throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        let reply = try connection.request(
            opcode: rule.opcode,
            payload: rule.payload,
            flags: rule.flags,
            status: rule.status
        )
        #expect(reply.isError(.invalidArgument), "got \(reply.outcome)")
        // Still awaiting HELLO (see malformedHelloThenPing): a HELLO now succeeds.
        let hello = try connection.hello()
        #expect(hello.version == 1)
        try connection.requirePing()
    }

    @Test("after a malformed HELLO, a non-HELLO request is still -EPROTO and closes")
    func malformedHelloThenPing() throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        #expect(try connection.request(opcode: .hello, payload: [1]).isError(.invalidArgument))
        try connection.sendFrame(opcode: .ping, id: 9)
        try expectErrorFrame(on: connection, opcode: .ping, id: 9, errno: .protocolError)
        try connection.expectClosed()
    }

    static let secondHellos: [(name: String, payload: [UInt8], flags: UInt16)] = [
        ("a valid HELLO", Payload.hello(features: 1), 0),
        ("HELLO version 2", Payload.hello(version: 2), 0),
        ("HELLO with a 3-byte payload", [1, 2, 3], 0),
        ("HELLO with header flags", Payload.hello(), 1),
    ]

    @Test(
        "every HELLO after a completed HELLO gets -EALREADY and the connection stays open",
        arguments: secondHellos.indices
    )
    func secondHello(index: Int) throws {
        let (_, payload, flags) = Self.secondHellos[index]
        let session = try Session()
        let reply = try session.connection.request(opcode: .hello, payload: payload, flags: flags)
        #expect(reply.isError(.alreadyInProgress), "got \(reply.outcome)")
        try session.connection.requirePing()
    }

    @Test("PING echoes any payload, including an empty one")
    func ping() throws {
        let session = try Session()
        let empty = try session.connection.ping()
        #expect(empty.isSuccess && empty.payload.isEmpty)
        try session.connection.requirePing(Payload.pattern(1000, seed: 9))
    }
}
