//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Reply: encoding complete reply and event frames, for the server.
//
//===----------------------------------------------------------------------===//

/// Builds complete reply frames (header and payload) for a server.
///
/// Every function writes a header whose length matches the payload it writes, with the request's opcode and id and
/// ``FrameFlags/reply`` set. Error replies are empty except for the two cases the protocol defines:
/// ``encodePartialFailure(replyingTo:_:bytesCompleted:into:)`` and
/// ``encodeVersionNotSupported(replyingTo:highestSupportedVersion:into:)``.
public enum Reply {
    /// Appends a success reply (status 0) carrying `payload`.
    ///
    /// PING echoes with `payload` the request's `UnsafeRawBufferPointer`; READ and GPC_READ may pass bytes copied
    /// from guest memory, or use ``encode(replyingTo:status:payloadLength:into:payload:)`` to write in place.
    @inlinable
    public static func encode(
        replyingTo request: FrameHeader,
        payload: some WireEncodable,
        into writer: inout some WireWriter
    ) {
        FrameHeader.reply(to: request, status: 0, payloadLength: payload.encodedLength).write(to: &writer)
        payload.write(to: &writer)
    }

    /// Appends a success reply with an empty payload (WRITE, GPC_DEACTIVATE, GPC_WRITE, GPC_REFRESH,
    /// SET_ATTRIBUTES, DISCARD, and PAGE_STATE of zero pages).
    @inlinable
    public static func encodeEmpty(replyingTo request: FrameHeader, into writer: inout some WireWriter) {
        FrameHeader.reply(to: request, status: 0, payloadLength: 0).write(to: &writer)
    }

    /// Appends a reply header announcing `payloadLength` bytes, then lets `payload` write them.
    ///
    /// For payloads produced in place, e.g. copying guest memory straight into the server's buffer.
    ///
    /// - Important: `payload` must append exactly `payloadLength` bytes, or the stream is corrupt from this frame
    ///   on. `payloadLength` must already have been checked against `max_payload`.
    @inlinable
    public static func encode<Writer: WireWriter, Failure: Error>(
        replyingTo request: FrameHeader,
        status: Int32 = 0,
        payloadLength: Int,
        into writer: inout Writer,
        payload: (inout Writer) throws(Failure) -> Void
    ) throws(Failure) {
        FrameHeader.reply(to: request, status: status, payloadLength: payloadLength).write(to: &writer)
        try payload(&writer)
    }

    /// Appends an error reply with an empty payload: status `-errno`.
    ///
    /// Also the reply to a bad frame length (``FrameDecoder/Decision/badLength(_:)``) with
    /// ``Errno/messageTooLong``, and to a request before HELLO with ``Errno/protocolError``.
    @inlinable
    public static func encodeError(
        replyingTo request: FrameHeader,
        _ errno: Errno,
        into writer: inout some WireWriter
    ) {
        FrameHeader.reply(to: request, status: errno.wireStatus, payloadLength: 0).write(to: &writer)
    }

    /// Appends the error reply to a READ or WRITE that failed after `bytesCompleted` bytes: status `-errno`,
    /// payload ``PartialProgressPayload``.
    @inlinable
    public static func encodePartialFailure(
        replyingTo request: FrameHeader,
        _ errno: Errno,
        bytesCompleted: UInt64,
        into writer: inout some WireWriter
    ) {
        let payload = PartialProgressPayload(bytesCompleted: bytesCompleted)
        FrameHeader.reply(to: request, status: errno.wireStatus, payloadLength: payload.encodedLength)
            .write(to: &writer)
        payload.write(to: &writer)
    }

    /// Appends the error reply to a READV or WRITEV that failed after partial progress: status `-errno`, payload
    /// ``VectorProgressPayload``.
    @inlinable
    public static func encodeVectorPartialFailure(
        replyingTo request: FrameHeader,
        _ errno: Errno,
        progress: VectorProgressPayload,
        into writer: inout some WireWriter
    ) {
        FrameHeader.reply(to: request, status: errno.wireStatus, payloadLength: progress.encodedLength)
            .write(to: &writer)
        progress.write(to: &writer)
    }

    /// Appends the `-EPROTONOSUPPORT` reply to a HELLO with an unsupported version; the server closes the
    /// connection after sending it.
    @inlinable
    public static func encodeVersionNotSupported(
        replyingTo request: FrameHeader,
        highestSupportedVersion: UInt32 = WireProtocol.version,
        into writer: inout some WireWriter
    ) {
        let payload = VersionNotSupportedPayload(highestSupportedVersion: highestSupportedVersion)
        let status = Errno.protocolNotSupported.wireStatus
        FrameHeader.reply(to: request, status: status, payloadLength: payload.encodedLength).write(to: &writer)
        payload.write(to: &writer)
    }

    /// Appends a complete GPC_INVALIDATED event frame.
    @inlinable
    public static func encodeEvent(_ event: GpcInvalidatedEvent, into writer: inout some WireWriter) {
        event.encodeFrame(into: &writer)
    }
}
