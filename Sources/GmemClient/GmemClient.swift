//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClient: one pipelined connection to gmemd, driven with async/await.
//
//===----------------------------------------------------------------------===//

import GmemCommandLine
import GmemProtocol
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An async client for gmemd's wire protocol v1 over one Unix socket connection.
///
/// ```swift
/// let client = try await GmemClient.connect(path: "/run/gmemd/gmemd.sock")
/// try await client.write(at: 0x1000, bytes: [1, 2, 3, 4])
/// let bytes = try await client.read(at: 0x1000, count: 4)
/// await client.close()
/// ```
///
/// Contract:
/// - ``connect(path:features:eventLoopGroup:)`` completes HELLO before it returns; ``hello`` holds the daemon's
///   answer for the life of the connection.
/// - Any number of tasks may call any method concurrently. Every call sends its frames at once (pipelining) and
///   the daemon applies requests in the order the frames reach it. A call that needs several frames (a READ or
///   WRITE over `max_payload`, a long PAGE_STATE) sends them all in one flush.
/// - A non-zero reply status throws ``GmemClientError`` with code ``GmemClientError/Code/daemonError`` and the
///   daemon's ``GmemClientError/errno``. When the connection closes, every outstanding and later call throws code
///   ``GmemClientError/Code/connectionClosed``.
/// - Guest page caches that are not deactivated are released by the daemon when the connection closes, and the
///   connection closes when ``close()`` is called or the last reference to the client goes away.
/// - A call whose frames were sent waits for its replies even if its task is cancelled: the daemon applies the
///   requests regardless, and the replies keep the connection in step. There is no timeout; the daemon answers or
///   the connection closes.
///
/// `Sendable`: every stored property is an immutable `Sendable` value; the mutable state of the connection lives in
/// its NIO handlers, confined to the channel's event loop.
public final class GmemClient: Sendable {
    /// The daemon's HELLO reply: page, folio and region sizes, `max_payload`, `max_gpcs`, region flags.
    public let hello: HelloReply

    /// The socket path this client connected to.
    public let socketPath: String

    /// GPC_INVALIDATED events of this connection's guest page caches, in arrival order.
    ///
    /// Events arrive only when ``connect(path:features:eventLoopGroup:)`` requested
    /// ``HelloReply/Features/events`` and the daemon granted it (see ``hello``). An event that a request of this
    /// connection caused is in the stream before that request's call returns. The stream buffers events nobody
    /// consumes, so long-lived clients that request events should iterate it; it has one consumer and finishes when
    /// the connection closes.
    public let events: AsyncStream<GpcInvalidatedEvent>

    /// The connection; its handlers own all mutable state.
    let channel: any Channel

    /// Why the connection ended, once it has.
    let outcome: ConnectionOutcome

    private init(
        channel: any Channel,
        outcome: ConnectionOutcome,
        hello: HelloReply,
        socketPath: String,
        events: AsyncStream<GpcInvalidatedEvent>
    ) {
        self.channel = channel
        self.outcome = outcome
        self.hello = hello
        self.socketPath = socketPath
        self.events = events
    }

    deinit {
        self.channel.close(promise: nil)
    }

    /// Connects to gmemd and completes HELLO.
    ///
    /// - Parameters:
    ///   - path: the daemon's socket; `nil` resolves the same default as gmemd (``defaultSocketPath``).
    ///   - features: the features to request; events by default. Check ``hello``'s `features` for what was granted.
    ///   - eventLoopGroup: where the connection's I/O runs; NIO's process-wide singleton by default.
    /// - Throws: ``GmemClientError`` with code ``GmemClientError/Code/connectFailed`` if nothing answers at `path`,
    ///   ``GmemClientError/Code/daemonError`` if the daemon refuses HELLO (`EACCES`, `EBUSY`,
    ///   `EPROTONOSUPPORT`), ``GmemClientError/Code/protocolViolation`` if its reply is malformed.
    public static func connect(
        path: String? = nil,
        features: HelloReply.Features = .events,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> GmemClient {
        let path = path ?? GmemClient.defaultSocketPath
        let (events, continuation) = AsyncStream.makeStream(of: GpcInvalidatedEvent.self)
        let outcome = ConnectionOutcome()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(ByteToMessageHandler(ReplyFrameDecoder()))
                        try sync.addHandler(ClientConnectionHandler(events: continuation, outcome: outcome))
                    }
                }
                .connect(unixDomainSocketPath: path)
                .get()
        } catch {
            continuation.finish()
            throw GmemClientError.connectFailed(path: path, error)
        }

        do {
            let hello = try await Self.hello(on: channel, outcome: outcome, features: features)
            return GmemClient(channel: channel, outcome: outcome, hello: hello, socketPath: path, events: events)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Closes the connection. Outstanding calls fail with code ``GmemClientError/Code/connectionClosed``; the
    /// daemon deactivates this connection's guest page caches. Calling it again does nothing.
    public func close() async {
        self.outcome.record(.closedByClient)
        try? await self.channel.close()
    }

    /// Whether the connection is still open.
    public var isActive: Bool {
        self.channel.isActive
    }

    /// The socket path gmemd and gmemctl use when none is given: `$GMEMD_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/gmemd.sock`, else `/run/gmemd/gmemd.sock` for root, else `./gmemd.sock`.
    public static var defaultSocketPath: String {
        var environment: [String: String] = [:]
        for name in ["GMEMD_SOCKET", "XDG_RUNTIME_DIR"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return SocketPath.resolveDefault(environment: environment, uid: UInt32(getuid()))
    }

    // MARK: HELLO

    private static func hello(
        on channel: any Channel,
        outcome: ConnectionOutcome,
        features: HelloReply.Features
    ) async throws -> HelloReply {
        let request = try Self.makeRequest(
            .hello(version: WireProtocol.version, features: features.rawValue),
            maxPayload: WireProtocol.defaultMaxPayload,
            allocator: channel.allocator,
            eventLoop: channel.eventLoop
        )
        let frame = try await Self.submit([request], on: channel, outcome: outcome)[0].get()
        let hello: HelloReply
        do {
            hello = try frame.decodePayload(as: HelloReply.self)
        } catch {
            throw GmemClientError.protocolViolation("a HELLO reply of \(frame.payload.count) bytes", opcode: .hello)
        }
        // Every later computation divides by or subtracts from these; refuse values that would make them trap.
        guard hello.version == WireProtocol.version else {
            throw GmemClientError.protocolViolation("HELLO version \(hello.version)", opcode: .hello)
        }
        guard hello.pageSize > 0, hello.maxPayload > UInt32(FrameHeader.size) else {
            throw GmemClientError.protocolViolation(
                "HELLO page_size \(hello.pageSize), max_payload \(hello.maxPayload)",
                opcode: .hello
            )
        }
        return hello
    }

    // MARK: Sending requests

    /// Encodes `request` into a frame for the daemon, refusing a payload over `maxPayload` (which the daemon would
    /// answer with `-EMSGSIZE` and close the connection).
    static func makeRequest(
        _ request: Request,
        maxPayload: Int,
        allocator: ByteBufferAllocator,
        eventLoop: any EventLoop
    ) throws(GmemClientError) -> OutgoingRequest {
        let payloadLength = request.payloadLength
        guard payloadLength <= maxPayload else {
            throw .invalidArgument(
                .messageTooLong,
                opcode: request.opcode,
                "a \(request.opcode) payload of \(payloadLength) bytes exceeds max_payload (\(maxPayload))"
            )
        }
        var writer = ByteBufferWireWriter(buffer: allocator.buffer(capacity: FrameHeader.size + payloadLength))
        do {
            try request.encode(id: 0, into: &writer)
        } catch {
            throw .invalidArgument(error, opcode: request.opcode, "the \(request.opcode) frame cannot be encoded")
        }
        return OutgoingRequest(opcode: request.opcode, frame: writer.buffer, promise: eventLoop.makePromise())
    }

    /// Encodes `request` for this connection; see ``makeRequest(_:maxPayload:allocator:eventLoop:)``.
    func makeRequest(_ request: Request) throws(GmemClientError) -> OutgoingRequest {
        try Self.makeRequest(
            request,
            maxPayload: Int(self.hello.maxPayload),
            allocator: self.channel.allocator,
            eventLoop: self.channel.eventLoop
        )
    }

    /// Writes every request in one flush and returns the futures of their replies, in request order.
    ///
    /// Requests written to a channel whose pipeline is already gone fail with the error `outcome` recorded.
    static func submit(
        _ requests: [OutgoingRequest],
        on channel: any Channel,
        outcome: ConnectionOutcome
    ) -> [EventLoopFuture<ReplyFrame>] {
        let futures = requests.map(\.promise.futureResult)
        channel.writeAndFlush(OutgoingBatch(requests: requests)).whenFailure { error in
            // The handler fails its own requests; this covers a channel whose pipeline is already gone.
            // Completing a promise twice is a no-op in NIO.
            let failure = (error as? GmemClientError) ?? outcome.current ?? .closedByDaemon
            for request in requests { request.promise.fail(failure.attributed(to: request.opcode)) }
        }
        return futures
    }

    /// Writes every request in one flush; see ``submit(_:on:outcome:)``.
    func submit(_ requests: [OutgoingRequest]) -> [EventLoopFuture<ReplyFrame>] {
        Self.submit(requests, on: self.channel, outcome: self.outcome)
    }

    /// Sends one request and waits for its successful reply.
    func perform(_ request: OutgoingRequest) async throws -> ReplyFrame {
        try await self.submit([request])[0].get()
    }

    /// Sends one request whose success reply is empty.
    func performExpectingEmptyReply(_ request: OutgoingRequest) async throws {
        let frame = try await self.perform(request)
        guard frame.payload.isEmpty else {
            throw self.violation(
                "a \(request.opcode) reply with \(frame.payload.count) bytes of payload",
                opcode: request.opcode
            )
        }
    }
}

extension GmemClient {
    /// A reply that is well-framed but wrong for its request: the daemon cannot be trusted any more, so the
    /// connection is failed with the returned error (every outstanding and later request gets it) and closed.
    func violation(_ detail: String, opcode: Opcode) -> GmemClientError {
        let error = GmemClientError.protocolViolation(detail, opcode: opcode)
        self.channel.pipeline.fireErrorCaught(error)
        return error
    }
}

extension GmemClientError {
    /// Connecting to `path` failed with `error`.
    static func connectFailed(path: String, _ error: any Error) -> GmemClientError {
        let errno: Errno
        let reason: String
        if let error = error as? IOError {
            errno = Errno(rawValue: error.errnoCode)
            reason = String(cString: strerror(error.errnoCode))
        } else if error is SocketAddressError {
            errno = .invalidArgument
            reason = "the path is not a usable Unix socket address (at most \(SocketPath.maximumLength) bytes)"
        } else {
            errno = .connectionReset
            reason = "\(error)"
        }
        return GmemClientError(
            code: .connectFailed,
            errno: errno,
            detail: "cannot connect to gmemd at \(path): \(reason)"
        )
    }
}
