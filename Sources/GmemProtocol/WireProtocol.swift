//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Wire protocol v1: constants shared by every encoder and decoder.
//
//===----------------------------------------------------------------------===//

/// Namespace for the fixed numbers of gmemd wire protocol v1.
///
/// The normative description lives in `proto/PROTOCOL.md`; `proto/gmem_wire.h` mirrors these values for C and
/// Rust clients. Everything on the wire is little-endian.
public enum WireProtocol {
    /// The only protocol version this module speaks. Sent in HELLO and echoed in the HELLO reply.
    public static let version: UInt32 = 1

    /// Bytes in a frame header. Every frame, in either direction, starts with one.
    public static let headerSize = 16

    /// The payload bound a server advertises unless configured otherwise (1 MiB).
    ///
    /// `max_payload` bounds the bytes *after* the header, so a WRITE carries at most `max_payload - 16` data bytes.
    public static let defaultMaxPayload = 1 << 20

    /// The largest payload that a `u32` frame length can describe (`UInt32.max - 16`).
    public static let largestRepresentablePayload = Int(clamping: UInt32.max - UInt32(16))

    /// The most segments a READV or WRITEV may carry unless the server says otherwise in HELLO; the protocol's floor.
    public static let defaultMaxSegments = 64

    /// The SET_ATTRIBUTES attribute bit that marks memory as private to the guest. Every other bit is invalid.
    public static let attributePrivate: UInt64 = 8

    /// All attribute bits that SET_ATTRIBUTES accepts.
    public static let validAttributes: UInt64 = attributePrivate

    /// The largest magnitude of a negative status that is an errno (Linux `MAX_ERRNO`).
    ///
    /// Replies whose status is below `-maxErrno` are malformed.
    public static let maxErrno: Int32 = Errno.maxErrno
}
