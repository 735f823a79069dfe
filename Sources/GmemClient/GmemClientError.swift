//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemClientError: every failure a GmemClient operation reports.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

/// The error every ``GmemClient`` operation throws.
///
/// Contract:
/// - ``errno`` is always set: the daemon's status for ``Code/daemonError``, the error the daemon would have sent
///   for ``Code/invalidArgument`` (the client refused to send the request), the socket's error for
///   ``Code/connectFailed``, `ECONNRESET`/`ESHUTDOWN` for ``Code/connectionClosed`` and `EPROTO` for
///   ``Code/protocolViolation``.
/// - ``opcode`` names the request that failed, when there is one.
/// - ``bytesCompleted`` is set when a READ or WRITE (possibly split into several frames) failed after the daemon
///   confirmed transferring that many bytes from the start address on.
///
/// A struct with an extensible ``Code`` rather than an enum, so that later versions can add codes without breaking
/// exhaustive `switch`es in client code. `Sendable`: plain values only.
public struct GmemClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case daemonError
            case invalidArgument
            case connectFailed
            case connectionClosed
            case protocolViolation
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The daemon answered the request with a non-zero status.
        public static let daemonError = Code(.daemonError)
        /// The client refused to send a request the daemon would refuse (or could not parse), e.g. a payload over
        /// `max_payload` or a range that a split READ would run past the end of the region with.
        public static let invalidArgument = Code(.invalidArgument)
        /// The Unix socket could not be connected.
        public static let connectFailed = Code(.connectFailed)
        /// The connection closed before the reply arrived; the request may or may not have taken effect.
        public static let connectionClosed = Code(.connectionClosed)
        /// The daemon sent bytes protocol v1 does not allow; the connection has been closed.
        public static let protocolViolation = Code(.protocolViolation)

        /// `daemonError`, `invalidArgument`, ...
        public var description: String {
            switch self.base {
            case .daemonError: return "daemonError"
            case .invalidArgument: return "invalidArgument"
            case .connectFailed: return "connectFailed"
            case .connectionClosed: return "connectionClosed"
            case .protocolViolation: return "protocolViolation"
            }
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The Linux error number that describes the failure.
    public var errno: Errno
    /// The request that failed, if the failure belongs to one.
    public var opcode: Opcode?
    /// Bytes the daemon confirmed reading or writing from the start address on before the failure.
    public var bytesCompleted: UInt64?
    /// A human-readable explanation; for daemon errors the errno's sentence.
    public var detail: String

    /// Creates an error from its parts.
    public init(code: Code, errno: Errno, opcode: Opcode? = nil, bytesCompleted: UInt64? = nil, detail: String) {
        self.code = code
        self.errno = errno
        self.opcode = opcode
        self.bytesCompleted = bytesCompleted
        self.detail = detail
    }

    /// For daemon errors and refused arguments `EFAULT: the range lies outside guest memory`; for connection
    /// failures `cannot connect to gmemd at PATH: REASON`; otherwise the detail.
    public var description: String {
        switch self.code {
        case .daemonError, .invalidArgument, .protocolViolation:
            return "\(self.errno.name): \(self.detail)"
        default:
            return self.detail
        }
    }
}

extension GmemClientError {
    /// The daemon refused `opcode` with `errno`.
    static func daemon(_ errno: Errno, opcode: Opcode, bytesCompleted: UInt64? = nil) -> GmemClientError {
        GmemClientError(
            code: .daemonError,
            errno: errno,
            opcode: opcode,
            bytesCompleted: bytesCompleted,
            detail: errno.sentence
        )
    }

    /// The client refuses to send `opcode`; `errno` is what the daemon would have answered.
    static func invalidArgument(_ errno: Errno, opcode: Opcode?, _ detail: String) -> GmemClientError {
        GmemClientError(code: .invalidArgument, errno: errno, opcode: opcode, detail: detail)
    }

    /// The daemon's bytes are not protocol v1.
    static func protocolViolation(_ detail: String, opcode: Opcode? = nil) -> GmemClientError {
        GmemClientError(
            code: .protocolViolation,
            errno: .protocolError,
            opcode: opcode,
            detail: "gmemd sent a malformed frame: \(detail)"
        )
    }

    /// The daemon closed the connection (or it broke) while requests were outstanding.
    static let closedByDaemon = GmemClientError(
        code: .connectionClosed,
        errno: .connectionReset,
        detail: "gmemd closed the connection"
    )

    /// ``GmemClient/close()`` was called.
    static let closedByClient = GmemClientError(
        code: .connectionClosed,
        errno: .shutdown,
        detail: "the connection to gmemd was closed by this client"
    )

    /// The same error, attributed to `opcode` (connection-wide errors are created without one).
    func attributed(to opcode: Opcode) -> GmemClientError {
        var copy = self
        if copy.opcode == nil { copy.opcode = opcode }
        return copy
    }

    /// The same error with ``bytesCompleted`` shifted by `offset` bytes of earlier, successful chunks.
    func afterPrefix(of offset: UInt64) -> GmemClientError {
        var copy = self
        let total = offset + (copy.bytesCompleted ?? 0)
        copy.bytesCompleted = total > 0 ? total : nil
        return copy
    }
}
