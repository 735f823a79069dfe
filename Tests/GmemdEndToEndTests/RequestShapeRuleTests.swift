//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Precedence rules 3 and 4 on the wire: unknown opcodes and malformed requests.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// Rule 3 (`-EOPNOTSUPP`) and rule 4 (`-EINVAL`): decided from the frame's bytes alone, answered with the
/// request's opcode and id, and the connection stays open (a PING right after must succeed).
@Suite("Rules 3 and 4: opcode and request shape")
struct RequestShapeRuleTests {
    static let unknownOpcodes: [RuleCase] = [
        RuleCase(name: "opcode 0x00ff", opcode: Opcode(rawValue: 0xff), payload: [], errno: .operationNotSupported),
        RuleCase(name: "opcode 0", opcode: Opcode(rawValue: 0), payload: [], errno: .operationNotSupported),
        RuleCase(
            name: "opcode 21, the first past MAP_REGION",
            opcode: Opcode(rawValue: 21),
            payload: [1, 2, 3, 4],
            errno: .operationNotSupported
        ),
        RuleCase(
            name: "event opcode 0x80 sent as a request",
            opcode: .gpcInvalidated,
            payload: [],
            errno: .operationNotSupported
        ),
        RuleCase(name: "opcode 0xffff", opcode: Opcode(rawValue: 0xffff), payload: [], errno: .operationNotSupported),
        // Rule 3 comes before rule 4.
        RuleCase(
            name: "opcode 0xff with header flags",
            opcode: Opcode(rawValue: 0xff),
            flags: 1,
            payload: [],
            errno: .operationNotSupported
        ),
        RuleCase(
            name: "opcode 0xff with a status",
            opcode: Opcode(rawValue: 0xff),
            status: -5,
            payload: [],
            errno: .operationNotSupported
        ),
    ]

    static let malformed: [RuleCase] = [
        // Header flags and status.
        RuleCase(name: "PING with header flags REPLY", opcode: .ping, flags: 1, payload: [], errno: .invalidArgument),
        RuleCase(name: "PING with header flags EVENT", opcode: .ping, flags: 2, payload: [], errno: .invalidArgument),
        RuleCase(
            name: "PING with header flag bit 15",
            opcode: .ping,
            flags: 0x8000,
            payload: [],
            errno: .invalidArgument
        ),
        RuleCase(name: "STATS with status -22", opcode: .stats, status: -22, payload: [], errno: .invalidArgument),
        RuleCase(
            name: "READ with status 1",
            opcode: .read,
            status: 1,
            payload: Payload.read(gpa: 0, length: 8),
            errno: .invalidArgument
        ),
        // Payload sizes.
        RuleCase(
            name: "READ payload of 15 bytes",
            opcode: .read,
            payload: Array(Payload.read(gpa: 0, length: 8).prefix(15)),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "READ payload of 17 bytes",
            opcode: .read,
            payload: Payload.read(gpa: 0, length: 8) + [0],
            errno: .invalidArgument
        ),
        RuleCase(
            name: "WRITE payload of 8 bytes",
            opcode: .write,
            payload: [0, 0, 0, 0, 0, 0, 0, 0],
            errno: .invalidArgument
        ),
        RuleCase(
            name: "WRITE len 8 with 4 data bytes",
            opcode: .write,
            payload: Payload.write(gpa: 0x2000, length: 8, data: [1, 2, 3, 4]),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "WRITE len 4 with 8 data bytes",
            opcode: .write,
            payload: Payload.write(gpa: 0x2000, length: 4, data: [1, 2, 3, 4, 5, 6, 7, 8]),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_ACTIVATE payload of 8 bytes",
            opcode: .gpcActivate,
            payload: [0, 0x10, 0, 0, 0, 0, 0, 0],
            errno: .invalidArgument
        ),
        RuleCase(name: "GPC_DEACTIVATE empty payload", opcode: .gpcDeactivate, payload: [], errno: .invalidArgument),
        RuleCase(
            name: "GPC_DEACTIVATE payload of 16 bytes",
            opcode: .gpcDeactivate,
            payload: Payload.gpcDeactivate(handle: 1) + Payload.gpcDeactivate(handle: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_READ payload of 12 bytes",
            opcode: .gpcRead,
            payload: Array(Payload.gpcRead(handle: 1, offset: 0, length: 4).prefix(12)),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_WRITE len 8 with 2 data bytes",
            opcode: .gpcWrite,
            payload: Payload.gpcWrite(handle: 1, offset: 0, length: 8, data: [1, 2]),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_REFRESH payload of 16 bytes",
            opcode: .gpcRefresh,
            payload: Array(Payload.gpcRefresh(handle: 1, gpa: 0, length: 8).prefix(16)),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES payload of 16 bytes",
            opcode: .setAttributes,
            payload: Payload.discard(gpa: 0, size: 0x1000),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "DISCARD payload of 24 bytes",
            opcode: .discard,
            payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 0),
            errno: .invalidArgument
        ),
        RuleCase(name: "STATS payload of 1 byte", opcode: .stats, payload: [0], errno: .invalidArgument),
        RuleCase(
            name: "PAGE_STATE payload of 12 bytes",
            opcode: .pageState,
            payload: Array(Payload.pageState(gpa: 0, pages: 1).prefix(12)),
            errno: .invalidArgument
        ),
        // Payload flags (reserved in v1).
        RuleCase(
            name: "READ flags 1",
            opcode: .read,
            payload: Payload.read(gpa: 0x1000, length: 16, flags: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "READ flags bit 31",
            opcode: .read,
            payload: Payload.read(gpa: 0x1000, length: 16, flags: 0x8000_0000),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "WRITE flags 1",
            opcode: .write,
            payload: Payload.write(gpa: 0, flags: 1, data: [1]),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_ACTIVATE flags 1",
            opcode: .gpcActivate,
            payload: Payload.gpcActivate(gpa: 0, length: 8, flags: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "GPC_REFRESH flags 2",
            opcode: .gpcRefresh,
            payload: Payload.gpcRefresh(handle: 1, gpa: 0, length: 8, flags: 2),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "PAGE_STATE flags 1",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0, pages: 1, flags: 1),
            errno: .invalidArgument
        ),
        // Attribute bits other than PRIVATE (8).
        RuleCase(
            name: "SET_ATTRIBUTES attributes 9",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 9),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES attributes 1",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES attributes 0x10",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 0x10),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES attributes bit 63",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0, size: 0x1000, attributes: 1 << 63),
            errno: .invalidArgument
        ),
        // Rule 4 comes before rules 6 and 7: the arguments would also be wrong.
        RuleCase(
            name: "READ flags 1 outside the region",
            opcode: .read,
            payload: Payload.read(gpa: ~0 - 15, length: 32, flags: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES attributes 9, unaligned, outside",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: ~0, size: 3, attributes: 9),
            errno: .invalidArgument
        ),
    ]

    @Test("an unknown opcode gets -EOPNOTSUPP echoing the opcode; the connection stays open", arguments: unknownOpcodes)
    func unknownOpcode(rule: RuleCase) throws {
        let session = try Session()
        try expectRefusedAndOpen(rule, on: session.connection)
    }

    @Test("a malformed request gets -EINVAL; the connection stays open", arguments: malformed)
    func malformedRequest(rule: RuleCase) throws {
        let session = try Session()
        try expectRefusedAndOpen(rule, on: session.connection)
    }

    @Test("a refused request changes nothing: memory and page state are as before")
    func refusalHasNoEffect() throws {
        let session = try Session()
        let connection = session.connection
        try connection.writeBytes(gpa: 0x2000, data: [7, 7, 7, 7, 7, 7, 7, 7])
        for rule in Self.malformed where rule.opcode == .write || rule.opcode == .setAttributes {
            _ = try connection.request(
                opcode: rule.opcode,
                payload: rule.payload,
                flags: rule.flags,
                status: rule.status
            )
        }
        #expect(try connection.readBytes(gpa: 0x2000, length: 8) == [7, 7, 7, 7, 7, 7, 7, 7])
        #expect(try connection.readBytes(gpa: 0, length: 8) == [0, 0, 0, 0, 0, 0, 0, 0])
        let state = try connection.pageState(at: 0)
        #expect(state.isPrivate && !state.isAccessible && state.refcount == 0)
    }
}
