import Dispatch
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A fault-injection seam for the watchdog tests, never set in production:
/// `GMEMD_TEST_STALL_LOOP=SECONDS[@DELAY]` blocks one event loop for SECONDS,
/// DELAY seconds (default 1) after READY=1, so a test can see the WATCHDOG=1
/// pings stop while the loop is wedged and resume afterwards.
struct StallInjection: Sendable {
    static let variable = "GMEMD_TEST_STALL_LOOP"

    var duration: Double
    var delay: Double

    /// Parses the variable; nil when unset or malformed (then nothing is injected).
    init?(environment: [String: String]) {
        guard let text = environment[Self.variable] else { return nil }
        let parts = text.split(separator: "@", maxSplits: 1)
        guard let duration = parts.first.flatMap({ Double($0) }), duration > 0, duration < 3600 else { return nil }
        let delay = parts.count == 2 ? Double(parts[1]) : 1
        guard let delay, delay >= 0, delay < 3600 else { return nil }
        self.duration = duration
        self.delay = delay
    }

    /// Schedules the stall on the group's last loop.
    func arm(group: MultiThreadedEventLoopGroup, logger: Logger) {
        guard let loop = Array(group.makeIterator()).last else { return }
        let duration = self.duration
        DispatchQueue.global().asyncAfter(deadline: .now() + self.delay) {
            logger.warning("test seam \(Self.variable): blocking an event loop for \(duration) s")
            loop.execute {
                // Deliberately blocks the loop's thread: that is the fault under test.
                usleep(useconds_t(duration * 1_000_000))
            }
        }
    }
}
