import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps a SIGTERM or SIGINT that arrives while gmemd starts.
///
/// swift-service-lifecycle traps the graceful-shutdown signals only once the
/// service group runs; until then (parsing, the fd store, creating the region)
/// the default action would kill gmemd without an orderly exit. This handler,
/// installed first thing, only records the signal. Once the socket serves
/// (when the group's own trap is long in place, since the group registers its
/// signals before it starts any service), ``replayIfCaught()`` raises it again
/// and the group shuts down gracefully as for any other SIGTERM.
enum StartupSignal {
    /// The signal caught during startup, 0 if none.
    private static let caught = Atomic<Int32>(0)

    static func trap() {
        // Touch the atomic now: a static is initialised lazily (swift_once),
        // which is not async-signal-safe inside the handler.
        _ = Self.caught.load(ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = gmemdStartupSignalHandler
        sigemptyset(&action.sa_mask)
        for number in [SIGTERM, SIGINT] { sigaction(number, &action, nil) }
    }

    /// Raises the signal caught during startup again, now that the service
    /// group handles it; true if there was one.
    static func replayIfCaught() -> Bool {
        let number = Self.caught.exchange(0, ordering: .acquiring)
        guard number != 0 else { return false }
        // To the process, not raise(3)'s calling thread: libdispatch reads the
        // group's signals from a signalfd, which sees only signals pending for
        // the process or for its own thread.
        kill(getpid(), number)
        return true
    }

    fileprivate static func record(_ number: Int32) {
        // Lock-free store: async-signal-safe.
        Self.caught.store(number, ordering: .releasing)
    }
}

private let gmemdStartupSignalHandler: @convention(c) (Int32) -> Void = { number in
    StartupSignal.record(number)
}

/// A fault-injection seam for the startup-signal test, never set in
/// production: `GMEMD_TEST_STARTUP_PAUSE=SECONDS` pauses startup after the
/// region exists and before the service group runs, so a test can signal
/// gmemd inside that window.
enum StartupPause {
    static let variable = "GMEMD_TEST_STARTUP_PAUSE"

    static func apply(environment: [String: String]) {
        guard let text = environment[Self.variable], let seconds = Double(text), seconds > 0, seconds < 60 else {
            return
        }
        usleep(useconds_t(seconds * 1_000_000))
    }
}
