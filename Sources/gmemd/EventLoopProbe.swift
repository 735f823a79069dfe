import Dispatch
import GmemSystemd
import NIOCore
import NIOPosix

/// The watchdog's liveness probe: a no-op through every event loop of the
/// group, each of which must run it before the deadline. A loop stuck in a
/// long computation or a blocking call fails the probe, so the pings stop.
struct EventLoopProbe: LivenessProbe {
    let group: MultiThreadedEventLoopGroup

    func probe(timeout: Duration) -> Bool {
        // A fresh semaphore per probe: no-ops from an earlier, timed-out probe
        // that run late signal their own semaphore, never this one.
        let answered = DispatchSemaphore(value: 0)
        var loops = 0
        for loop in self.group.makeIterator() {
            loop.execute { answered.signal() }
            loops += 1
        }
        let deadline = DispatchTime.now() + .nanoseconds(Self.nanoseconds(timeout))
        for _ in 0..<loops where answered.wait(timeout: deadline) == .timedOut {
            return false
        }
        return true
    }

    private static func nanoseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(clamping: seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }
}
