//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// SystemCall: the one loop that retries a system call a signal interrupted.
//
//===----------------------------------------------------------------------===//

#if canImport(Glibc)
import Glibc
#endif

/// Runs C library calls that report failure as `-1` with `errno` set, retrying those a signal interrupted (`EINTR`).
///
/// A blocking call (`read`, `recv`, `poll`, `waitpid`, `nanosleep`, ...) fails with `EINTR` whenever a signal
/// handler runs on the thread meanwhile; that is no failure, only a reason to call again.
public enum SystemCall {
    /// The result of `call`, called again for as long as it fails with `EINTR`.
    ///
    /// Any other result, `-1` included, is returned as is, with `errno` still holding the call's error: for callers
    /// that tell some errors apart (`EAGAIN`, `ECONNRESET`, ...).
    @inlinable
    public static func retryingOnInterrupt<Result: FixedWidthInteger>(_ call: () -> Result) -> Result {
        while true {
            let result = call()
            if result == -1 && errno == EINTR { continue }
            return result
        }
    }

    /// The result of `call` (retried while it fails with `EINTR`); any other failure throws a ``GmemError`` naming
    /// `name`, with the call's errno as its code.
    @inlinable
    public static func run<Result: FixedWidthInteger>(
        _ name: @autoclosure () -> String,
        file: String = #fileID,
        line: UInt = #line,
        _ call: () -> Result
    ) throws(GmemError) -> Result {
        let result = Self.retryingOnInterrupt(call)
        guard result != -1 else { throw GmemError.systemCall(name(), errno: errno, file: file, line: line) }
        return result
    }
}

extension Errno {
    /// The calling thread's `errno`, as set by the last failed C library call.
    @inlinable
    public static var current: Errno { Errno(rawValue: errno) }
}
