//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// End-to-end tests of GmemClient against a real gmemd: HELLO, errors, closing.
//
//===----------------------------------------------------------------------===//

import Foundation
import GmemClient
import GmemProtocol
import Testing

@Suite("GmemClient connection", .timeLimit(.minutes(1)))
struct ClientConnectionTests {
    @Test("connect performs HELLO and exposes its fields")
    func helloFields() async throws {
        try await withClient(size: "8M", ["--max-gpcs", "7", "--max-payload", "64K"]) { client, daemon in
            let hello = client.hello
            #expect(hello.version == 1)
            #expect(hello.features.contains(.events))
            #expect(hello.pageSize == 4096)
            #expect(hello.folioSize >= hello.pageSize)
            #expect(hello.regionSize == 8 << 20)
            #expect(hello.maxPayload == 64 << 10)
            #expect(hello.maxGpcs == 7)
            #expect(hello.regionID != 0)
            #expect(hello.regionFlags.contains(.noDirectMap))
            #expect(!hello.regionFlags.contains(.readOnly))
            #expect(!hello.regionFlags.contains(.recovered))
            #expect(client.socketPath == daemon.socketPath)
            #expect(client.isActive)
        }
    }

    @Test("features not requested are not granted")
    func noEvents() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.connect(features: [])
            #expect(!client.hello.features.contains(.events))
            try await client.ping([1, 2, 3])
            await client.close()
        }
    }

    @Test("daemon errors map to Errno and leave the connection usable")
    func errorsMapToErrno() async throws {
        try await withClient(["--max-gpcs", "2"]) { client, _ in
            let size = client.hello.regionSize
            let fault = await expectClientError(.badAddress) { _ = try await client.read(at: size - 4, count: 8) }
            #expect(fault?.code == .daemonError)
            #expect(fault?.opcode == .read)
            #expect(fault?.bytesCompleted == nil)
            #expect(fault?.description == "EFAULT: the range lies outside guest memory")

            await expectClientError(.badAddress) { try await client.write(at: size, bytes: [1]) }
            await expectClientError(.invalidArgument) { try await client.discard(at: 100, size: 4096) }
            await expectClientError(.invalidArgument) { try await client.setAttributes(at: 0, size: 0, private: false) }
            await expectClientError(.badAddress) { try await client.discard(at: size, size: 4096) }
            await expectClientError(.invalidArgument) { _ = try await client.pageStates(at: 1, count: 1) }
            // A GPC may not cross a page.
            await expectClientError(.invalidArgument) { _ = try await client.activateCache(at: 4000, length: 200) }

            let cache = try await client.activateCache(at: 0, length: 16)
            await expectClientError(.invalidArgument) { _ = try await cache.read(offset: 8, count: 16) }
            _ = try await client.activateCache(at: 4096, length: 16)
            await expectClientError(.noSpace) { _ = try await client.activateCache(at: 8192, length: 16) }
            try await cache.deactivate()
            let gone = await expectClientError(.noSuchEntry) { try await cache.deactivate() }
            #expect(gone?.opcode == .gpcDeactivate)
            await expectClientError(.noSuchEntry) { _ = try await cache.read(count: 1) }

            // Refused locally: the daemon would answer EMSGSIZE and close the connection.
            let tooLong = [UInt8](repeating: 0, count: Int(client.hello.maxPayload) + 1)
            let local = await expectClientError(.messageTooLong) { try await client.ping(tooLong) }
            #expect(local?.code == .invalidArgument)

            try await client.ping(Array("still here".utf8))
            let stats = try await client.stats()
            #expect((stats["errors"] ?? 0) >= 10)
        }
    }

    @Test("a split READ past the end fails with EFAULT before anything is sent")
    func splitReadBounds() async throws {
        try await withClient(["--max-payload", "4K"]) { client, _ in
            let before = try await client.stats()
            let size = client.hello.regionSize
            let error = await expectClientError(.badAddress) { _ = try await client.read(at: size - 8192, count: 8193) }
            #expect(error?.opcode == .read)
            let after = try await client.stats()
            #expect(after["reads"] == before["reads"])
            #expect(after["errors"] == before["errors"])
        }
    }

    @Test("nothing listening: connectFailed with the socket's errno and a clear message")
    func connectFailure() async throws {
        let directory = try makeTemporaryDirectory(prefix: "gmem-none")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/missing.sock"
        let error = await expectClientError(.noSuchEntry) { _ = try await GmemClient.connect(path: path) }
        #expect(error?.code == .connectFailed)
        #expect(error?.description.hasPrefix("cannot connect to gmemd at \(path): ") == true)
    }

    @Test("closing fails later requests; a daemon exit fails outstanding ones")
    func closedConnections() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.connect()
            await client.close()
            await client.close()
            let closed = await expectClientError(.shutdown) { _ = try await client.read(at: 0, count: 1) }
            #expect(closed?.code == .connectionClosed)
            #expect(closed?.opcode == .read)

            let other = try await daemon.connect()
            var events = other.events.makeAsyncIterator()
            daemon.stop()
            let reset = await expectClientError(.connectionReset) { try await other.ping() }
            #expect(reset?.code == .connectionClosed)
            // The event stream finishes with the connection.
            #expect(await events.next() == nil)
        }
    }
}
