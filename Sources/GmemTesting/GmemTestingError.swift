//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemTestingError: what the test harness reports when the daemon or a client misbehaves.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

/// A failure of the test harness or of the daemon under test, with enough context to tell them apart.
///
/// Every blocking call in this module is bounded by a timeout; running out of time is ``timedOut(_:)``, never a
/// hang. Errors raised by the daemon's *behaviour* (an unexpected frame, an error reply where success was required)
/// carry the frame so that a failing test prints what the daemon actually sent.
public enum GmemTestingError: Error, CustomStringConvertible, Sendable {
    /// The `gmemd` executable was not found; `searched` lists every place that was looked at.
    case binaryNotFound(searched: [String])
    /// A system call failed with `errno`.
    case systemCall(String, errno: Int32)
    /// An operation did not finish in time; the string says which.
    case timedOut(String)
    /// The daemon exited while it was expected to serve.
    case daemonExited(ExitStatus, stderr: String)
    /// The peer closed the connection while a reply was expected.
    case connectionClosed(String)
    /// The peer sent bytes that are not a frame protocol v1 allows.
    case protocolViolation(String)
    /// A well-formed frame arrived, but not the one expected.
    case unexpectedFrame(FrameHeader, payload: [UInt8], expected: String)
    /// A request that had to succeed was refused.
    case errorReply(Opcode, Errno)
    /// A mapping or a page was not found in `/proc/PID/maps`.
    case mappingNotFound(String)

    /// A one-line explanation for test logs.
    public var description: String {
        switch self {
        case .binaryNotFound(let searched):
            return "gmemd binary not found; set GMEMD_BINARY or run `swift build --product gmemd`. Searched: "
                + searched.joined(separator: ", ")
        case .systemCall(let call, let errno):
            return "\(call) failed: \(Errno(rawValue: errno).name) (\(errno))"
        case .timedOut(let what):
            return "timed out: \(what)"
        case .daemonExited(let status, let stderr):
            return "gmemd exited (\(status)) while it should serve; stderr:\n\(stderr)"
        case .connectionClosed(let context):
            return "connection closed by the daemon: \(context)"
        case .protocolViolation(let detail):
            return "protocol violation: \(detail)"
        case .unexpectedFrame(let header, let payload, let expected):
            return "unexpected frame \(header) payload=\(hexString(payload.prefix(64))); expected \(expected)"
        case .errorReply(let opcode, let errno):
            return "\(opcode) was refused with \(errno)"
        case .mappingNotFound(let detail):
            return "mapping not found: \(detail)"
        }
    }
}

/// How a child process ended.
public enum ExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// It called `exit(code)`.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)

    /// Decodes a `waitpid` status word (the `WIFEXITED`/`WEXITSTATUS`/`WTERMSIG` macros are not importable).
    public init(waitStatus status: Int32) {
        let signal = status & 0x7f
        if signal == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(signal)
        }
    }

    /// `exit 0`, `exit 1`, `signal 9`.
    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// Lower-case hex bytes separated by spaces, as in `proto/vectors/frames.txt`.
public func hexString<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    let digits = Array("0123456789abcdef")
    return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0xf)]]) }.joined(separator: " ")
}
