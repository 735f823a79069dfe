//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Pipelining: many requests in flight on one connection, replies in order.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Requests take effect in the order they are sent and replies come back in that order (section 2), however many
/// are sent before the first reply is read.
@Suite("Pipelining")
struct PipeliningTests {
    @Test("500 WRITE+READ pairs sent back to back: replies in order, ids matching, data correct")
    func writeReadPairs() throws {
        let session = try Session()
        let connection = session.connection
        let pairs = 500
        var bytes: [UInt8] = []
        var expected: [(opcode: Opcode, id: UInt32, data: [UInt8]?)] = []
        for index in 0..<pairs {
            // Overlapping ranges: each READ must see its own WRITE, not a later one.
            let gpa = UInt64(index) * 40 + 0x1000
            let data = Payload.pattern(64, seed: index)
            let writeID = UInt32(10_000 + 2 * index)
            let readID = writeID + 1
            bytes += RawConnection.frame(opcode: .write, id: writeID, payload: Payload.write(gpa: gpa, data: data))
            bytes += RawConnection.frame(opcode: .read, id: readID, payload: Payload.read(gpa: gpa, length: 64))
            expected.append((.write, writeID, nil))
            expected.append((.read, readID, data))
        }
        try connection.send(bytes)

        var mismatches: [String] = []
        for (position, want) in expected.enumerated() {
            let frame = try #require(
                try connection.receiveFrame(timeout: .seconds(10)),
                "closed after \(position) replies"
            )
            let reply = try RawConnection.validated(frame.header, frame.payload)
            if reply.header.opcode != want.opcode || reply.header.id != want.id || !reply.isSuccess {
                mismatches.append("#\(position): got \(reply.header), expected \(want.opcode) id=\(want.id)")
            } else if let data = want.data, reply.payload != data {
                mismatches.append("#\(position): READ id=\(want.id) returned other data")
            } else if want.data == nil, !reply.payload.isEmpty {
                mismatches.append("#\(position): WRITE reply with a payload")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches: \(mismatches.prefix(5))")
        // The last write of each overlapping range wins in memory.
        let last = pairs - 1
        #expect(
            try connection.readBytes(gpa: UInt64(last) * 40 + 0x1000, length: 64) == Payload.pattern(64, seed: last)
        )
        let stats = try connection.statistics()
        #expect((stats["writes"] ?? 0) >= UInt64(pairs))
        #expect((stats["reads"] ?? 0) >= UInt64(pairs))
    }

    @Test("a client that does not read its replies stalls only itself; the replies arrive intact later")
    func unreadReplies() throws {
        let session = try Session()
        let reader = session.connection
        let lazy = try session.connect()
        let data = Payload.pattern(Int(pageSize), seed: 12)
        for page in 0..<16 { try reader.writeBytes(gpa: UInt64(page) * pageSize, data: data) }
        // 48 MiB of READ replies requested at once, none read yet.
        let count = 48
        var bytes: [UInt8] = []
        for index in 0..<count {
            bytes += RawConnection.frame(
                opcode: .read,
                id: UInt32(index),
                payload: Payload.read(gpa: 0, length: defaultMaxPayload)
            )
        }
        try lazy.send(bytes, timeout: .seconds(20))
        for round in 0..<20 { try reader.requirePing([UInt8(round)]) }
        let expected = Array(repeating: data, count: 16).flatMap { $0 }
        for index in 0..<count {
            let frame = try #require(try lazy.receiveFrame(timeout: .seconds(20)), "closed after \(index) replies")
            #expect(frame.header.id == UInt32(index) && frame.header.status == 0)
            #expect(frame.payload.count == Int(defaultMaxPayload))
            #expect(Array(frame.payload.prefix(expected.count)) == expected)
        }
        try lazy.requirePing()
    }

    @Test("a client the daemon waits for is not cut off by the frame timeout, even with a frame half-sent")
    func pausedConnectionHasNoFrameTimeout() throws {
        let session = try Session(arguments: ["--frame-timeout", "1"])
        let lazy = try session.connect()
        // 16 MiB of READ replies, far more than the socket and the daemon's
        // outbound bound hold: the daemon stops reading this connection.
        let count = 16
        var bytes: [UInt8] = []
        for index in 0..<count {
            bytes += RawConnection.frame(
                opcode: .read,
                id: UInt32(index),
                payload: Payload.read(gpa: 0, length: defaultMaxPayload)
            )
        }
        let ping = RawConnection.frame(opcode: .ping, id: 99, payload: [7])
        try lazy.send(bytes + ping.prefix(6), timeout: .seconds(20))
        // Twice the frame timeout without reading, first while the daemon
        // still has requests to answer, then while only the last reply waits
        // (the half-sent PING is all that is left to dispatch): the daemon
        // waits for us, not we for it.
        usleep(2_000_000)
        for index in 0..<count {
            if index == count - 1 { usleep(2_000_000) }
            let frame = try #require(try lazy.receiveFrame(timeout: .seconds(20)), "closed after \(index) replies")
            #expect(frame.header.id == UInt32(index) && frame.header.status == 0)
        }
        // The timeout runs again once the daemon can write: the rest of the PING arrives well within it.
        try lazy.send(Array(ping.dropFirst(6)))
        let reply = try #require(try lazy.receiveFrame(timeout: .seconds(5)), "closed instead of answering the PING")
        #expect(reply.header.id == 99 && reply.header.status == 0 && reply.payload == [7])
    }

    @Test("errors in a pipeline are answered in place and do not disturb the requests around them")
    func errorsInPipeline() throws {
        let session = try Session()
        let connection = session.connection
        var bytes: [UInt8] = []
        var expected: [(Opcode, UInt32, Errno?)] = []
        for index in 0..<100 {
            let id = UInt32(index + 1)
            switch index % 5 {
            case 0:
                bytes += RawConnection.frame(opcode: .ping, id: id, payload: [UInt8(index)])
                expected.append((.ping, id, nil))
            case 1:
                bytes += RawConnection.frame(opcode: .read, id: id, payload: Payload.read(gpa: regionSize, length: 8))
                expected.append((.read, id, .badAddress))
            case 2:
                bytes += RawConnection.frame(opcode: Opcode(rawValue: 0x42), id: id)
                expected.append((Opcode(rawValue: 0x42), id, .operationNotSupported))
            case 3:
                bytes += RawConnection.frame(
                    opcode: .gpcActivate,
                    id: id,
                    payload: Payload.gpcActivate(gpa: 0x2000, length: 8)
                )
                expected.append((.gpcActivate, id, nil))
            default:
                bytes += RawConnection.frame(opcode: .hello, id: id, payload: Payload.hello())
                expected.append((.hello, id, .alreadyInProgress))
            }
        }
        try connection.send(bytes)
        for (opcode, id, errno) in expected {
            let frame = try #require(try connection.receiveFrame())
            let reply = try RawConnection.validated(frame.header, frame.payload)
            #expect(
                reply.header.opcode == opcode && reply.header.id == id,
                "got \(reply.header), expected \(opcode) id=\(id)"
            )
            #expect(reply.errno == errno, "\(opcode) id=\(id): \(reply.outcome)")
        }
        try expectPages([0x2000: 20], in: session.daemon, probe: connection)
    }
}
