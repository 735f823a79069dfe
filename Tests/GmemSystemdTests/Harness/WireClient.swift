import GmemErrno
import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A blocking wire-protocol client for the tests: one request at a time,
/// each reply read before the next request, so "acknowledged" is exact.
final class WireClient {
    private let fd: Int32
    private var nextID: UInt32 = 1
    private(set) var hello: HelloReply? = nil

    /// Connects to `path`, retrying until `timeout` (the daemon may still be starting).
    init(path: String, timeout: Duration = .seconds(10)) throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let fd = UnixAddress.connect(path: path) {
                self.fd = fd
                break
            }
            guard ContinuousClock.now < deadline else { throw TestFailure("cannot connect to \(path)") }
            usleep(20_000)
        }
    }

    deinit { close(self.fd) }

    enum Failure: Error, Equatable {
        /// The daemon answered with this negative status.
        case status(Int32)
        /// The connection ended (the daemon died): the request may or may not have been done.
        case disconnected
    }

    @discardableResult
    func sayHello() throws -> HelloReply {
        let payload = try self.call(.hello(version: WireProtocol.version, features: 0))
        let reply = try payload.withUnsafeBytes { try HelloReply(decoding: $0) }
        self.hello = reply
        return reply
    }

    func write(_ gpa: UInt64, _ bytes: [UInt8]) throws {
        _ = try bytes.withUnsafeBytes { try self.call(.write(gpa: gpa, data: $0)) }
    }

    func read(_ gpa: UInt64, count: Int) throws -> [UInt8] {
        try self.call(.read(gpa: gpa, length: UInt32(count)))
    }

    func setAttributes(_ gpa: UInt64, size: UInt64, shared: Bool) throws {
        _ = try self.call(.setAttributes(gpa: gpa, size: size, attributes: shared ? 0 : WireProtocol.attributePrivate))
    }

    /// Per page: true when private.
    func privatePages(_ gpa: UInt64, count: Int) throws -> [Bool] {
        let payload = try self.call(.pageState(gpa: gpa, pageCount: UInt32(count)))
        let reply = try payload.withUnsafeBytes { try PageStateReply(decoding: $0) }
        return reply.entries.map(\.isPrivate)
    }

    /// Sends one request and returns its reply's payload.
    private func call(_ request: Request) throws -> [UInt8] {
        let id = self.nextID
        self.nextID &+= 1
        let frame = try request.encoded(id: id)
        try self.sendAll(frame)
        let headerBytes = try self.receive(FrameHeader.size)
        guard let header = headerBytes.withUnsafeBytes({ FrameHeader(decoding: $0) }), header.payloadLength >= 0 else {
            throw Failure.disconnected
        }
        let payload = try self.receive(header.payloadLength)
        guard header.id == id else { throw TestFailure("reply id \(header.id) for request \(id)") }
        guard header.status == 0 else { throw Failure.status(header.status) }
        return payload
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a dead daemon is an error, not SIGPIPE for the test runner.
            let sent = SystemCall.retryingOnInterrupt {
                bytes.withUnsafeBytes {
                    Glibc.send(self.fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
                }
            }
            guard sent > 0 else { throw Failure.disconnected }
            offset += sent
        }
    }

    private func receive(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = SystemCall.retryingOnInterrupt {
                bytes.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress! + offset, count - offset, 0) }
            }
            guard received > 0 else { throw Failure.disconnected }
            offset += received
        }
        return bytes
    }
}
