//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Access control on the wire: read-only connections (rule 5) and refused peers (-EACCES).
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--read-only-gid` and the peer-credential check, decided from SO_PEERCRED at accept.
@Suite("Access control")
struct AccessControlTests {
    /// A daemon that makes this test process read-only: `--read-only-gid` is our own gid (root included).
    private func readOnlySession() throws -> Session {
        try Session(arguments: ["--read-only-gid", String(getgid())])
    }

    @Test("a read-only connection sees READ_ONLY in HELLO and -EPERM for every modifying request")
    func readOnlyRefusesModification() throws {
        let session = try self.readOnlySession()
        #expect(session.hello.regionFlags.contains(.readOnly))
        #expect(session.hello.regionFlags.contains(.noDirectMap))
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x2000, length: 64)

        #expect(try connection.write(gpa: 0x2000, data: [1, 2, 3]).isError(.notPermitted))
        #expect(try connection.gpcWrite(handle: handle, offset: 0, data: [1, 2, 3]).isError(.notPermitted))
        #expect(try connection.setAttributes(gpa: 0x2000, size: pageSize, attributes: 0).isError(.notPermitted))
        #expect(try connection.setAttributes(gpa: 0x2000, size: pageSize, attributes: 8).isError(.notPermitted))
        #expect(try connection.discard(gpa: 0x2000, size: pageSize).isError(.notPermitted))
        try connection.requirePing()

        // Nothing changed: the memory, the attribute, the GPC.
        #expect(try connection.readBytes(gpa: 0x2000, length: 3) == [0, 0, 0])
        let state = try connection.pageState(at: 0x2000)
        #expect(state.isPrivate && state.refcount == 1 && state.isAccessible)
        #expect(try connection.gpcRead(handle: handle, length: 64).payload == [UInt8](repeating: 0, count: 64))
    }

    @Test("read-only: rule 4 before rule 5, rule 5 before rules 6 to 8")
    func readOnlyPrecedence() throws {
        let session = try self.readOnlySession()
        let connection = session.connection
        let cases: [RuleCase] = [
            // Rule 4 wins over rule 5.
            RuleCase(
                name: "WRITE with flags",
                opcode: .write,
                payload: Payload.write(gpa: 0, flags: 1, data: [1]),
                errno: .invalidArgument
            ),
            RuleCase(
                name: "SET_ATTRIBUTES attributes 9",
                opcode: .setAttributes,
                payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 9),
                errno: .invalidArgument
            ),
            RuleCase(
                name: "DISCARD payload of 8 bytes",
                opcode: .discard,
                payload: [0, 0, 0, 0, 0, 0, 0, 0],
                errno: .invalidArgument
            ),
            // Rule 5 wins over rules 6, 7 and 8.
            RuleCase(
                name: "SET_ATTRIBUTES size 0",
                opcode: .setAttributes,
                payload: Payload.setAttributes(gpa: 0, size: 0, attributes: 8),
                errno: .notPermitted
            ),
            RuleCase(
                name: "DISCARD unaligned",
                opcode: .discard,
                payload: Payload.discard(gpa: 3, size: 5),
                errno: .notPermitted
            ),
            RuleCase(
                name: "WRITE outside the region",
                opcode: .write,
                payload: Payload.write(gpa: regionSize, data: [1]),
                errno: .notPermitted
            ),
            RuleCase(
                name: "GPC_WRITE of an unknown handle",
                opcode: .gpcWrite,
                payload: Payload.gpcWrite(handle: 42, offset: 0, data: [1]),
                errno: .notPermitted
            ),
        ]
        for rule in cases { try expectRefusedAndOpen(rule, on: connection) }
    }

    @Test("a read-only connection can read, activate, read through and refresh GPCs, and inspect")
    func readOnlyReads() throws {
        let session = try self.readOnlySession()
        // Every connection of this process is read-only here, so the memory stays zero.
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x7008, length: 8)
        #expect(try connection.gpcRead(handle: handle, length: 8).payload == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try connection.gpcRefresh(handle: handle, gpa: 0x8000, length: 4).isSuccess)
        #expect(try connection.readBytes(gpa: 0, length: 4096).allSatisfy { $0 == 0 })
        try expectPages([0x7000: 0, 0x8000: 1], in: session.daemon, probe: connection)
        #expect(try connection.statistics()["connections"] != nil)
        try connection.deactivateGpc(handle)
        try expectPages([0x8000: 0], in: session.daemon, probe: connection)
    }

    /// How a daemon is configured for the nobody (65534:65534) client, with which supplementary groups, and what
    /// that client must get.
    struct PeerCase: CustomTestStringConvertible, Sendable {
        let options: [String]
        var groups: [UInt32] = []
        let admitted: Bool
        let readOnly: Bool
        var testDescription: String {
            let options = self.options.isEmpty ? "no option" : self.options.joined(separator: " ")
            let groups = self.groups.count > 8 ? "\(self.groups.count) groups" : "groups \(self.groups)"
            return options + (self.groups.isEmpty ? "" : ", \(groups)")
        }
    }

    static let peerCases: [PeerCase] = [
        PeerCase(options: [], admitted: false, readOnly: false),
        PeerCase(options: ["--allow-uid", "65534"], admitted: true, readOnly: false),
        PeerCase(options: ["--allow-gid", "65534"], admitted: true, readOnly: false),
        PeerCase(options: ["--allow-uid", "65533", "--allow-gid", "65533"], admitted: false, readOnly: false),
        PeerCase(options: ["--read-only-gid", "65534"], admitted: true, readOnly: true),
        // Supplementary groups (SO_PEERGROUPS) count like the primary one.
        PeerCase(options: ["--allow-gid", "4242"], groups: [4242], admitted: true, readOnly: false),
        PeerCase(options: ["--allow-gid", "4242"], groups: [100, 4242, 60000], admitted: true, readOnly: false),
        PeerCase(options: ["--allow-gid", "4242"], groups: [4241, 4243], admitted: false, readOnly: false),
        PeerCase(options: ["--read-only-gid", "4242"], groups: [7, 4242], admitted: true, readOnly: true),
        PeerCase(
            options: ["--allow-uid", "65534", "--read-only-gid", "4242"],
            groups: [4242],
            admitted: true,
            readOnly: true
        ),
        // Group 0 as a supplementary group, alone or with others (the answer is zero-filled: see PeerCredentials).
        PeerCase(options: ["--allow-gid", "0"], groups: [0], admitted: true, readOnly: false),
        PeerCase(
            options: ["--allow-uid", "65534", "--read-only-gid", "0"],
            groups: [0, 4242],
            admitted: true,
            readOnly: true
        ),
        PeerCase(options: ["--allow-gid", "0"], groups: [4242], admitted: false, readOnly: false),
        // More groups than gmemd reads (256): unknown groups grant nothing, and a read-only group applies.
        PeerCase(options: ["--allow-gid", "1100"], groups: Array(1000..<1300), admitted: false, readOnly: false),
        PeerCase(
            options: ["--allow-uid", "65534", "--read-only-gid", "4242"],
            groups: Array(1000..<1300),
            admitted: true,
            readOnly: true
        ),
    ]

    @Test(
        "peer credentials decide admission: -EACCES on HELLO then close, read-write, or read-only",
        .enabled(if: PythonClients.isRoot, "switching to uid 65534 needs root"),
        .enabled(if: PythonClients.python3 != nil, "needs python3"),
        arguments: peerCases
    )
    func peerCredentials(peer: PeerCase) throws {
        // gmemd runs as root; the client switches to nobody (65534) before connecting, so SO_PEERCRED shows
        // 65534:65534. Root and the daemon's own uid are always admitted; nobody only through the options.
        let daemon = try DaemonProcess.start(arguments: ["--socket-mode", "0666"] + peer.options)
        guard chmod(daemon.directory, 0o711) == 0 else { throw GmemTestingError.systemCall("chmod", errno: errno) }
        try waitSocketMode(daemon.socketPath, 0o666)
        let client = try Subprocess(
            executable: try #require(PythonClients.python3),
            arguments: [
                "-c", PythonClients.unprivilegedHello, daemon.socketPath,
                peer.groups.map(String.init).joined(separator: ","),
            ],
            standardOutput: .pipe
        )
        let output = try client.readOutput(timeout: .seconds(15))
        #expect(try client.wait(timeout: .seconds(5)) == .exited(0), "client output:\n\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.contains("uid 65534 gid 65534"), "\(output)")
        let hello = try #require(lines.first { $0.hasPrefix("hello ") }, "\(output)")
        let reply = try ReplyFrame(decoding: try #require(parseHex(hello.dropFirst(6))))
        #expect(reply.header.opcode == .hello && reply.header.id == 7)
        if peer.admitted {
            #expect(reply.isSuccess, "got \(reply.outcome)")
            let flags = HelloReply.RegionFlags(
                rawValue: UInt32(lines.first { $0.hasPrefix("flags ") }?.dropFirst(6) ?? "") ?? 0
            )
            #expect(flags.contains(.readOnly) == peer.readOnly, "\(output)")
            #expect(lines.contains(peer.readOnly ? "write -1" : "write 0"), "\(output)")
            #expect(lines.contains("ping 0") && lines.last == "open", "\(output)")
        } else {
            #expect(reply.isError(.permissionDenied), "got \(reply.outcome)")
            #expect(lines.last == "eof", "the connection must be closed after -EACCES:\n\(output)")
        }
        // The daemon serves on, and the refused or read-only client changed nothing it could not.
        let connection = try daemon.connectWithHello()
        let written = try connection.readBytes(gpa: 0, length: 4)
        #expect(written == (peer.admitted && !peer.readOnly ? Array("wxyz".utf8) : [0, 0, 0, 0]))
    }
}

/// Bytes from contiguous hex digits, or `nil`.
func parseHex(_ text: Substring) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            return nil
        }
        bytes.append(byte)
    }
    return bytes
}
