//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClient against a server that breaks protocol v1: nothing is trusted blindly.
//
//===----------------------------------------------------------------------===//

import GmemClient
import GmemProtocol
import Testing

@Suite("GmemClient against a misbehaving server", .timeLimit(.minutes(1)))
struct HostileServerTests {
    /// How the fake server answers HELLO: correctly by default.
    typealias HelloScript = @Sendable (FrameHeader) -> [UInt8]?

    /// A fake server that answers HELLO with `hello` and everything else with `script` (by default: closes).
    private func fakeServer(
        hello: @escaping HelloScript = { FakeReplies.hello(to: $0) },
        script: @escaping FakeServer.Script = { _, _ in nil }
    ) throws -> FakeServer {
        try FakeServer { header, payload in
            header.opcode == .hello ? hello(header) : script(header, payload)
        }
    }

    @Test("a frame length of 4 GiB is refused at once, without waiting for the bytes")
    func hugeLength() async throws {
        let server = try self.fakeServer(hello: { FakeReplies.raw(to: $0, length: .max) })
        defer { server.stop() }
        let error = await expectClientError(.protocolError) { _ = try await GmemClient.connect(path: server.path) }
        #expect(error?.code == .protocolViolation)
    }

    @Test("a frame longer than the advertised max_payload is refused")
    func overMaxPayload() async throws {
        let server = try self.fakeServer(
            hello: { FakeReplies.hello(to: $0, maxPayload: 4096) },
            script: { header, _ in FakeReplies.raw(to: header, length: 16 + 4097) }
        )
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        await expectClientError(.protocolError) { try await client.ping() }
        await client.close()
    }

    @Test("a HELLO reply whose max_payload leaves no room for WRITE data is refused")
    func tinyMaxPayload() async throws {
        let server = try self.fakeServer(hello: { FakeReplies.hello(to: $0, maxPayload: 16) })
        defer { server.stop() }
        await expectClientError(.protocolError) { _ = try await GmemClient.connect(path: server.path) }
    }

    @Test("a HELLO refusal is a daemon error")
    func helloRefused() async throws {
        let server = try self.fakeServer(hello: {
            FakeReplies.raw(to: $0, status: Errno.permissionDenied.wireStatus)
        })
        defer { server.stop() }
        let error = await expectClientError(.permissionDenied) { _ = try await GmemClient.connect(path: server.path) }
        #expect(error?.code == .daemonError)
        #expect(error?.opcode == .hello)
    }

    @Test("a reply out of order fails the request and every later one")
    func wrongID() async throws {
        let server = try self.fakeServer(script: { header, _ in FakeReplies.raw(to: header, id: header.id &+ 1) })
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        let error = await expectClientError(.protocolError) { try await client.ping() }
        #expect(error?.code == .protocolViolation)
        await expectClientError(.protocolError) { try await client.ping() }
        await client.close()
    }

    @Test("a READ reply of the wrong size is a protocol violation that closes the connection")
    func wrongReadSize() async throws {
        let server = try self.fakeServer(script: { header, _ in FakeReplies.raw(to: header, payload: [1, 2]) })
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        await expectClientError(.protocolError) { _ = try await client.read(at: 0, count: 4) }
        let later = await expectClientError(.protocolError) { try await client.ping() }
        #expect(later?.code == .protocolViolation)
        await client.close()
    }

    @Test("an error reply with a payload other than the two allowed is a protocol violation")
    func errorWithPayload() async throws {
        let server = try self.fakeServer(script: { header, _ in
            FakeReplies.raw(to: header, status: Errno.badAddress.wireStatus, payload: [0, 0, 0, 0])
        })
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        await expectClientError(.protocolError) { try await client.discard(at: 0, size: 4096) }
        await client.close()
    }

    @Test("a partial WRITE failure carries bytes_completed, shifted past earlier chunks of a split write")
    func partialProgress() async throws {
        let server = try self.fakeServer(
            hello: { FakeReplies.hello(to: $0, maxPayload: 1024) },
            script: { header, payload in
                // Fail the chunk at gpa 0x1000 + 1008 after 100 bytes; accept the others.
                let gpa = payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                guard gpa == 0x1000 + 1008 else { return FakeReplies.raw(to: header) }
                var progress: [UInt8] = []
                PartialProgressPayload(bytesCompleted: 100).write(to: &progress)
                return FakeReplies.raw(to: header, status: Errno.ioError.wireStatus, payload: progress)
            }
        )
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        let error = await expectClientError(.ioError) {
            try await client.write(at: 0x1000, bytes: [UInt8](repeating: 7, count: 3000))
        }
        #expect(error?.code == .daemonError)
        #expect(error?.opcode == .write)
        #expect(error?.bytesCompleted == 1008 + 100)
        await client.close()
    }

    @Test("the server closing mid-session fails the outstanding request with connectionClosed")
    func closedMidSession() async throws {
        let server = try self.fakeServer()
        defer { server.stop() }
        let client = try await GmemClient.connect(path: server.path)
        let error = await expectClientError(.connectionReset) { try await client.ping() }
        #expect(error?.code == .connectionClosed)
    }
}
