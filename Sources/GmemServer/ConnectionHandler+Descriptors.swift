import CGmemSys
import GmemCore
import GmemProtocol
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Replies that carry file descriptors: RING_SETUP's (a ring's memfd and
/// doorbells) and MAP_REGION's (the guest memfd).
///
/// SwiftNIO cannot send SCM_RIGHTS. So gmemd pauses the connection
/// (``ConnectionState/descriptorsPending()``), lets NIO write every earlier
/// reply, and then sends this one frame itself with sendmsg(2) on the
/// connection's socket, found by its SO_COOKIE. While paused nothing else is
/// written, events included, so the frame cannot land inside another.
extension ConnectionHandler {
    /// Replies to `header` with `payload` and `descriptors`, after every
    /// earlier reply. `isWanted` is asked on the loop just before the send (a
    /// ring closed meanwhile sends nothing); `whenSent` runs once the client
    /// has its copies.
    func replyWithDescriptors(
        _ header: FrameHeader,
        payload: some WireEncodable,
        descriptors: [Int32],
        isWanted: @escaping () -> Bool = { true },
        whenSent: @escaping () -> Void = {}
    ) {
        guard let context = self.context else { return }
        var frame = ByteBufferWireWriter(
            buffer: context.channel.allocator.buffer(capacity: FrameHeader.size + payload.encodedLength)
        )
        Reply.encode(replyingTo: header, payload: payload, into: &frame)
        let send = PendingDescriptorReply(
            frame: Array(frame.buffer.readableBytesView),
            descriptors: descriptors,
            isWanted: isWanted,
            whenSent: whenSent
        )
        self.carryOut(self.state.descriptorsPending())
        // Every earlier reply goes first; the promise completes once NIO has written them.
        let earlier = self.takeBatch()
        context.writeAndFlush(self.wrapOutboundOut(earlier)).assumeIsolated().whenComplete { result in
            guard case .success = result else { return }
            self.send(send, attempt: 0)
        }
    }

    /// Sends the frame with its descriptors, retrying while the socket is
    /// full, for at most the frame timeout.
    private func send(_ reply: PendingDescriptorReply, attempt: Int) {
        guard reply.isWanted(), let context = self.context, context.channel.isActive else { return }
        guard let socket = self.socketDescriptor() else {
            self.logger.error("cannot find the connection's socket to send descriptors; closing")
            return context.close(promise: nil)
        }
        let sent = reply.frame.withUnsafeBytes { bytes in
            reply.descriptors.withUnsafeBufferPointer {
                cgmem_send_with_fds(socket, bytes.baseAddress, UInt(bytes.count), $0.baseAddress, UInt32($0.count))
            }
        }
        if sent == reply.frame.count {
            reply.whenSent()
            if let flow = self.state.descriptorsSent() { self.carryOut(flow) }
            return
        }
        let retryInterval = TimeAmount.milliseconds(1)
        let attempts = Int(self.server.configuration.frameTimeout.nanoseconds / retryInterval.nanoseconds)
        if sent < 0, errno == EAGAIN || errno == EWOULDBLOCK, attempt < attempts {
            context.eventLoop.assumeIsolated().scheduleTask(in: retryInterval) {
                self.send(reply, attempt: attempt + 1)
            }
            return
        }
        // A partial frame, or a peer that never reads: the stream cannot go on.
        self.logger.notice(
            "cannot send a reply's descriptors (\(sent < 0 ? "errno \(errno)" : "partial write")); closing"
        )
        context.close(promise: nil)
    }

    /// This connection's socket among gmemd's descriptors: the one whose
    /// SO_COOKIE is the channel's. Looked up once per connection.
    private func socketDescriptor() -> Int32? {
        if let known = self.socket { return known }
        let cookie = self.socketCookie
        guard cookie != 0 else { return nil }
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), cgmem_socket_cookie(fd) == cookie else { continue }
            self.socket = fd
            return fd
        }
        return nil
    }
}

/// A reply waiting for the replies before it, with what it will carry.
private struct PendingDescriptorReply {
    let frame: [UInt8]
    let descriptors: [Int32]
    let isWanted: () -> Bool
    let whenSent: () -> Void
}
