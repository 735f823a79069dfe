//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// ReplyFrameDecoder: cuts the daemon's byte stream into validated ReplyFrames.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import NIOCore

/// Splits the bytes gmemd sends into ``ReplyFrame``s, checking every length before trusting it.
///
/// Contract:
/// - A header whose length lies outside `16 ... 16 + maxPayload` is a protocol violation: the decoder throws and
///   the connection is closed; it never allocates or waits for the bytes such a length claims.
/// - Until HELLO succeeds the limit is the protocol's default payload (1 MiB, far above the 64-byte HELLO reply);
///   once a successful HELLO reply passes through, the limit becomes the `max_payload` it advertises.
/// - Every frame is checked with ``ReplyFrame/init(decoding:)-(UnsafeRawBufferPointer)`` (flags, status, error
///   payload shapes) before it is passed on.
///
/// Not `Sendable`: it lives inside a `ByteToMessageHandler` on the channel's event loop.
struct ReplyFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ReplyFrame

    private var frames: FrameDecoder

    /// Creates a decoder that accepts payloads up to `maxPayload` bytes until HELLO completes.
    init(maxPayload: Int = WireProtocol.defaultMaxPayload) {
        self.frames = FrameDecoder(maxPayload: maxPayload)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let decision = buffer.withUnsafeReadableBytes { self.frames.decodeNext($0) }
        switch decision {
        case .needMoreBytes:
            return .needMoreData

        case .badLength(let header):
            throw GmemClientError.protocolViolation(
                "a frame of \(header.length) bytes (\(header.opcode)), outside 16 ... \(self.frames.maxFrameLength)"
            )

        case .frame(let header):
            // FrameDecoder checked 16 <= length <= 16 + maxPayload and that the buffer holds all of it.
            let length = Int(header.length)
            let result = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(Errno) in
                    try ReplyFrame(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
                }
            }
            buffer.moveReaderIndex(forwardBy: length)
            let frame: ReplyFrame
            switch result {
            case .success(let decoded):
                frame = decoded
            case .failure:
                throw GmemClientError.protocolViolation("an invalid frame header: \(header)")
            }
            self.adoptLimits(from: frame)
            context.fireChannelRead(Self.wrapInboundOut(frame))
            return .continue
        }
    }

    mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        // Complete frames still count; a truncated tail is reported by ByteToMessageHandler as leftover data and
        // the outstanding requests fail because the connection closed.
        try self.decode(context: context, buffer: &buffer)
    }

    /// After a successful HELLO, enforce the `max_payload` the daemon advertised.
    private mutating func adoptLimits(from frame: ReplyFrame) {
        guard frame.header.opcode == .hello, frame.isSuccess,
            let hello = try? frame.decodePayload(as: HelloReply.self)
        else { return }
        self.frames = FrameDecoder(maxPayload: Int(hello.maxPayload))
    }
}

/// The bytes of one request on their way to the daemon, and the promise its reply completes.
///
/// The frame is encoded with id 0; ``ClientConnectionHandler`` assigns the id on the event loop, in wire order.
/// `Sendable`: a `ByteBuffer` and an `EventLoopPromise` are both `Sendable`.
struct OutgoingRequest: Sendable {
    /// The request's opcode, checked against the reply's.
    var opcode: Opcode
    /// The complete frame, header included.
    var frame: ByteBuffer
    /// Completed with the reply frame (status 0) or failed with a ``GmemClientError``.
    var promise: EventLoopPromise<ReplyFrame>
}

/// Requests written to the channel together, in one flush, so that they are pipelined.
struct OutgoingBatch: Sendable {
    var requests: [OutgoingRequest]
}

/// A ``WireWriter`` over a `ByteBuffer`, pinning little-endian.
///
/// A wrapper instead of a retroactive `ByteBuffer: WireWriter` conformance, which would add a little-endian
/// `writeInteger(_:)` to every `ByteBuffer` in scope, shadowing NIO's big-endian default.
struct ByteBufferWireWriter: WireWriter {
    var buffer: ByteBuffer

    mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        self.buffer.writeInteger(value, endianness: .little, as: T.self)
    }

    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        self.buffer.writeBytes(bytes)
    }
}
