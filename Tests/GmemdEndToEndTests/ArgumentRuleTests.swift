//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Precedence rules 6 and 7 on the wire: argument shape, payload bound, region bounds; zero sizes.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// Rule 6 (alignment, zero sizes: `-EINVAL`; then a length over `max_payload`: `-EMSGSIZE`) and rule 7 (the range
/// is inside the region: `-EFAULT`), for the requests that are not about GPCs. The connection stays open after each.
/// The region is 16 MiB, `max_payload` the default 1 MiB.
@Suite("Rules 6 and 7: argument shape and region bounds")
struct ArgumentRuleTests {
    static let top: UInt64 = ~0 - 15  // 2^64 − 16

    static let refused: [RuleCase] = [
        // READ and WRITE.
        RuleCase(
            name: "READ len = max_payload + 1",
            opcode: .read,
            payload: Payload.read(gpa: 0, length: defaultMaxPayload + 1),
            errno: .messageTooLong
        ),
        RuleCase(
            name: "READ len = 2^32 − 1",
            opcode: .read,
            payload: Payload.read(gpa: 0, length: .max),
            errno: .messageTooLong
        ),
        RuleCase(
            name: "READ too long and outside (6 before 7)",
            opcode: .read,
            payload: Payload.read(gpa: top, length: defaultMaxPayload + 1),
            errno: .messageTooLong
        ),
        RuleCase(
            name: "READ gpa 2^64 − 16 len 32 (overflow)",
            opcode: .read,
            payload: Payload.read(gpa: top, length: 32),
            errno: .badAddress
        ),
        RuleCase(
            name: "WRITE gpa 2^64 − 16 len 32 (overflow)",
            opcode: .write,
            payload: Payload.write(gpa: top, data: Payload.pattern(32, seed: 1)),
            errno: .badAddress
        ),
        RuleCase(
            name: "READ crossing the end",
            opcode: .read,
            payload: Payload.read(gpa: regionSize - 8, length: 16),
            errno: .badAddress
        ),
        RuleCase(
            name: "WRITE crossing the end",
            opcode: .write,
            payload: Payload.write(gpa: regionSize - 8, data: Payload.pattern(16, seed: 2)),
            errno: .badAddress
        ),
        RuleCase(
            name: "READ at region_size",
            opcode: .read,
            payload: Payload.read(gpa: regionSize, length: 1),
            errno: .badAddress
        ),
        RuleCase(
            name: "READ len 0 at region_size",
            opcode: .read,
            payload: Payload.read(gpa: regionSize, length: 0),
            errno: .badAddress
        ),
        RuleCase(
            name: "WRITE len 0 at region_size",
            opcode: .write,
            payload: Payload.write(gpa: regionSize, data: []),
            errno: .badAddress
        ),
        // SET_ATTRIBUTES and DISCARD.
        RuleCase(
            name: "SET_ATTRIBUTES size 0",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0, size: 0, attributes: 8),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "DISCARD size 0",
            opcode: .discard,
            payload: Payload.discard(gpa: 0, size: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES gpa unaligned",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0x10, size: 0x1000, attributes: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES size unaligned",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: 0x1000, size: 0x10, attributes: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "DISCARD gpa unaligned",
            opcode: .discard,
            payload: Payload.discard(gpa: 0x801, size: 0x1000),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "DISCARD size unaligned",
            opcode: .discard,
            payload: Payload.discard(gpa: 0, size: 0x1001),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES unaligned and outside (6 before 7)",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: regionSize + 1, size: 0x1000, attributes: 8),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "DISCARD size 0 and outside (6 before 7)",
            opcode: .discard,
            payload: Payload.discard(gpa: regionSize * 2, size: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "SET_ATTRIBUTES at region_size",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: regionSize, size: 0x1000, attributes: 0),
            errno: .badAddress
        ),
        RuleCase(
            name: "SET_ATTRIBUTES crossing the end",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: regionSize - 0x1000, size: 0x2000, attributes: 8),
            errno: .badAddress
        ),
        RuleCase(
            name: "SET_ATTRIBUTES overflowing 2^64",
            opcode: .setAttributes,
            payload: Payload.setAttributes(gpa: ~0 - 0xfff, size: 0x2000, attributes: 8),
            errno: .badAddress
        ),
        RuleCase(
            name: "DISCARD at region_size",
            opcode: .discard,
            payload: Payload.discard(gpa: regionSize, size: 0x1000),
            errno: .badAddress
        ),
        RuleCase(
            name: "DISCARD overflowing 2^64",
            opcode: .discard,
            payload: Payload.discard(gpa: 0x1000, size: ~0 - 0xfff),
            errno: .badAddress
        ),
        // PAGE_STATE.
        RuleCase(
            name: "PAGE_STATE npages × 4 > max_payload",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0, pages: defaultMaxPayload / 4 + 1),
            errno: .messageTooLong
        ),
        RuleCase(
            name: "PAGE_STATE npages = 2^32 − 1",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0, pages: .max),
            errno: .messageTooLong
        ),
        RuleCase(
            name: "PAGE_STATE gpa unaligned",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0x10, pages: 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "PAGE_STATE gpa unaligned, npages 0",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0x10, pages: 0),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "PAGE_STATE unaligned and too many pages (EINVAL before EMSGSIZE)",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0x10, pages: defaultMaxPayload / 4 + 1),
            errno: .invalidArgument
        ),
        RuleCase(
            name: "PAGE_STATE at region_size",
            opcode: .pageState,
            payload: Payload.pageState(gpa: regionSize, pages: 1),
            errno: .badAddress
        ),
        RuleCase(
            name: "PAGE_STATE npages 0 at region_size",
            opcode: .pageState,
            payload: Payload.pageState(gpa: regionSize, pages: 0),
            errno: .badAddress
        ),
        RuleCase(
            name: "PAGE_STATE one page past the end",
            opcode: .pageState,
            payload: Payload.pageState(gpa: 0, pages: UInt32(regionSize / pageSize) + 1),
            errno: .badAddress
        ),
        RuleCase(
            name: "PAGE_STATE overflowing 2^64",
            opcode: .pageState,
            payload: Payload.pageState(gpa: ~0 - 0xfff, pages: 2),
            errno: .badAddress
        ),
    ]

    @Test(
        "a request with bad arguments is refused with the rule's errno; the connection stays open",
        arguments: refused
    )
    func refusedArguments(rule: RuleCase) throws {
        let session = try Session()
        try expectRefusedAndOpen(rule, on: session.connection)
    }

    @Test("zero-length READ and WRITE succeed with an empty payload anywhere inside the region")
    func zeroLengthReadWrite() throws {
        let session = try Session()
        let connection = session.connection
        for gpa in [0, 0x1234, regionSize - 1] {
            let read = try connection.read(gpa: gpa, length: 0)
            #expect(read.isSuccess && read.payload.isEmpty, "READ len 0 at \(gpa): \(read.outcome)")
            let write = try connection.write(gpa: gpa, data: [])
            #expect(write.isSuccess && write.payload.isEmpty, "WRITE len 0 at \(gpa): \(write.outcome)")
        }
    }

    @Test("PAGE_STATE of 0 pages succeeds with an empty payload")
    func zeroPages() throws {
        let session = try Session()
        for gpa in [0, regionSize - pageSize] {
            let reply = try session.connection.pageState(gpa: gpa, pages: 0)
            #expect(reply.isSuccess && reply.payload.isEmpty, "\(reply.outcome)")
        }
    }

    @Test("boundaries that are allowed: the last byte, the whole region's states, a READ of max_payload")
    func allowedBoundaries() throws {
        let session = try Session()
        let connection = session.connection
        try connection.writeBytes(gpa: regionSize - 4, data: [1, 2, 3, 4])
        #expect(try connection.readBytes(gpa: regionSize - 4, length: 4) == [1, 2, 3, 4])
        let states = try connection.pageStates(gpa: 0, count: UInt32(regionSize / pageSize))
        #expect(states.allSatisfy { $0.refcount == 0 && $0.isPrivate && !$0.isAccessible })
        let big = try connection.read(gpa: 0, length: defaultMaxPayload)
        #expect(big.isSuccess && big.payload.count == Int(defaultMaxPayload))
        #expect(try connection.setAttributes(gpa: regionSize - pageSize, size: pageSize, attributes: 0).isSuccess)
        #expect(try connection.discard(gpa: regionSize - pageSize, size: pageSize).isSuccess)
    }

    @Test("a WRITE or READ across many pages and folios lands byte for byte")
    func crossPageAccess() throws {
        let session = try Session()
        let data = Payload.pattern(3 * Int(pageSize) + 100, seed: 5)
        try session.connection.writeBytes(gpa: pageSize - 50, data: data)
        #expect(try session.connection.readBytes(gpa: pageSize - 50, length: UInt32(data.count)) == data)
        // The accesses left every page as it was: private, unreferenced, inaccessible.
        try expectPages(
            [0: 0, pageSize: 0, 2 * pageSize: 0, 3 * pageSize: 0, 4 * pageSize: 0],
            in: session.daemon,
            probe: session.connection
        )
    }
}
