import CSystemd
import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells whether the threads that serve clients are responsive.
///
/// Contract: ``probe(timeout:)`` returns true only if every serving thread
/// (each event loop) ran a no-op submitted by this call within `timeout`. It
/// is called from the watchdog's own thread, never from a serving thread, and
/// may block for up to `timeout`. It must not wait for anything else.
public protocol LivenessProbe: Sendable {
    func probe(timeout: Duration) -> Bool
}

/// Sends WATCHDOG=1 at half of systemd's WatchdogSec, but only after a
/// liveness probe has gone through every serving thread: a wedged event loop
/// stops the pings, and systemd then kills and restarts the service.
public final class Watchdog: @unchecked Sendable {  // Immutable; DispatchSource is thread-safe.
    private let interval: Duration
    private let probe: any LivenessProbe
    private let notifier: any ServiceNotifier
    private let logger: Logger
    private let timer: any DispatchSourceTimer
    private let started = Atomic<Bool>(false)
    private let withholding = Atomic<Bool>(false)

    /// The interval systemd expects pings within (WATCHDOG_USEC, for this
    /// process per WATCHDOG_PID), or nil when the watchdog is off.
    public static func configuredInterval() -> Duration? {
        var microseconds: UInt64 = 0
        // unset_environment 0: a restart of the watchdog must still find it.
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds))
    }

    public init(interval: Duration, probe: any LivenessProbe, notifier: any ServiceNotifier, logger: Logger) {
        // A queue of its own: the timer must never wait behind the serving threads.
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gmemd.watchdog"))
        self.interval = interval
        self.probe = probe
        self.notifier = notifier
        self.logger = logger
    }

    /// The ping period: half the interval, as sd_watchdog_enabled(3) advises.
    public var period: Duration { self.interval / 2 }

    /// How long a probe may wait for a loop. A quarter of the interval keeps
    /// ping gaps under three quarters of it while the loops are healthy.
    public var probeTimeout: Duration { self.interval / 4 }

    /// Starts pinging; the first ping follows a successful probe at once.
    public func start() {
        guard !self.started.exchange(true, ordering: .relaxed) else { return }
        let source = self.timer
        let period = Self.nanoseconds(self.period)
        source.schedule(deadline: .now(), repeating: .nanoseconds(period), leeway: .nanoseconds(period / 20))
        source.setEventHandler { [self] in self.tick() }
        source.resume()
        self.logger.info("watchdog on", metadata: ["interval_us": "\(Self.nanoseconds(self.interval) / 1000)"])
    }

    /// Stops pinging, for shutdown: the service is stopping anyway.
    public func stop() {
        self.timer.cancel()
    }

    deinit {
        self.timer.cancel()
        // libdispatch traps on releasing a source that was never resumed.
        if !self.started.load(ordering: .relaxed) { self.timer.resume() }
    }

    /// One probe and, if every loop answered, one ping.
    func tick() {
        if self.probe.probe(timeout: self.probeTimeout) {
            if self.withholding.exchange(false, ordering: .relaxed) {
                self.logger.notice("event loops responsive again; watchdog pings resume")
            }
            self.notifier.watchdogAlive()
        } else if !self.withholding.exchange(true, ordering: .relaxed) {
            self.logger.error("an event loop did not answer within \(self.probeTimeout); withholding WATCHDOG=1")
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(clamping: seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }
}

extension Watchdog: Service {
    /// Pings from the start of the service group until its graceful shutdown
    /// (or cancellation): a stopping service is no longer watched.
    public func run() async {
        self.start()
        // Returns at graceful shutdown; throws only when cancelled, which ends the pings the same way.
        try? await gracefulShutdown()
        self.stop()
    }
}
