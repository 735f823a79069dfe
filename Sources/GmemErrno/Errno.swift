//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Errno: Linux error numbers, the core's error codes and, negated, reply statuses.
//
//===----------------------------------------------------------------------===//

/// A positive Linux error number: the one error vocabulary of gmemd.
///
/// The core's ``GmemError`` carries one as its code, replies carry `-errno` in their status field, and the client
/// reports one with every failure. The wire fixes the *Linux* numbering on every platform, so the values are
/// hard-coded here rather than taken from the C library. GmemProtocol's decoders throw an `Errno`: request decoding
/// throws the error the server must send back, reply decoding throws ``protocolError`` when the server's bytes are
/// malformed.
public struct Errno: RawRepresentable, Hashable, Sendable, Error {
    /// The positive error number.
    public var rawValue: Int32

    /// Wraps any error number, known or not.
    @inlinable
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The status a reply carries for this error: `-rawValue`.
    @inlinable
    public var wireStatus: Int32 {
        0 &- self.rawValue
    }

    /// The error a reply status denotes, or `nil` for success (0), positive statuses and values beyond
    /// `-MAX_ERRNO` (4095), none of which are errors on the wire.
    @inlinable
    public init?(wireStatus: Int32) {
        guard wireStatus < 0, wireStatus >= -Self.maxErrno else { return nil }
        self.rawValue = -wireStatus
    }

    /// The largest magnitude of a negative status that is an errno (Linux `MAX_ERRNO`).
    public static let maxErrno: Int32 = 4095
}

extension Errno {
    /// EPERM (1): a read-only client tried to modify guest memory.
    public static let notPermitted = Errno(rawValue: 1)
    /// ENOENT (2): no guest page cache on this connection has this handle.
    public static let noSuchEntry = Errno(rawValue: 2)
    /// EIO (5): the backing memory failed.
    public static let ioError = Errno(rawValue: 5)
    /// EBADF (9): a file descriptor is not usable.
    public static let badFileDescriptor = Errno(rawValue: 9)
    /// EAGAIN (11): temporarily unavailable; retry.
    public static let tryAgain = Errno(rawValue: 11)
    /// ENOMEM (12): the kernel refused a mapping change or the daemon is out of memory.
    public static let noMemory = Errno(rawValue: 12)
    /// EACCES (13): the daemon does not admit this client (sent to HELLO, then close).
    public static let permissionDenied = Errno(rawValue: 13)
    /// EFAULT (14): the range lies outside guest memory.
    public static let badAddress = Errno(rawValue: 14)
    /// EBUSY (16): the daemon serves its maximum number of connections (sent to HELLO, then close).
    public static let busy = Errno(rawValue: 16)
    /// EEXIST (17): the object already exists.
    public static let exists = Errno(rawValue: 17)
    /// EINVAL (22): malformed request: size, flags, reserved fields, alignment or zero size.
    public static let invalidArgument = Errno(rawValue: 22)
    /// ENOSPC (28): a limit was reached: `max_gpcs` caches on the connection, or references on a page.
    public static let noSpace = Errno(rawValue: 28)
    /// ERANGE (34): a value is out of range.
    public static let outOfRange = Errno(rawValue: 34)
    /// EPROTO (71): protocol violation (a request before HELLO, or a malformed reply).
    public static let protocolError = Errno(rawValue: 71)
    /// EMSGSIZE (90): the frame or the requested payload exceeds `max_payload`.
    public static let messageTooLong = Errno(rawValue: 90)
    /// EPROTONOSUPPORT (93): the HELLO version is not supported.
    public static let protocolNotSupported = Errno(rawValue: 93)
    /// EOPNOTSUPP (95): unknown opcode, or an operation the region's backing does not support.
    public static let operationNotSupported = Errno(rawValue: 95)
    /// ECONNRESET (104): the connection was reset.
    public static let connectionReset = Errno(rawValue: 104)
    /// ESHUTDOWN (108): the daemon is shutting down.
    public static let shutdown = Errno(rawValue: 108)
    /// ETIMEDOUT (110): the operation timed out.
    public static let timedOut = Errno(rawValue: 110)
    /// EALREADY (114): HELLO was already completed on this connection.
    public static let alreadyInProgress = Errno(rawValue: 114)
    /// ESTALE (116): the guest page cache was invalidated and must be refreshed.
    public static let stale = Errno(rawValue: 116)

    /// Every error number this module names, in numeric order.
    public static let allKnown: [Errno] = [
        .notPermitted, .noSuchEntry, .ioError, .badFileDescriptor, .tryAgain, .noMemory, .permissionDenied,
        .badAddress, .busy, .exists, .invalidArgument, .noSpace, .outOfRange, .protocolError, .messageTooLong,
        .protocolNotSupported, .operationNotSupported, .connectionReset, .shutdown, .timedOut, .alreadyInProgress,
        .stale,
    ]
}

extension Errno: CustomStringConvertible {
    /// The C macro name, e.g. `EFAULT`, or `E(123)` for a number this module does not name.
    public var name: String {
        switch self {
        case .notPermitted: return "EPERM"
        case .noSuchEntry: return "ENOENT"
        case .ioError: return "EIO"
        case .badFileDescriptor: return "EBADF"
        case .tryAgain: return "EAGAIN"
        case .noMemory: return "ENOMEM"
        case .permissionDenied: return "EACCES"
        case .badAddress: return "EFAULT"
        case .busy: return "EBUSY"
        case .exists: return "EEXIST"
        case .invalidArgument: return "EINVAL"
        case .noSpace: return "ENOSPC"
        case .outOfRange: return "ERANGE"
        case .protocolError: return "EPROTO"
        case .messageTooLong: return "EMSGSIZE"
        case .protocolNotSupported: return "EPROTONOSUPPORT"
        case .operationNotSupported: return "EOPNOTSUPP"
        case .connectionReset: return "ECONNRESET"
        case .shutdown: return "ESHUTDOWN"
        case .timedOut: return "ETIMEDOUT"
        case .alreadyInProgress: return "EALREADY"
        case .stale: return "ESTALE"
        default: return "E(\(self.rawValue))"
        }
    }

    /// What the error means in gmemd, as a lower-case sentence without a final period.
    public var sentence: String {
        switch self {
        case .notPermitted: return "the connection is read-only and the request would modify guest memory"
        case .noSuchEntry: return "no guest page cache with this handle is active on the connection"
        case .ioError: return "the backing memory reported an I/O error"
        case .badFileDescriptor: return "a file descriptor is not usable"
        case .tryAgain: return "the resource is temporarily unavailable; retry the request"
        case .noMemory: return "the kernel refused a mapping change or the daemon ran out of memory"
        case .permissionDenied: return "the daemon does not admit this client"
        case .badAddress: return "the range lies outside guest memory"
        case .busy: return "the daemon is serving its maximum number of connections"
        case .exists: return "the object already exists"
        case .invalidArgument:
            return "the request is malformed: wrong size, non-zero flags or reserved field, bad alignment or zero size"
        case .noSpace: return "a limit was reached: max_gpcs caches on the connection or the references on a page"
        case .outOfRange: return "a value is out of range"
        case .protocolError: return "the peer violated the protocol"
        case .messageTooLong: return "the frame or the requested payload exceeds max_payload"
        case .protocolNotSupported: return "the protocol version is not supported"
        case .operationNotSupported:
            return "the opcode is unknown or the region's backing does not support the operation"
        case .connectionReset: return "the connection was reset by the peer"
        case .shutdown: return "the daemon is shutting down"
        case .timedOut: return "the operation timed out"
        case .alreadyInProgress: return "HELLO was already completed on this connection"
        case .stale: return "the guest page cache was invalidated; refresh it before use"
        default: return "unknown error \(self.rawValue)"
        }
    }

    /// `EFAULT (14): the range lies outside guest memory`.
    public var description: String {
        "\(self.name) (\(self.rawValue)): \(self.sentence)"
    }
}
