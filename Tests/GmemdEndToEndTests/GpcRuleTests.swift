//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GPC requests on the wire: window shape, bounds, the per-connection limit, handles.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// The error rules of GPC_ACTIVATE, GPC_READ, GPC_WRITE, GPC_REFRESH and GPC_DEACTIVATE, and the life of handles.
@Suite("GPC rules")
struct GpcRuleTests {
    static let refusedRequests: [RuleCase] = [
        RuleCase(
            name: "window crossing a page",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: 0x1ff0, length: 32),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "len 0",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: 0x1000, length: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "len page_size + 1",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: 0x1000, length: 4097),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "at region_size",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: regionSize, length: 8),
            errno: .badAddress
        ),
        RuleCase(
            name: "at 2^64 − 16",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: ~0 - 15, length: 8),
            errno: .badAddress
        ),
        RuleCase(
            name: "crossing and outside (6 before 7)",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: ~0 - 7, length: 16),
            errno: .invalidArgument
        ),
        // The window is checked before the handle (rules 6 and 7 before 8).
        RuleCase(
            name: "REFRESH of an unknown handle, len 0",
            opcode: .gpcRefresh,
            payload: Payload.gpcRefresh(handle: 999, gpa: 0, length: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "REFRESH of an unknown handle, crossing",
            opcode: .gpcRefresh,
            payload: Payload.gpcRefresh(handle: 999, gpa: 0xff8, length: 16),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "REFRESH of an unknown handle, outside",
            opcode: .gpcRefresh,
            payload: Payload.gpcRefresh(handle: 999, gpa: regionSize, length: 8),
            errno: .badAddress
        ),
        RuleCase(
            name: "REFRESH of an unknown handle",
            opcode: .gpcRefresh,
            payload: Payload.gpcRefresh(handle: 999, gpa: 0, length: 8),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "READ of an unknown handle",
            opcode: .gpcRead,
            payload: Payload.gpcRead(handle: 999, offset: 0, length: 8),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "READ of handle 0",
            opcode: .gpcRead,
            payload: Payload.gpcRead(handle: 0, offset: 0, length: 0),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "WRITE of an unknown handle",
            opcode: .gpcWrite,
            payload: Payload.gpcWrite(handle: 999, offset: 0, data: [1]),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "DEACTIVATE of an unknown handle",
            opcode: .gpcDeactivate,
            payload: Payload.gpcDeactivate(handle: 999),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "DEACTIVATE of handle 0",
            opcode: .gpcDeactivate,
            payload: Payload.gpcDeactivate(handle: 0),
            errno: .noSuchEntry
        ),
        RuleCase(
            name: "READ len > max_payload of an unknown handle (6 before 8)",
            opcode: .gpcRead,
            payload: Payload.gpcRead(handle: 999, offset: 0, length: defaultMaxPayload + 1),
            errno: .messageTooLong
        ),
    ]

    @Test(
        "GPC requests with a bad window or an unknown handle are refused; the connection stays open",
        arguments: refusedRequests
    )
    func refused(rule: RuleCase) throws {
        let session = try Session()
        try expectRefusedAndOpen(rule, on: session.connection)
    }

    @Test("GPC_READ and GPC_WRITE beyond the window are -EINVAL; len 0 at the window's end succeeds")
    func windowBounds() throws {
        let session = try Session()
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x5010, length: 64)
        for (offset, length) in [(UInt32(60), UInt32(8)), (65, 0), (0, 65), (0xffff_ffff, 2), (0xffff_fff0, 0x20)] {
            let read = try connection.gpcRead(handle: handle, offset: offset, length: length)
            #expect(read.isError(.invalidArgument), "GPC_READ offset \(offset) len \(length): \(read.outcome)")
            let write = try connection.gpcWrite(
                handle: handle,
                offset: offset,
                data: [UInt8](repeating: 1, count: Int(length))
            )
            #expect(write.isError(.invalidArgument), "GPC_WRITE offset \(offset) len \(length): \(write.outcome)")
        }
        for offset in [UInt32(0), 17, 64] {
            let empty = try connection.gpcRead(handle: handle, offset: offset, length: 0)
            #expect(empty.isSuccess && empty.payload.isEmpty, "GPC_READ len 0 at offset \(offset): \(empty.outcome)")
            #expect(try connection.gpcWrite(handle: handle, offset: offset, data: []).isSuccess)
        }
        // Reads and writes inside the window reach guest memory at gpa + offset.
        #expect(try connection.gpcWrite(handle: handle, offset: 60, data: [1, 2, 3, 4]).isSuccess)
        #expect(try connection.readBytes(gpa: 0x5010 + 60, length: 4) == [1, 2, 3, 4])
        try connection.writeBytes(gpa: 0x5010, data: [9, 8])
        #expect(try connection.gpcRead(handle: handle, offset: 0, length: 2).payload == [9, 8])
        try connection.requirePing()
    }

    @Test("past --max-gpcs, GPC_ACTIVATE gets -ENOSPC; shape and bounds errors still take precedence")
    func gpcLimit() throws {
        let session = try Session(arguments: ["--max-gpcs", "4"])
        #expect(session.hello.maxGpcs == 4)
        let connection = session.connection
        var handles: [UInt64] = []
        for index in 0..<4 { handles.append(try connection.activateGpc(gpa: 0x8000 + UInt64(index) * 8, length: 8)) }
        #expect(try connection.pageState(at: 0x8000).refcount == 4)

        #expect(try connection.gpcActivate(gpa: 0x9000, length: 8).isError(.noSpace))
        #expect(try connection.gpcActivate(gpa: 0x9000, length: 0).isError(.invalidArgument))
        #expect(try connection.gpcActivate(gpa: regionSize, length: 8).isError(.badAddress))
        // The refused activation took no reference.
        try expectPages([0x8000: 4, 0x9000: 0], in: session.daemon, probe: connection)

        // The limit is per connection.
        let other = try session.connect()
        for index in 0..<4 { _ = try other.activateGpc(gpa: 0x9000 + UInt64(index), length: 1) }
        #expect(try other.gpcActivate(gpa: 0x9000, length: 1).isError(.noSpace))

        // Freeing one makes room for one.
        try connection.deactivateGpc(handles[2])
        let again = try connection.activateGpc(gpa: 0xa000, length: 8)
        #expect(!handles.contains(again))
        #expect(try connection.gpcActivate(gpa: 0xa000, length: 8).isError(.noSpace))
        try connection.requirePing()
    }

    @Test("another connection's handle is -ENOENT and leaves the owner's GPC alone")
    func foreignHandle() throws {
        let session = try Session()
        let owner = try session.connect()
        let handle = try owner.activateGpc(gpa: 0x6000, length: 16)
        try owner.writeBytes(gpa: 0x6000, data: Payload.pattern(16, seed: 6))
        let intruder = session.connection
        #expect(try intruder.gpcRead(handle: handle, length: 16).isError(.noSuchEntry))
        #expect(try intruder.gpcWrite(handle: handle, data: [0]).isError(.noSuchEntry))
        #expect(try intruder.gpcRefresh(handle: handle, gpa: 0x7000, length: 8).isError(.noSuchEntry))
        #expect(try intruder.gpcDeactivate(handle: handle).isError(.noSuchEntry))
        #expect(try owner.gpcRead(handle: handle, length: 16).payload == Payload.pattern(16, seed: 6))
        try expectPages([0x6000: 1, 0x7000: 0], in: session.daemon, probe: intruder)
    }

    @Test("handles are non-zero and never reused within a connection")
    func handlesAreUnique() throws {
        let session = try Session()
        let connection = session.connection
        var seen: Set<UInt64> = []
        for round in 0..<20 {
            let handle = try connection.activateGpc(gpa: 0x4000, length: 8)
            #expect(handle != 0)
            #expect(seen.insert(handle).inserted, "handle \(handle) reused in round \(round)")
            if round % 3 != 2 { try connection.deactivateGpc(handle) }
        }
        // A deactivated handle stays dead: it is -ENOENT, not a new GPC.
        let dead = try #require(seen.min())
        #expect(try connection.gpcRead(handle: dead, length: 1).isError(.noSuchEntry))
        #expect(try connection.gpcDeactivate(handle: dead).isError(.noSuchEntry))
        #expect(try connection.pageState(at: 0x4000).refcount == 6)
    }

    @Test("GPC_REFRESH moves the reference from the old page to the new one")
    func refreshMoves() throws {
        let session = try Session()
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x1000, length: 32)
        try expectPages([0x1000: 1, 0x2000: 0], in: session.daemon, probe: connection)
        #expect(try connection.gpcRefresh(handle: handle, gpa: 0x2040, length: 16).isSuccess)
        try expectPages([0x1000: 0, 0x2000: 1], in: session.daemon, probe: connection)
        try connection.writeBytes(gpa: 0x2040, data: [5, 6])
        #expect(try connection.gpcRead(handle: handle, length: 2).payload == [5, 6])
        // The new window's length bounds later accesses.
        #expect(try connection.gpcRead(handle: handle, offset: 10, length: 8).isError(.invalidArgument))
        // A refused refresh leaves the GPC as it was.
        #expect(try connection.gpcRefresh(handle: handle, gpa: regionSize, length: 8).isError(.badAddress))
        #expect(try connection.gpcRead(handle: handle, length: 2).payload == [5, 6])
        try connection.deactivateGpc(handle)
        try expectPages([0x1000: 0, 0x2000: 0], in: session.daemon, probe: connection)
    }

    @Test("deactivating an invalidated GPC succeeds, once")
    func deactivateInvalidated() throws {
        let session = try Session()
        let connection = session.connection
        let handle = try connection.activateGpc(gpa: 0x3000, length: 8)
        #expect(try connection.setAttributes(gpa: 0x3000, size: pageSize, attributes: 0).isSuccess)
        #expect(try connection.gpcRead(handle: handle, length: 8).isError(.stale))
        #expect(try connection.gpcDeactivate(handle: handle).isSuccess)
        #expect(try connection.gpcDeactivate(handle: handle).isError(.noSuchEntry))
        #expect(try statistic("gpc_active", of: connection) == 0)
        #expect(try connection.setAttributes(gpa: 0x3000, size: pageSize, attributes: 8).isSuccess)
        try expectPages([0x3000: 0], in: session.daemon, probe: connection)
    }
}
