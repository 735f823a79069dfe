//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClient's READV, WRITEV and atomic operations against the real gmemd.
//
//===----------------------------------------------------------------------===//

import GmemClient
import GmemProtocol
import Testing

@Suite("GmemClient READV, WRITEV and atomics", .timeLimit(.minutes(1)))
struct ClientDeviceOpsTests {
    @Test("writev and readv move each segment; readv returns one array per segment")
    func vectors() async throws {
        try await withClient { client, _ in
            try await client.writev([
                (gpa: 0x1ffe, bytes: [1, 2, 3, 4]), (gpa: 0x8000, bytes: []), (gpa: 0x9000, bytes: [9]),
            ])
            let segments = try await client.readv([
                (gpa: 0x9000, count: 1), (gpa: 0x1ffe, count: 4), (gpa: 0x10, count: 0),
            ])
            #expect(segments == [[9], [1, 2, 3, 4], []])
            #expect(try await client.read(at: 0x1ffe, count: 4) == [1, 2, 3, 4])
            let states = try await client.pageStates(at: 0x1000, count: 9)
            #expect(states.allSatisfy { $0.refcount == 0 && !$0.isAccessible })

            await expectClientError(.badAddress) { _ = try await client.readv([(gpa: 16 << 20, count: 1)]) }
            await expectClientError(.invalidArgument) { _ = try await client.readv([]) }
            await expectClientError(.invalidArgument) { try await client.writev([]) }
        }
    }

    @Test("atomic returns the old value; GPC atomics act on the same memory")
    func atomics() async throws {
        try await withClient { client, _ in
            #expect(try await client.atomic(.store, width: 4, at: 0x3004, operand: 5) == 0)
            #expect(try await client.atomic(.fetchAdd, width: 4, at: 0x3004, operand: 3) == 5)
            #expect(try await client.atomic(.compareExchange, width: 4, at: 0x3004, operand: 1, expected: 8) == 8)
            let cache = try await client.activateCache(at: 0x3000, length: 16)
            #expect(try await cache.atomic(.exchange, width: 4, offset: 4, operand: 77) == 1)
            #expect(try await cache.atomic(.load, width: 8, offset: 0) == 77 << 32)
            #expect(try await client.atomic(.load, width: 1, at: 0x3004) == 77)

            await expectClientError(.invalidArgument) { _ = try await client.atomic(.load, width: 8, at: 0x3004) }
            await expectClientError(.badAddress) { _ = try await client.atomic(.load, width: 8, at: 16 << 20) }
            await expectClientError(.invalidArgument) { _ = try await cache.atomic(.load, width: 8, offset: 16) }
            // Refused locally: the daemon could not be asked.
            let local = await expectClientError(.invalidArgument) {
                _ = try await client.atomic(.load, width: 3, at: 0)
            }
            #expect(local?.code == .invalidArgument)
            await expectClientError(.invalidArgument) {
                _ = try await client.atomic(.fetchAdd, width: 1, at: 0, operand: 256)
            }
            try await cache.deactivate()
            await expectClientError(.noSuchEntry) { _ = try await cache.atomic(.load, width: 4) }
        }
    }
}
