//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// End-to-end tests of guest page caches and GPC_INVALIDATED events.
//
//===----------------------------------------------------------------------===//

import GmemClient
import GmemProtocol
import Testing

@Suite("GmemClient guest page caches", .timeLimit(.minutes(1)))
struct ClientGuestPageCacheTests {
    @Test("activate, write, read, refresh to a new window, deactivate")
    func lifecycle() async throws {
        try await withClient { client, _ in
            try await client.write(at: 0x6000, bytes: Array(0..<32))
            let cache = try await client.activateCache(at: 0x5000, length: 64)
            #expect(cache.handle != 0)
            #expect(cache.gpa == 0x5000 && cache.length == 64)

            try await cache.write(offset: 8, bytes: [0xde, 0xad, 0xbe, 0xef])
            #expect(try await cache.read(offset: 8, count: 4) == [0xde, 0xad, 0xbe, 0xef])
            #expect(try await client.read(at: 0x5008, count: 4) == [0xde, 0xad, 0xbe, 0xef])

            // The daemon holds the page while the cache is active.
            let held = try await client.pageStates(at: 0x5000, count: 1)
            #expect(held.first?.refcount == 1)
            #expect(held.first?.isAccessible == true)

            try await cache.refresh(at: 0x6000, length: 32)
            #expect(cache.gpa == 0x6000 && cache.length == 32)
            #expect(try await cache.read(count: 32) == Array(0..<32))
            await expectClientError(.invalidArgument) { _ = try await cache.read(offset: 0, count: 33) }

            try await cache.deactivate()
            await expectClientError(.noSuchEntry) { _ = try await cache.read(count: 1) }
            let released = try await client.pageStates(at: 0x5000, count: 2)
            #expect(released.allSatisfy { $0.refcount == 0 })
        }
    }

    @Test("another client's conversion sends GPC_INVALIDATED; the cache is ESTALE until refreshed")
    func invalidation() async throws {
        try await withClient { client, daemon in
            let cache = try await client.activateCache(at: 0x7000, length: 128)
            try await cache.write(bytes: [1, 2, 3])
            var events = client.events.makeAsyncIterator()

            let other = try await daemon.connect(features: [])
            try await other.setAttributes(at: 0x7000, size: 4096, private: false)
            await other.close()

            let event = await events.next()
            #expect(event == GpcInvalidatedEvent(handle: cache.handle, reason: .attributesChanged))
            let stale = await expectClientError(.stale) { _ = try await cache.read(count: 3) }
            #expect(stale?.opcode == .gpcRead)
            await expectClientError(.stale) { try await cache.write(bytes: [9]) }

            try await cache.refresh()
            #expect(try await cache.read(count: 3) == [1, 2, 3])

            // A discard by this very client: the event is in the stream when the call returns.
            try await client.discard(at: 0x7000, size: 4096)
            #expect(await events.next() == GpcInvalidatedEvent(handle: cache.handle, reason: .discarded))
            await expectClientError(.stale) { _ = try await cache.read(count: 1) }
            try await cache.refresh(at: 0x7000, length: 128)
            #expect(try await cache.read(count: 3) == [0, 0, 0])
        }
    }

    @Test("caches left active are released when the connection closes")
    func releasedOnClose() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.connect()
            _ = try await client.activateCache(at: 0x9000, length: 8)
            _ = try await client.activateCache(at: 0x9010, length: 8)
            let observer = try await daemon.connect(features: [])
            #expect(try await observer.pageStates(at: 0x9000, count: 1).first?.refcount == 2)
            #expect(try await observer.stats()["gpc_active"] == 2)
            await client.close()
            // The daemon tears the connection down asynchronously; poll, with
            // room for a loaded host and a sanitizer build (a second took longer under TSan).
            var active: UInt64? = nil
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                active = try await observer.stats()["gpc_active"]
                if active == 0 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(active == 0)
            #expect(try await observer.pageStates(at: 0x9000, count: 1).first?.refcount == 0)
            await observer.close()
        }
    }
}
