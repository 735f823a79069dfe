//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// READV, WRITEV, ATOMIC and GPC_ATOMIC against the real gmemd.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The device-model operations on the socket: results, every error rule in order, the protection calls a
/// descriptor chain costs, and atomicity across processes.
@Suite("READV, WRITEV and atomic operations", .timeLimit(.minutes(2)))
struct DeviceOpsTests {
    static func fetchAdd(_ operand: UInt64 = 1, width: UInt8 = 8) -> AtomicArguments {
        AtomicArguments(op: .fetchAdd, width: width, operand: operand)
    }

    @Test("WRITEV then READV move every segment in order, and leave the pages unreferenced and unmapped")
    func roundTrip() throws {
        let session = try Session()
        let connection = session.connection
        let segments = [
            WireSegment(gpa: 0x5000 - 3, length: 6), WireSegment(gpa: 0x9000, length: 0),
            WireSegment(gpa: 0x20_0000, length: 4), WireSegment(gpa: 0x5001, length: 2),
        ]
        try connection.writev(segments, data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).requireSuccess()
        // The last segment overwrote bytes 4 and 5 of the first.
        #expect(try connection.readBytes(gpa: 0x5000 - 3, length: 6) == [1, 2, 3, 4, 11, 12])
        #expect(try connection.readvBytes(segments) == [1, 2, 3, 4, 11, 12, 7, 8, 9, 10, 11, 12])
        try expectPages([0x4000: 0, 0x5000: 0, 0x9000: 0, 0x20_0000: 0], in: session.daemon, probe: connection)
    }

    @Test("a 16-segment READV over 16 contiguous private pages makes at most 2 protection calls")
    func sixteenSegmentChain() throws {
        let session = try Session()
        let connection = session.connection
        let chain = (0..<16).map { WireSegment(gpa: 0x10_0000 + UInt64($0) * pageSize + 64, length: 128) }
        let before = try statistic("protect_calls", of: connection)
        let bytes = try connection.readvBytes(chain)
        let after = try statistic("protect_calls", of: connection)
        #expect(bytes.count == 16 * 128)
        #expect(after - before <= 2, "\(after - before) protection calls")
        #expect(after - before == 2)
        try expectPages(
            Dictionary(uniqueKeysWithValues: (0..<16).map { (0x10_0000 + UInt64($0) * pageSize, UInt16(0)) }),
            in: session.daemon,
            probe: connection
        )
    }

    @Test("READV and WRITEV error rules, in precedence order")
    func vectorErrors() throws {
        let session = try Session(arguments: ["--size", "4M"])
        let connection = session.connection
        let maxPayload = UInt32(session.hello.maxPayload)
        let one = [WireSegment(gpa: 0x1000, length: 8)]
        let tooMany = [WireSegment](repeating: WireSegment(gpa: 0, length: 1), count: 1025)
        let outside = [WireSegment(gpa: 0x1000, length: 8), WireSegment(gpa: 4 << 20, length: 1)]
        let cases: [(String, ReplyFrame, Errno)] = [
            ("READV of no segment", try connection.readv([]), .invalidArgument),
            ("WRITEV of no segment", try connection.writev([], data: []), .invalidArgument),
            ("READV of 1025 segments", try connection.readv(tooMany), .invalidArgument),
            (
                "WRITEV of 1025 segments", try connection.writev(tooMany, data: .init(repeating: 0, count: 1025)),
                .invalidArgument
            ),
            (
                "READV over max_payload",
                try connection.readv([WireSegment(gpa: 0, length: maxPayload), WireSegment(gpa: 0, length: 1)]),
                .messageTooLong
            ),
            // -EMSGSIZE (rule 6) before -EFAULT (rule 7).
            (
                "READV over max_payload and outside",
                try connection.readv([WireSegment(gpa: 8 << 20, length: maxPayload + 1)]), .messageTooLong
            ),
            ("READV with a segment outside", try connection.readv(outside), .badAddress),
            (
                "WRITEV with a segment outside", try connection.writev(outside, data: .init(repeating: 7, count: 9)),
                .badAddress
            ),
            (
                "READV ending past the region", try connection.readv([WireSegment(gpa: (4 << 20) - 4, length: 8)]),
                .badAddress
            ),
        ]
        for (name, reply, errno) in cases {
            #expect(reply.errno == errno, "\(name): \(reply.outcome)")
            #expect(reply.payload.isEmpty, "\(name): an error with no progress has an empty payload")
        }
        // A WRITEV refused for bounds wrote nothing, not even its first segment.
        #expect(try connection.readBytes(gpa: 0x1000, length: 8) == [UInt8](repeating: 0, count: 8))
        #expect(try connection.readvBytes(one) == [UInt8](repeating: 0, count: 8))
        try connection.requirePing()
    }

    @Test("ATOMIC: every operation, and the error rules in precedence order")
    func atomics() throws {
        let session = try Session()
        let connection = session.connection
        let gpa: UInt64 = 0x7008
        #expect(try connection.atomicValue(gpa: gpa, AtomicArguments(op: .store, width: 8, operand: 40)) == 0)
        #expect(try connection.atomicValue(gpa: gpa, Self.fetchAdd(2)) == 40)
        #expect(
            try connection.atomicValue(
                gpa: gpa,
                AtomicArguments(op: .compareExchange, width: 8, operand: 9, expected: 1)
            ) == 42
        )
        #expect(
            try connection.atomicValue(
                gpa: gpa,
                AtomicArguments(op: .compareExchange, width: 8, operand: 9, expected: 42)
            ) == 42
        )
        #expect(
            try connection.atomicValue(gpa: gpa, AtomicArguments(op: .exchange, width: 4, operand: 0xffff_fff0)) == 9
        )
        #expect(try connection.atomicValue(gpa: gpa, AtomicArguments(op: .fetchOr, width: 2, operand: 0x0f)) == 0xfff0)
        #expect(try connection.atomicValue(gpa: gpa, AtomicArguments(op: .fetchAnd, width: 1, operand: 0x3c)) == 0xff)
        #expect(try connection.atomicValue(gpa: gpa, AtomicArguments(op: .load, width: 8)) == 0xffff_ff3c)
        #expect(try connection.readBytes(gpa: gpa, length: 8) == [0x3c, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        try expectPages([0x7000: 0], in: session.daemon, probe: connection)

        let cases: [(String, AtomicArguments, UInt64, Errno)] = [
            ("misaligned 8 bytes", AtomicArguments(op: .load, width: 8), 0x7004, .invalidArgument),
            ("misaligned 2 bytes", Self.fetchAdd(width: 2), 0x7001, .invalidArgument),
            // Misalignment (rule 6) before bounds (rule 7).
            ("misaligned and outside", AtomicArguments(op: .load, width: 4), (64 << 20) + 2, .invalidArgument),
            ("outside", AtomicArguments(op: .load, width: 4), 64 << 20, .badAddress),
            ("far outside", Self.fetchAdd(), ~UInt64(7), .badAddress),
        ]
        for (name, arguments, address, errno) in cases {
            let reply = try connection.atomic(gpa: address, arguments)
            #expect(reply.errno == errno && reply.payload.isEmpty, "\(name): \(reply.outcome)")
        }
        // Rule 4 on the wire: width 3.
        try expectRefusedAndOpen(
            RuleCase(
                name: "width 3",
                opcode: .atomic,
                payload: wireBytes {
                    $0.writeInteger(UInt64(0x7000))
                    $0.writeInteger(UInt64(0))
                    $0.writeInteger(UInt64(0))
                    $0.writeInteger(UInt32(0x0300))
                    $0.writeInteger(UInt32(0))
                },
                errno: .invalidArgument
            ),
            on: connection
        )
    }

    @Test("GPC_ATOMIC makes no protection call; its errors follow GPC_READ's order")
    func gpcAtomics() throws {
        let session = try Session()
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0xa010, length: 32)
        let before = try statistic("protect_calls", of: connection)
        for expected in 0..<UInt64(50) {
            #expect(try connection.gpcAtomicValue(handle: handle, offset: 8, Self.fetchAdd()) == expected)
        }
        #expect(try statistic("protect_calls", of: connection) == before)
        #expect(try connection.atomicValue(gpa: 0xa018, AtomicArguments(op: .load, width: 8)) == 50)

        let cases: [(String, UInt64, UInt32, AtomicArguments, Errno)] = [
            // The handle (rule 8) before the window and alignment checks that need it.
            ("unknown handle", handle + 1, 100, Self.fetchAdd(), .noSuchEntry),
            ("beyond the window", handle, 32, AtomicArguments(op: .load, width: 1), .invalidArgument),
            ("crossing the window's end", handle, 28, AtomicArguments(op: .load, width: 8), .invalidArgument),
            ("misaligned", handle, 4, AtomicArguments(op: .load, width: 8), .invalidArgument),
        ]
        for (name, target, offset, arguments, errno) in cases {
            let reply = try connection.gpcAtomic(handle: target, offset: offset, arguments)
            #expect(reply.errno == errno && reply.payload.isEmpty, "\(name): \(reply.outcome)")
        }
        try connection.setAttributes(gpa: 0xa000, size: UInt64(pageSize), attributes: 0).requireSuccess()
        #expect(try connection.gpcAtomic(handle: handle, offset: 8, Self.fetchAdd()).errno == .stale)
        try connection.deactivateGpc(handle)
        #expect(try connection.gpcAtomic(handle: handle, offset: 8, Self.fetchAdd()).errno == .noSuchEntry)
    }

    @Test("a read-only connection may READV and LOAD, and gets -EPERM for WRITEV and every other atomic operation")
    func readOnly() throws {
        let session = try Session(arguments: ["--read-only-gid", String(getgid())])
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x3000, length: 8)
        #expect(try connection.readvBytes([WireSegment(gpa: 0x3000, length: 4)]) == [0, 0, 0, 0])
        #expect(try connection.atomicValue(gpa: 0x3000, AtomicArguments(op: .load, width: 4)) == 0)
        #expect(try connection.gpcAtomicValue(handle: handle, offset: 0, AtomicArguments(op: .load, width: 8)) == 0)
        #expect(try connection.writev([WireSegment(gpa: 0x3000, length: 1)], data: [1]).errno == .notPermitted)
        // -EPERM (rule 5) comes before the shape (rule 6) and the handle (rule 8).
        #expect(try connection.writev([], data: []).errno == .notPermitted)
        for op in AtomicOp.allCases where op != .load {
            let arguments = AtomicArguments(op: op, width: 8, operand: 1)
            #expect(try connection.atomic(gpa: 0x3004, arguments).errno == .notPermitted, "\(op)")
            #expect(try connection.gpcAtomic(handle: 999, offset: 0, arguments).errno == .notPermitted, "\(op)")
        }
        #expect(try connection.readBytes(gpa: 0x3000, length: 8) == [UInt8](repeating: 0, count: 8))
    }

    @Test(
        "FETCH_ADD from three client processes, two by address and one through a GPC, ends exactly at their sum",
        .enabled(if: PythonClients.python3 != nil, "needs python3")
    )
    func multiProcessFetchAdd() throws {
        let session = try Session()
        let gpa: UInt64 = 0x4_0008
        let adds = 10_000
        let clients = try ["atomic", "atomic", "gpc"].map { mode in
            try Subprocess(
                executable: try #require(PythonClients.python3),
                arguments: [
                    "-c", PythonClients.fetchAdder, session.daemon.socketPath, String(gpa), String(adds), mode,
                ],
                standardOutput: .pipe
            )
        }
        // This process adds too, while they run.
        for _ in 0..<adds { _ = try session.connection.atomicValue(gpa: gpa, Self.fetchAdd()) }
        for client in clients {
            let output = try client.readOutput(until: "\n", timeout: .seconds(90))
            #expect(output.hasPrefix("done \(adds)"), "client output: \(output)")
            #expect(try client.wait(timeout: .seconds(10)) == .exited(0))
        }
        let total = UInt64(4 * adds)
        #expect(try session.connection.atomicValue(gpa: gpa, AtomicArguments(op: .load, width: 8)) == total)
        try waitUntil("the GPC client's reference to be released") {
            try statistic("gpc_active", of: session.connection) == 0
        }
        try expectPages([0x4_0000: 0], in: session.daemon, probe: session.connection)
    }
}
