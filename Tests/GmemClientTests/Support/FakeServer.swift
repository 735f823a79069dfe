//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// FakeServer: a scripted, deliberately misbehaving stand-in for gmemd.
//
//===----------------------------------------------------------------------===//

import Foundation
import GmemProtocol

/// Listens on a Unix socket, accepts one connection and answers each request frame with whatever `script` returns
/// for it: bytes to send (possibly malformed), or `nil` to close the connection.
///
/// Blocking POSIX I/O on its own thread keeps it independent of the NIO code under test. `@unchecked Sendable`:
/// the descriptors are written once before the thread starts, and the thread only reads them.
final class FakeServer: @unchecked Sendable {
    typealias Script = @Sendable (_ header: FrameHeader, _ payload: [UInt8]) -> [UInt8]?

    let directory: String
    let path: String
    private let listener: Int32
    private let script: Script

    init(script: @escaping Script) throws {
        self.directory = try makeTemporaryDirectory(prefix: "gmem-fake")
        self.path = self.directory + "/fake.sock"
        self.script = script
        self.listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(self.path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: pathBytes.prefix(buffer.count - 1))
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(self.listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard self.listener >= 0, bound == 0, listen(self.listener, 1) == 0 else {
            throw POSIXError(.EADDRNOTAVAIL)
        }
        let thread = Thread { [self] in self.serve() }
        thread.start()
    }

    /// Stops listening and removes the socket's directory.
    func stop() {
        shutdown(self.listener, Int32(SHUT_RDWR))
        close(self.listener)
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    private func serve() {
        let connection = accept(self.listener, nil, nil)
        guard connection >= 0 else { return }
        defer { close(connection) }
        while let header = self.receive(connection, count: FrameHeader.size) {
            let parsed = header.withUnsafeBytes { FrameHeader(decoding: $0) }
            guard let parsed, parsed.length >= 16, parsed.length <= 1 << 20 else { return }
            guard let payload = self.receive(connection, count: Int(parsed.length) - FrameHeader.size) else { return }
            guard let reply = self.script(parsed, payload) else { return }
            guard self.send(connection, reply) else { return }
        }
    }

    private func receive(_ connection: Int32, count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = bytes.withUnsafeMutableBytes { read(connection, $0.baseAddress! + offset, count - offset) }
            guard received > 0 else { return nil }
            offset += received
        }
        return bytes
    }

    private func send(_ connection: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { write(connection, $0.baseAddress! + offset, bytes.count - offset) }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }
}

/// Frames a fake server sends.
enum FakeReplies {
    /// A well-formed HELLO reply; `maxPayload` may be set to nonsense.
    static func hello(to request: FrameHeader, maxPayload: UInt32 = 1 << 20) -> [UInt8] {
        let hello = HelloReply(
            features: [],
            pageSize: 4096,
            folioSize: 4096,
            regionSize: 1 << 20,
            regionID: 42,
            maxPayload: maxPayload,
            maxGpcs: 4,
            regionFlags: []
        )
        var bytes: [UInt8] = []
        Reply.encode(replyingTo: request, payload: hello, into: &bytes)
        return bytes
    }

    /// A reply to `request` with an arbitrary header and payload.
    static func raw(
        to request: FrameHeader,
        length: UInt32? = nil,
        id: UInt32? = nil,
        status: Int32 = 0,
        payload: [UInt8] = []
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        FrameHeader(
            length: length ?? UInt32(16 + payload.count),
            opcode: request.opcode,
            flags: .reply,
            id: id ?? request.id,
            status: status
        ).write(to: &bytes)
        bytes.writeBytes(payload)
        return bytes
    }
}
