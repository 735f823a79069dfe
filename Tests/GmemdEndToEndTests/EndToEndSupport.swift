//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Support for the end-to-end tests: hand-built payloads and common expectations.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's page size, which gmemd reports as `page_size` (asserted in ``HelloTests``).
let pageSize = UInt64(DaemonProcess.systemPageSize)

/// The region size every daemon of these tests is started with (the `DaemonProcess` default, 16 MiB).
let regionSize: UInt64 = 16 << 20

/// The default `max_payload`.
let defaultMaxPayload = UInt32(WireProtocol.defaultMaxPayload)

/// Request payloads with every field under the test's control, including those the encoder fixes to 0.
enum Payload {
    static func hello(version: UInt32 = 1, features: UInt32 = 0) -> [UInt8] {
        wireBytes {
            $0.writeInteger(version)
            $0.writeInteger(features)
        }
    }

    static func read(gpa: UInt64, length: UInt32, flags: UInt32 = 0) -> [UInt8] {
        wireBytes {
            $0.writeInteger(gpa)
            $0.writeInteger(length)
            $0.writeInteger(flags)
        }
    }

    /// WRITE; `length` defaults to `data.count` and may lie about it.
    static func write(gpa: UInt64, length: UInt32? = nil, flags: UInt32 = 0, data: [UInt8]) -> [UInt8] {
        wireBytes {
            $0.writeInteger(gpa)
            $0.writeInteger(length ?? UInt32(data.count))
            $0.writeInteger(flags)
            $0.writeBytes(data)
        }
    }

    static func gpcActivate(gpa: UInt64, length: UInt32, flags: UInt32 = 0) -> [UInt8] {
        self.read(gpa: gpa, length: length, flags: flags)
    }

    static func gpcDeactivate(handle: UInt64) -> [UInt8] {
        wireBytes { $0.writeInteger(handle) }
    }

    static func gpcRead(handle: UInt64, offset: UInt32, length: UInt32) -> [UInt8] {
        wireBytes {
            $0.writeInteger(handle)
            $0.writeInteger(offset)
            $0.writeInteger(length)
        }
    }

    static func gpcWrite(handle: UInt64, offset: UInt32, length: UInt32? = nil, data: [UInt8]) -> [UInt8] {
        wireBytes {
            $0.writeInteger(handle)
            $0.writeInteger(offset)
            $0.writeInteger(length ?? UInt32(data.count))
            $0.writeBytes(data)
        }
    }

    static func gpcRefresh(handle: UInt64, gpa: UInt64, length: UInt32, flags: UInt32 = 0) -> [UInt8] {
        wireBytes {
            $0.writeInteger(handle)
            $0.writeInteger(gpa)
            $0.writeInteger(length)
            $0.writeInteger(flags)
        }
    }

    static func setAttributes(gpa: UInt64, size: UInt64, attributes: UInt64) -> [UInt8] {
        wireBytes {
            $0.writeInteger(gpa)
            $0.writeInteger(size)
            $0.writeInteger(attributes)
        }
    }

    static func discard(gpa: UInt64, size: UInt64) -> [UInt8] {
        wireBytes {
            $0.writeInteger(gpa)
            $0.writeInteger(size)
        }
    }

    static func pageState(gpa: UInt64, pages: UInt32, flags: UInt32 = 0) -> [UInt8] {
        self.read(gpa: gpa, length: pages, flags: flags)
    }

    /// `count` bytes that differ from zero and from each other's neighbours, derived from `seed`.
    static func pattern(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ (seed &* 7) &+ 1) | 1 }
    }
}

/// One request of an error-rule table: what to send and the errno the daemon must answer.
struct RuleCase: CustomTestStringConvertible, Sendable {
    let name: String
    let opcode: Opcode
    var flags: UInt16 = 0
    var status: Int32 = 0
    let payload: [UInt8]
    let errno: Errno

    var testDescription: String { "\(self.name) → \(self.errno.name)" }
}

/// A daemon and one connection that has completed HELLO.
struct Session {
    let daemon: DaemonProcess
    let connection: RawConnection
    let hello: HelloReply

    init(arguments: [String] = [], features: HelloReply.Features = []) throws {
        self.daemon = try DaemonProcess.start(arguments: arguments)
        self.connection = try self.daemon.connect()
        self.hello = try self.connection.hello(features: features)
    }

    /// Another connection to the same daemon, with HELLO done.
    func connect(features: HelloReply.Features = []) throws -> RawConnection {
        try self.daemon.connectWithHello(features: features)
    }
}

/// Sends `rule` on `connection` and checks the reply: `-errno`, the request's opcode and id, an empty payload; then
/// checks the connection is still usable with a PING.
func expectRefusedAndOpen(
    _ rule: RuleCase,
    on connection: RawConnection,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let reply = try connection.request(
        opcode: rule.opcode,
        payload: rule.payload,
        flags: rule.flags,
        status: rule.status
    )
    #expect(reply.header.flags == .reply, sourceLocation: sourceLocation)
    #expect(reply.errno == rule.errno, "\(rule.name): got \(reply.outcome)", sourceLocation: sourceLocation)
    #expect(
        reply.payload.isEmpty,
        "\(rule.name): error payload \(hexString(reply.payload))",
        sourceLocation: sourceLocation
    )
    try connection.requirePing()
}

/// Receives the next frame and checks it is the reply (`opcode`, `id`) with `-errno` and an empty payload.
func expectErrorFrame(
    on connection: RawConnection,
    opcode: Opcode,
    id: UInt32,
    errno: Errno,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let frame = try #require(
        try connection.receiveFrame(),
        "closed before the \(errno.name) reply",
        sourceLocation: sourceLocation
    )
    let reply = try RawConnection.validated(frame.header, frame.payload)
    #expect(reply.header.opcode == opcode, sourceLocation: sourceLocation)
    #expect(reply.header.id == id, sourceLocation: sourceLocation)
    #expect(reply.header.flags == .reply, sourceLocation: sourceLocation)
    #expect(reply.errno == errno, "got \(reply.outcome)", sourceLocation: sourceLocation)
    #expect(reply.payload.isEmpty, sourceLocation: sourceLocation)
}

/// Checks, page by page, that what the daemon reports (PAGE_STATE) agrees with the kernel (`/proc/PID/maps`) and
/// with the expected reference counts: a private page is mapped (`rw`) exactly while its count is above 0.
func expectPages(
    _ expectedCounts: [UInt64: UInt16],
    in daemon: DaemonProcess,
    probe: RawConnection,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    for (gpa, count) in expectedCounts.sorted(by: { $0.key < $1.key }) {
        let state = try probe.pageState(at: gpa)
        let mapped = try daemon.mapsProtection(ofPageAt: gpa)
        let page = "page 0x\(String(gpa, radix: 16))"
        #expect(state.refcount == count, "\(page): refcount", sourceLocation: sourceLocation)
        #expect(state.isAccessible == (count > 0), "\(page): ACCESSIBLE", sourceLocation: sourceLocation)
        #expect(mapped.isAccessible == (count > 0), "\(page): maps shows \(mapped)", sourceLocation: sourceLocation)
        #expect(
            mapped.isAccessible == state.isAccessible,
            "\(page): maps \(mapped) vs PAGE_STATE",
            sourceLocation: sourceLocation
        )
        if count > 0 { #expect(mapped == .readWriteShared, "\(page)", sourceLocation: sourceLocation) }
    }
}

/// A counter of the daemon's STATS, which must be present.
func statistic(
    _ name: String,
    of connection: RawConnection,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> UInt64 {
    try #require(try connection.statistics()[name], "STATS lacks \(name)", sourceLocation: sourceLocation)
}

/// A small deterministic random generator (SplitMix64), so that a failing shuffle can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
