//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Precedence rules 1 and 2 on the wire: frame length, and HELLO first.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// Rule 1 (`16 ≤ length ≤ 16 + max_payload`, else `-EMSGSIZE` and close) and rule 2 (the first request is HELLO,
/// else `-EPROTO` and close), each against a freshly spawned gmemd.
@Suite("Rules 1 and 2: frame length and HELLO first")
struct FramingRuleTests {
    /// Bad lengths, with the header's opcode and id that the reply must echo.
    static let badLengths: [(length: UInt32, opcode: Opcode, id: UInt32)] = [
        (0xffff_ffff, .write, 109), (8, .read, 108), (0, .ping, 7), (15, .stats, 0xdead_beef),
    ]

    @Test(
        "a bad frame length gets -EMSGSIZE with the header's opcode and id, then close",
        arguments: badLengths.indices,
        [false, true]
    )
    func badLength(index: Int, afterHello: Bool) throws {
        let (length, opcode, id) = Self.badLengths[index]
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        if afterHello { try connection.hello() }
        // Only the header: the daemon decides from it alone and must not wait for 4 GiB of payload.
        try connection.sendFrame(opcode: opcode, id: id, length: length)
        try expectErrorFrame(on: connection, opcode: opcode, id: id, errno: .messageTooLong)
        try connection.expectClosed()
        #expect(daemon.isRunning)
    }

    @Test("a WRITE frame one byte longer than 16 + max_payload gets -EMSGSIZE, then close")
    func writeFrameTooLong() throws {
        let session = try Session(arguments: ["--max-payload", "4096"])
        #expect(session.hello.maxPayload == 4096)
        let connection = session.connection
        let payload = Payload.write(gpa: 0, data: [UInt8](repeating: 0x5a, count: 4096 - 16 + 1))
        #expect(payload.count == 4097)
        // The header and part of the payload: the reply must not wait for the rest.
        try connection.sendFrame(
            opcode: .write,
            id: 77,
            payload: Array(payload.prefix(100)),
            length: UInt32(16 + payload.count)
        )
        try expectErrorFrame(on: connection, opcode: .write, id: 77, errno: .messageTooLong)
        try connection.expectClosed()
        // Nothing was written.
        let probe = try session.connect()
        #expect(try probe.readBytes(gpa: 0, length: 16) == [UInt8](repeating: 0, count: 16))
    }

    @Test("frames of exactly 16 + max_payload bytes are accepted")
    func largestFrames() throws {
        let session = try Session(arguments: ["--max-payload", "4096"])
        let connection = session.connection
        let echo = Payload.pattern(4096, seed: 3)
        try connection.requirePing(echo)
        let data = Payload.pattern(4096 - 16, seed: 4)
        try connection.writeBytes(gpa: 0x3000, data: data)
        let read = try connection.readBytes(gpa: 0x3000, length: 4096)
        #expect(Array(read.prefix(data.count)) == data)
        // A READ of max_payload + 1 is a well-formed request with a too-large reply: -EMSGSIZE, stays open.
        try expectRefusedAndOpen(
            RuleCase(
                name: "READ max_payload + 1",
                opcode: .read,
                payload: Payload.read(gpa: 0, length: 4097),
                errno: .messageTooLong
            ),
            on: connection
        )
    }

    static let beforeHello: [RuleCase] = [
        RuleCase(name: "READ", opcode: .read, payload: Payload.read(gpa: 0, length: 8), errno: .protocolError),
        RuleCase(name: "PING", opcode: .ping, payload: [1, 2, 3], errno: .protocolError),
        RuleCase(name: "STATS", opcode: .stats, payload: [], errno: .protocolError),
        RuleCase(
            name: "GPC_ACTIVATE",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: 0, length: 8),
            errno: .protocolError
        ),
        // Rule 2 comes before rules 3 and 4.
        RuleCase(name: "unknown opcode 0xff", opcode: Opcode(rawValue: 0xff), payload: [], errno: .protocolError),
        RuleCase(name: "PING with header flags REPLY", opcode: .ping, flags: 1, payload: [], errno: .protocolError),
        RuleCase(name: "READ with a short payload", opcode: .read, payload: [0, 0, 0], errno: .protocolError),
    ]

    @Test("a request before HELLO gets -EPROTO, then close", arguments: beforeHello)
    func requestBeforeHello(rule: RuleCase) throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        try connection.sendFrame(opcode: rule.opcode, id: 101, flags: rule.flags, payload: rule.payload)
        try expectErrorFrame(on: connection, opcode: rule.opcode, id: 101, errno: .protocolError)
        try connection.expectClosed()
    }

    @Test("the golden read_before_hello frame gets exactly the golden reply")
    func goldenReadBeforeHello() throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        try connection.send([
            0x20, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ])
        let frame = try #require(try connection.receiveFrame())
        var bytes: [UInt8] = []
        frame.header.write(to: &bytes)
        bytes += frame.payload
        #expect(
            bytes == [0x10, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x65, 0x00, 0x00, 0x00, 0xb9, 0xff, 0xff, 0xff]
        )
        try connection.expectClosed()
    }

    @Test("frames pipelined behind a fatal reply are dropped: nothing follows the -EPROTO")
    func nothingAfterFatalReply() throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        var bytes = RawConnection.frame(opcode: .ping, id: 1, payload: [9])
        bytes += RawConnection.frame(opcode: .hello, id: 2, payload: Payload.hello())
        bytes += RawConnection.frame(opcode: .ping, id: 3, payload: [9])
        try connection.send(bytes)
        try expectErrorFrame(on: connection, opcode: .ping, id: 1, errno: .protocolError)
        try connection.expectClosed()
    }

    @Test("a frame split byte by byte is reassembled")
    func byteByByte() throws {
        let session = try Session()
        let frame = RawConnection.frame(opcode: .ping, id: 4242, payload: Payload.pattern(40, seed: 1))
        for byte in frame { try session.connection.send([byte]) }
        let reply = try #require(try session.connection.receiveFrame())
        #expect(reply.header.id == 4242 && reply.header.status == 0)
        #expect(reply.payload == Payload.pattern(40, seed: 1))
    }
}
