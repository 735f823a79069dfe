import Dispatch
import GmemCore
import ServiceLifecycle
import Synchronization

/// Keeps `systemctl status` current: sends STATUS= with a fresh one-line
/// summary every ``period`` (well inside the 5 s the service promises).
///
/// The summary closure runs on the reporter's own queue; it must be cheap
/// and thread-safe (it reads atomic counters).
public final class StatusReporter: @unchecked Sendable {  // Immutable; DispatchSource is thread-safe.
    public static let defaultPeriod: Duration = .seconds(2)

    public let period: Duration
    private let summary: @Sendable () -> String
    private let notifier: any ServiceNotifier
    private let timer: any DispatchSourceTimer
    private let started = Atomic<Bool>(false)
    private let last = Locked<String>("")

    public init(
        period: Duration = StatusReporter.defaultPeriod,
        notifier: any ServiceNotifier,
        summary: @escaping @Sendable () -> String
    ) {
        // A queue of its own: the timer must never wait behind the serving threads.
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gmemd.status"))
        self.period = period
        self.notifier = notifier
        self.summary = summary
    }

    /// Starts the periodic updates; the first follows one period from now
    /// (READY=1 carries the first summary).
    public func start() {
        guard !self.started.exchange(true, ordering: .relaxed) else { return }
        let source = self.timer
        let period = Watchdog.nanoseconds(self.period)
        source.schedule(
            deadline: .now() + .nanoseconds(period),
            repeating: .nanoseconds(period),
            leeway: .milliseconds(100)
        )
        source.setEventHandler { [self] in self.send() }
        source.resume()
    }

    public func stop() {
        self.timer.cancel()
    }

    deinit {
        self.timer.cancel()
        // libdispatch traps on releasing a source that was never resumed.
        if !self.started.load(ordering: .relaxed) { self.timer.resume() }
    }

    /// Sends the current summary now. Unchanged summaries are sent too: the
    /// periodic update doubles as a sign of life in `systemctl status`.
    public func send() {
        let text = self.summary()
        self.last.withLock { $0 = text }
        self.notifier.status(text)
    }

    /// The summary most recently sent.
    public var lastSent: String { self.last.withLock { $0 } }
}

extension StatusReporter: Service {
    /// Reports from the start of the service group until its graceful shutdown
    /// (or cancellation), so no summary overwrites the stopping status.
    public func run() async {
        self.start()
        // Returns at graceful shutdown; throws only when cancelled, which ends the reports the same way.
        try? await gracefulShutdown()
        self.stop()
    }
}
