import GmemCore
import GmemProtocol
import NIOCore

/// READV, WRITEV, ATOMIC and GPC_ATOMIC, called by the dispatch switch. Each
/// keeps the protocol's precedence: shape (-EINVAL, then -EMSGSIZE) before
/// bounds (-EFAULT) before handles (-ENOENT) before cache state (-ESTALE).
extension ConnectionHandler {
    /// The most segments a READV or WRITEV may carry, reported as HELLO's
    /// `max_segments`: 1024 is the longest descriptor chain a virtio queue
    /// allows (QEMU's VIRTQUEUE_MAX_SIZE), so no device model needs more.
    static let maxSegments = 1024

    func readv(_ header: FrameHeader, segments: [WireSegment]) throws {
        let coreSegments = try Self.checkSegmentCount(segments)
        let total = segments.reduce(0) { $0 + Int($1.length) }
        guard total <= self.server.configuration.maxPayload else { throw Errno.messageTooLong }
        let memory = self.server.memory
        var failure: VectorAccessError? = nil
        do {
            // The bytes go straight from guest memory into the reply, as READ's do.
            try self.replyWithCopy(header, length: total) { buffer throws(GmemError) in
                do throws(VectorAccessError) {
                    try memory.readv(coreSegments, into: buffer, holding: &self.held, counters: self.counters)
                } catch {
                    failure = error
                    throw error.error
                }
            }
        } catch {
            try self.replyVectorFailure(header, failure, otherwise: error)
        }
    }

    func writev(_ header: FrameHeader, segments: [WireSegment], data: UnsafeRawBufferPointer) throws {
        let coreSegments = try Self.checkSegmentCount(segments)
        do throws(VectorAccessError) {
            try self.server.memory.writev(coreSegments, from: data, holding: &self.held, counters: self.counters)
        } catch {
            return try self.replyVectorFailure(header, error, otherwise: error.error)
        }
        Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
    }

    func atomic(_ header: FrameHeader, gpa: UInt64, _ arguments: AtomicArguments) throws {
        let value = try self.server.memory.atomic(
            Self.coreOperation(arguments.op),
            width: Int(arguments.width),
            at: GuestPhysicalAddress(gpa),
            operand: arguments.operand,
            expected: arguments.expected,
            holding: &self.held,
            counters: self.counters
        )
        Reply.encode(replyingTo: header, payload: AtomicReply(value: value), into: &self.outbound)
    }

    func gpcAtomic(_ header: FrameHeader, handle: UInt64, offset: UInt32, _ arguments: AtomicArguments) throws {
        guard let cache = self.caches[handle] else { throw Errno.noSuchEntry }
        // The cache's reference keeps the page accessible: no protection call.
        let value = try self.server.memory.atomic(
            Self.coreOperation(arguments.op),
            width: Int(arguments.width),
            cache: cache,
            offset: Int(offset),
            operand: arguments.operand,
            expected: arguments.expected,
            counters: self.counters
        )
        Reply.encode(replyingTo: header, payload: AtomicReply(value: value), into: &self.outbound)
    }

    /// Rule 6 for a segment table: 1 to ``maxSegments`` segments.
    private static func checkSegmentCount(_ segments: [WireSegment]) throws -> [GuestSegment] {
        guard !segments.isEmpty, segments.count <= Self.maxSegments else { throw Errno.invalidArgument }
        return segments.map { GuestSegment(address: GuestPhysicalAddress($0.gpa), length: Int($0.length)) }
    }

    /// Sends READV's and WRITEV's partial-progress reply when bytes were
    /// transferred; otherwise rethrows `error` for the usual empty error reply.
    private func replyVectorFailure(
        _ header: FrameHeader,
        _ failure: VectorAccessError?,
        otherwise error: any Error
    )
        throws
    {
        guard let failure, failure.madeProgress else { throw error }
        let progress = VectorProgressPayload(
            bytesCompleted: UInt64(failure.bytesCompleted),
            segment: UInt32(failure.segment),
            segmentBytes: UInt32(failure.segmentBytes)
        )
        Reply.encodeVectorPartialFailure(
            replyingTo: header,
            failure.error.code,
            progress: progress,
            into: &self.outbound
        )
        self.server.errors.wrappingAdd(1, ordering: .relaxed)
        self.logger.notice("\(header.opcode) failed after \(failure.bytesCompleted) bytes: \(failure.error)")
    }

    /// The wire's op codes are the core's: GmemProtocol and GmemCore do not depend on each other.
    private static func coreOperation(_ op: AtomicOp) -> AtomicOperation {
        AtomicOperation(rawValue: op.rawValue).unsafelyUnwrapped
    }
}
