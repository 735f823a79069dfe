//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// FrameDecoder: finds frame boundaries in a byte stream (precedence rule 1).
//
//===----------------------------------------------------------------------===//

/// Finds frame boundaries in a stream of bytes, checking every length before trusting it.
///
/// The decoder owns no buffer: the caller accumulates bytes as they arrive (a `ByteBuffer` in a NIO handler, an
/// array in a blocking client, a fuzz input) and asks ``decodeNext(_:)`` what the front of that buffer holds:
///
/// ```swift
/// var decoder = FrameDecoder(maxPayload: Int(hello.maxPayload))
/// loop: while true {
///     switch pending.withUnsafeBytes({ decoder.decodeNext($0) }) {
///     case .needMoreBytes:
///         break loop                          // read more, then ask again
///     case .frame(let header):
///         let frame = pending.prefix(Int(header.length))   // header + payload
///         pending.removeFirst(Int(header.length))
///     case .badLength(let header):
///         // reply -EMSGSIZE with header.opcode and header.id, then close
///     }
/// }
/// ```
///
/// Rule 1: a frame length below 16 or above `16 + maxPayload` is answered with `-EMSGSIZE` (carrying the header's
/// opcode and id) and the connection is closed, because the stream cannot be resynchronised. The length is only
/// compared, never used to allocate or to index, until it has passed that check. After a bad length the decoder
/// stays failed and returns the same ``Decision/badLength(_:)`` for any further input.
public struct FrameDecoder: Sendable, Hashable {
    /// What the front of the buffered bytes holds.
    public enum Decision: Sendable, Hashable {
        /// The buffer does not yet hold a complete frame: ask again once it holds at least `totalBytes` bytes.
        case needMoreBytes(totalBytes: Int)

        /// The first `header.length` bytes of the buffer are one complete frame; its length has been checked.
        case frame(FrameHeader)

        /// The header's length is outside `16 ... 16 + maxPayload`: reply `-EMSGSIZE` with the header's opcode and
        /// id (see ``Reply/encodeError(replyingTo:_:into:)``), then close the connection.
        case badLength(FrameHeader)
    }

    /// The largest payload a frame may carry; frames are at most `16 + maxPayload` bytes.
    public let maxPayload: Int

    /// The header whose length was rejected, once the stream has failed.
    public private(set) var failedHeader: FrameHeader?

    /// Creates a decoder enforcing `maxPayload`.
    ///
    /// `maxPayload` is clamped to `0 ... UInt32.max - 16`, the range a `u32` frame length can describe.
    public init(maxPayload: Int = WireProtocol.defaultMaxPayload) {
        self.maxPayload = min(max(maxPayload, 0), WireProtocol.largestRepresentablePayload)
        self.failedHeader = nil
    }

    /// The largest frame, header included, this decoder accepts: `16 + maxPayload`.
    public var maxFrameLength: Int {
        FrameHeader.size + self.maxPayload
    }

    /// Whether a bad length has been seen; the stream is then unusable.
    public var hasFailed: Bool {
        self.failedHeader != nil
    }

    /// Examines the front of `bytes`, which holds everything received and not yet consumed.
    ///
    /// Never reads past `bytes.count`, never traps and never allocates.
    public mutating func decodeNext(_ bytes: UnsafeRawBufferPointer) -> Decision {
        if let failed = self.failedHeader {
            return .badLength(failed)
        }
        guard let header = FrameHeader(decoding: bytes) else {
            return .needMoreBytes(totalBytes: FrameHeader.size)
        }
        guard header.hasValidLength(maxPayload: self.maxPayload) else {
            self.failedHeader = header
            return .badLength(header)
        }
        // Checked above: 16 <= length <= 16 + maxPayload, which fits in Int.
        let length = Int(header.length)
        guard bytes.count >= length else {
            return .needMoreBytes(totalBytes: length)
        }
        return .frame(header)
    }

    /// Examines the front of `bytes`; see ``decodeNext(_:)-(UnsafeRawBufferPointer)``.
    public mutating func decodeNext(_ bytes: [UInt8]) -> Decision {
        bytes.withUnsafeBytes { self.decodeNext($0) }
    }

    /// Splits `bytes` into every complete frame it holds, for tests, fuzzers and simple clients.
    ///
    /// - Returns: the frames (each a slice of `bytes`, header included) and the number of bytes they consume.
    /// - Throws: ``Errno/messageTooLong`` at the first bad length; ``failedHeader`` then holds its header.
    public mutating func splitFrames(
        _ bytes: UnsafeRawBufferPointer
    ) throws(Errno) -> (frames: [UnsafeRawBufferPointer], consumed: Int) {
        var frames: [UnsafeRawBufferPointer] = []
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset..<bytes.count])
            switch self.decodeNext(rest) {
            case .needMoreBytes:
                return (frames, offset)
            case .frame(let header):
                let length = Int(header.length)
                frames.append(UnsafeRawBufferPointer(rebasing: rest[0..<length]))
                offset += length
            case .badLength:
                throw .messageTooLong
            }
        }
    }
}
