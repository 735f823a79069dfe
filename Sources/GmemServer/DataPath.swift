import GmemCore
import GmemProtocol

/// The data-path requests both transports carry (READ, WRITE, READV, WRITEV,
/// GPC_READ, GPC_WRITE, ATOMIC, GPC_ATOMIC, PING), carried out on the core.
///
/// One implementation for the socket and the rings, so that the two cannot
/// disagree on a rule: each applies the protocol's precedence after the
/// request's shape was decoded (rule 6's sizes, then bounds inside the core,
/// then handles, then cache state and memory failures). The caller checks the
/// read-only rule first, and supplies where the bytes a request reads go.
struct DataPath {
    let memory: GuestMemory
    let caches: CacheTable
    let counters: AccessCounters
    let maxPayload: Int

    /// The most segments of a READV or WRITEV, reported as HELLO's
    /// `max_segments`: 1024 is the longest descriptor chain a virtio queue
    /// allows (QEMU's VIRTQUEUE_MAX_SIZE), so no device model needs more.
    static let maxSegments = 1024

    /// Bytes `request` reads into the caller's buffer (READ, GPC_READ, READV),
    /// 0 for the others. Applies the segment-count rule and `max_payload`
    /// (`-EMSGSIZE`), also to what a ring's write carries, which a socket frame
    /// bounds by itself.
    func outputLength(of request: Request) throws -> Int {
        let moved: Int
        let output: Bool
        switch request {
        case .read(_, let length), .gpcRead(_, _, let length):
            (moved, output) = (Int(length), true)
        case .readv(let segments):
            try Self.checkSegmentCount(segments)
            (moved, output) = (segments.reduce(0) { $0 + Int($1.length) }, true)
        case .writev(let segments, let data):
            try Self.checkSegmentCount(segments)
            (moved, output) = (data.count, false)
        case .write(_, let data), .gpcWrite(_, _, let data):
            (moved, output) = (data.count, false)
        default:
            (moved, output) = (0, false)
        }
        guard moved <= self.maxPayload else { throw Errno.messageTooLong }
        return output ? moved : 0
    }

    /// Carries out `request`, reading into `output` (``outputLength(of:)``
    /// bytes). Returns an atomic's value, else 0. Pages stay held in `held`
    /// until the caller releases them at the end of its batch.
    ///
    /// - Throws: ``Errno`` or ``GmemError``; a ``VectorAccessError`` when a
    ///   READV or WRITEV failed part way.
    func perform(
        _ request: Request,
        output: UnsafeMutableRawBufferPointer,
        holding held: inout HeldPages
    ) throws -> UInt64 {
        let memory = self.memory
        switch request {
        case .ping:
            return 0
        case .read(let gpa, _):
            try memory.read(at: GuestPhysicalAddress(gpa), into: output, holding: &held, counters: self.counters)
        case .write(let gpa, let data):
            try memory.write(at: GuestPhysicalAddress(gpa), from: data, holding: &held, counters: self.counters)
        case .gpcRead(let handle, let offset, _):
            let cache = try self.cache(handle)
            try memory.read(cache: cache, offset: Int(offset), into: output, counters: self.counters)
        case .gpcWrite(let handle, let offset, let data):
            let cache = try self.cache(handle)
            try memory.write(cache: cache, offset: Int(offset), from: data, counters: self.counters)
        case .readv(let segments):
            try memory.readv(Self.coreSegments(segments), into: output, holding: &held, counters: self.counters)
        case .writev(let segments, let data):
            try memory.writev(Self.coreSegments(segments), from: data, holding: &held, counters: self.counters)
        case .atomic(let gpa, let arguments):
            return try memory.atomic(
                Self.coreOperation(arguments.op),
                width: Int(arguments.width),
                at: GuestPhysicalAddress(gpa),
                operand: arguments.operand,
                expected: arguments.expected,
                holding: &held,
                counters: self.counters
            )
        case .gpcAtomic(let handle, let offset, let arguments):
            // The cache's reference keeps the page accessible: no protection call.
            return try memory.atomic(
                Self.coreOperation(arguments.op),
                width: Int(arguments.width),
                cache: try self.cache(handle),
                offset: Int(offset),
                operand: arguments.operand,
                expected: arguments.expected,
                counters: self.counters
            )
        default:
            // Control requests never reach the data path.
            throw Errno.operationNotSupported
        }
        return 0
    }

    /// Rule 8: the handle names an active GPC of this connection.
    private func cache(_ handle: UInt64) throws(Errno) -> GuestPageCache {
        guard let cache = self.caches[handle] else { throw .noSuchEntry }
        return cache
    }

    /// Rule 6 for a segment table: 1 to ``maxSegments`` segments.
    private static func checkSegmentCount(_ segments: [WireSegment]) throws(Errno) {
        guard !segments.isEmpty, segments.count <= Self.maxSegments else { throw .invalidArgument }
    }

    private static func coreSegments(_ segments: [WireSegment]) -> [GuestSegment] {
        segments.map { GuestSegment(address: GuestPhysicalAddress($0.gpa), length: Int($0.length)) }
    }

    /// The wire's op codes are the core's: GmemProtocol and GmemCore do not depend on each other.
    private static func coreOperation(_ op: AtomicOp) -> AtomicOperation {
        AtomicOperation(rawValue: op.rawValue).unsafelyUnwrapped
    }

    /// The errno a failure is answered with.
    static func errno(of error: any Error) -> Errno {
        switch error {
        case let error as Errno: return error
        case let error as GmemError: return error.code
        case let error as VectorAccessError: return error.error.code
        default: return .ioError
        }
    }
}
