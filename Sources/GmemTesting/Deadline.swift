//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Deadline: bounded waiting for conditions that settle asynchronously.
//
//===----------------------------------------------------------------------===//

import GmemErrno

#if canImport(Glibc)
import Glibc
#endif

/// A point in time after which a blocking operation gives up.
///
/// Used for every wait in this module, so that a daemon that never answers fails a test within a known time
/// instead of hanging the suite.
public struct Deadline: Sendable, Hashable {
    /// When the deadline passes, on the continuous (monotonic) clock.
    public let instant: ContinuousClock.Instant

    /// A deadline `timeout` from now.
    public init(after timeout: Duration) {
        self.instant = ContinuousClock.now.advanced(by: timeout)
    }

    /// Time left, zero once passed.
    public var remaining: Duration {
        max(.zero, ContinuousClock.now.duration(to: self.instant))
    }

    /// Whether the deadline has passed.
    public var hasPassed: Bool {
        ContinuousClock.now >= self.instant
    }

    /// The time left in whole milliseconds for `poll(2)`, at least 0 and at most `Int32.max`.
    public var remainingMilliseconds: Int32 {
        let (seconds, attoseconds) = self.remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}

/// Re-evaluates `condition` until it returns true, re-checking every `interval`, or throws
/// ``GmemTestingError/timedOut(_:)`` after `timeout`.
///
/// This is for state that settles on its own after an event the test cannot observe directly (the daemon noticing
/// a closed socket, a child process being reaped), not a replacement for waiting on a reply: each check is a real
/// observation, and the wait ends as soon as it holds.
///
/// - Parameter what: describes the condition for the timeout error.
public func waitUntil(
    _ what: @autoclosure () -> String,
    timeout: Duration = .seconds(5),
    interval: Duration = .milliseconds(5),
    _ condition: () throws -> Bool
) throws {
    let deadline = Deadline(after: timeout)
    while true {
        if try condition() { return }
        if deadline.hasPassed { throw GmemTestingError.timedOut(what()) }
        pause(min(interval, deadline.remaining))
    }
}

/// Blocks the calling thread for `duration` (between two observations of a polled condition).
func pause(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    // An interrupted sleep goes on for the time it had left.
    _ = SystemCall.retryingOnInterrupt {
        defer { request = remaining }
        return nanosleep(&request, &remaining)
    }
}
