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
/// Every blocking call in this module is bounded by a timeout; running out of time is ``Code/timedOut``, never a
/// hang. Errors raised by the daemon's *behaviour* (an unexpected frame, an error reply where success was required)
/// carry the frame so that a failing test prints what the daemon actually sent.
///
/// A struct with an extensible ``Code`` rather than an enum, like `GmemClientError`, so that later versions can add
/// codes without breaking exhaustive `switch`es; match with `catch let error as GmemTestingError where error.code ==
/// .timedOut`. ``description`` ends with the harness's source location that raised it.
public struct GmemTestingError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// The `gmemd` executable was not found; ``GmemTestingError/searched`` lists every place looked at.
        public static let binaryNotFound = Code("binaryNotFound")
        /// A system call failed with ``GmemTestingError/errno``.
        public static let systemCall = Code("systemCall")
        /// An operation did not finish in time.
        public static let timedOut = Code("timedOut")
        /// The daemon exited (``GmemTestingError/exitStatus``) while it was expected to serve.
        public static let daemonExited = Code("daemonExited")
        /// The peer closed the connection while a reply was expected.
        public static let connectionClosed = Code("connectionClosed")
        /// The peer sent bytes that are not a frame protocol v1 allows.
        public static let protocolViolation = Code("protocolViolation")
        /// A well-formed frame (``GmemTestingError/frame``) arrived, but not the one expected.
        public static let unexpectedFrame = Code("unexpectedFrame")
        /// A request that had to succeed was refused with ``GmemTestingError/errno``.
        public static let errorReply = Code("errorReply")
        /// A mapping or a page was not found in `/proc/PID/maps`.
        public static let mappingNotFound = Code("mappingNotFound")

        /// `timedOut`, `daemonExited`, ...
        public var description: String { self.name }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A one-line explanation for test logs, without the location.
    public var detail: String
    /// The error number, for ``Code/systemCall`` and ``Code/errorReply``.
    public var errno: Errno?
    /// The request refused, for ``Code/errorReply``.
    public var opcode: Opcode?
    /// How the daemon ended, for ``Code/daemonExited``.
    public var exitStatus: ExitStatus?
    /// The daemon's standard error, for ``Code/daemonExited``.
    public var stderr: String?
    /// Every place looked at, for ``Code/binaryNotFound``.
    public var searched: [String]
    /// The frame that arrived, for ``Code/unexpectedFrame``.
    public var frame: (header: FrameHeader, payload: [UInt8])?
    /// Where in the harness the error was raised (`#fileID:#line`).
    public var location: String

    /// Creates an error from its parts; the factories below fill them for each code.
    public init(_ code: Code, _ detail: String, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.detail = detail
        self.searched = []
        self.location = "\(file):\(line)"
    }

    /// The explanation, then where it was raised: `timed out: a frame (GmemTesting/RawConnection.swift:201)`.
    public var description: String { "\(self.detail) (\(self.location))" }
}

extension GmemTestingError {
    /// The `gmemd` executable was not found in any of `searched`.
    public static func binaryNotFound(searched: [String], file: String = #fileID, line: UInt = #line) -> Self {
        var error = Self(
            .binaryNotFound,
            "gmemd binary not found; set GMEMD_BINARY or run `swift build --product gmemd`. Searched: "
                + searched.joined(separator: ", "),
            file: file,
            line: line
        )
        error.searched = searched
        return error
    }

    /// The system call described by `call` failed with `errno`.
    public static func systemCall(_ call: String, errno: Int32, file: String = #fileID, line: UInt = #line) -> Self {
        let number = Errno(rawValue: errno)
        var error = Self(.systemCall, "\(call) failed: \(number.name) (\(errno))", file: file, line: line)
        error.errno = number
        return error
    }

    /// Waiting for `what` ran out of time.
    public static func timedOut(_ what: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(.timedOut, "timed out: \(what)", file: file, line: line)
    }

    /// The daemon exited with `status` while it should serve.
    public static func daemonExited(
        _ status: ExitStatus,
        stderr: String,
        file: String = #fileID,
        line: UInt = #line
    ) -> Self {
        var error = Self(
            .daemonExited,
            "gmemd exited (\(status)) while it should serve; stderr:\n\(stderr)",
            file: file,
            line: line
        )
        error.exitStatus = status
        error.stderr = stderr
        return error
    }

    /// The daemon closed the connection; `context` says while waiting for what.
    public static func connectionClosed(_ context: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(.connectionClosed, "connection closed by the daemon: \(context)", file: file, line: line)
    }

    /// The daemon's bytes are not protocol v1.
    public static func protocolViolation(_ detail: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(.protocolViolation, "protocol violation: \(detail)", file: file, line: line)
    }

    /// A frame arrived where `expected` was.
    public static func unexpectedFrame(
        _ header: FrameHeader,
        payload: [UInt8],
        expected: String,
        file: String = #fileID,
        line: UInt = #line
    ) -> Self {
        var error = Self(
            .unexpectedFrame,
            "unexpected frame \(header) payload=\(hexString(payload.prefix(64))); expected \(expected)",
            file: file,
            line: line
        )
        error.frame = (header, payload)
        return error
    }

    /// The daemon refused `opcode` with `errno`.
    public static func errorReply(_ opcode: Opcode, _ errno: Errno, file: String = #fileID, line: UInt = #line) -> Self
    {
        var error = Self(.errorReply, "\(opcode) was refused with \(errno)", file: file, line: line)
        error.opcode = opcode
        error.errno = errno
        return error
    }

    /// No mapping matched `detail` in `/proc/PID/maps`.
    public static func mappingNotFound(_ detail: String, file: String = #fileID, line: UInt = #line) -> Self {
        Self(.mappingNotFound, "mapping not found: \(detail)", file: file, line: line)
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
