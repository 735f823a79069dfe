import CGmemSys
import GmemProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A thread that serves rings: it polls them while they are busy and sleeps
/// on their doorbells once they have been idle for the poll interval.
///
/// Rings of every connection share the pollers (``RingPollers``); a ring is
/// served by one poller only, so its entries run in order without a lock.
/// Polling trades a core for latency: a poller that just found work keeps
/// looking for `pollInterval`, then announces that it sleeps (10.5) and waits
/// in epoll on the submit doorbells and its own wake-up eventfd.
final class RingPoller: @unchecked Sendable {
    private struct Changes {
        var added: [ServedRing] = []
        var stop = false
    }

    /// Rings served at once, for choosing the least loaded poller.
    let ringCount = Atomic<Int>(0)
    private let epoll: Int32
    /// Written to wake the poller for a change (a ring added or stopping).
    private let wakeup: Int32
    private let changes = Mutex(Changes())
    private let hasChanges = Atomic<Bool>(false)
    private let pollNanoseconds: UInt64
    /// Entries one ring may run before the poller turns to the next ring.
    private static let budget = 64
    /// Touched only by the poller's thread.
    private var rings: [ServedRing] = []
    private var thread: pthread_t?

    init(pollMicroseconds: Int) throws(GmemError) {
        self.pollNanoseconds = UInt64(max(0, pollMicroseconds)) * 1000
        self.epoll = cgmem_epoll_create()
        guard self.epoll >= 0 else { throw .systemCall("epoll_create1", errno: errno) }
        self.wakeup = cgmem_eventfd()
        guard self.wakeup >= 0, cgmem_epoll_add(self.epoll, self.wakeup, 0) == 0 else {
            let saved = errno
            close(self.epoll)
            if self.wakeup >= 0 { close(self.wakeup) }
            throw .systemCall("the ring poller's wake-up eventfd", errno: saved)
        }
    }

    func start() throws(GmemError) {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            nil,
            { argument in
                let poller = Unmanaged<RingPoller>.fromOpaque(argument!).takeRetainedValue()
                poller.run()
                return nil
            },
            box.toOpaque()
        )
        guard status == 0 else {
            box.release()
            throw .systemCall("pthread_create (ring poller)", errno: status)
        }
        self.thread = thread
    }

    func add(_ ring: ServedRing) {
        self.ringCount.wrappingAdd(1, ordering: .relaxed)
        self.changes.withLock { $0.added.append(ring) }
        self.hasChanges.store(true, ordering: .releasing)
        self.wake()
    }

    /// Makes the poller look at its rings now (one of them was asked to stop).
    func wake() {
        var one: UInt64 = 1
        _ = write(self.wakeup, &one, 8)
    }

    /// Finishes every ring and ends the thread; returns once it has.
    func stop() {
        self.changes.withLock { $0.stop = true }
        self.hasChanges.store(true, ordering: .releasing)
        self.wake()
        if let thread = self.thread { pthread_join(thread, nil) }
        self.thread = nil
        close(self.epoll)
        close(self.wakeup)
    }

    // MARK: The poller's thread

    private func run() {
        var lastWork = monotonicNanoseconds()
        var ready = [UInt64](repeating: 0, count: 64)
        while true {
            if self.hasChanges.load(ordering: .acquiring), self.applyChanges() { break }
            self.dropStoppedRings()
            var worked = false
            for ring in self.rings where ring.serve(budget: Self.budget) { worked = true }
            if worked {
                lastWork = monotonicNanoseconds()
                continue
            }
            if monotonicNanoseconds() &- lastWork < self.pollNanoseconds { continue }
            // Announce the sleep, then look once more: a client that published
            // before it saw the flag is seen here (10.5).
            for ring in self.rings { ring.setNeedWakeup(true) }
            SharedRing.fence()
            var stalled = false
            var waiting = self.hasChanges.load(ordering: .acquiring)
            for ring in self.rings {
                switch ring.pending() {
                case .nothing: break
                case .entries: waiting = true
                case .stalled: stalled = true
                }
            }
            if !waiting {
                // A ring whose client does not consume completions is looked at
                // every millisecond: no doorbell says when it does.
                let count = ready.withUnsafeMutableBufferPointer {
                    cgmem_epoll_wait(self.epoll, $0.baseAddress, 64, stalled ? 1 : -1)
                }
                if count > 0 {
                    var value: UInt64 = 0
                    _ = read(self.wakeup, &value, 8)
                    for ring in self.rings { ring.memory.drainSubmitDoorbell() }
                }
            }
            for ring in self.rings { ring.setNeedWakeup(false) }
            lastWork = monotonicNanoseconds()
        }
        for ring in self.rings { self.drop(ring) }
        self.rings.removeAll()
    }

    /// Takes the added rings; true when the poller is to stop.
    private func applyChanges() -> Bool {
        self.hasChanges.store(false, ordering: .relaxed)
        let changes = self.changes.withLock { changes in
            defer { changes.added.removeAll() }
            return changes
        }
        for ring in changes.added {
            if cgmem_epoll_add(self.epoll, ring.memory.submitDoorbell, 1) == 0 {
                self.rings.append(ring)
            } else {
                // Cannot be woken for it: serve it never rather than sometimes.
                ring.requestStop()
                self.rings.append(ring)
            }
        }
        return changes.stop
    }

    private func dropStoppedRings() {
        guard self.rings.contains(where: { $0.isStopping }) else { return }
        // Decide once per ring: the event loop may ask another ring to stop
        // meanwhile, and a ring removed without drop() would leak its pages.
        var kept: [ServedRing] = []
        for ring in self.rings {
            if ring.isStopping { self.drop(ring) } else { kept.append(ring) }
        }
        self.rings = kept
    }

    private func drop(_ ring: ServedRing) {
        _ = cgmem_epoll_remove(self.epoll, ring.memory.submitDoorbell)
        ring.finish()
        self.ringCount.wrappingSubtract(1, ordering: .relaxed)
    }

}

/// The pollers of a server, created with the first ring.
final class RingPollers: Sendable {
    private let pollers = Mutex<[RingPoller]>([])
    private let count: Int
    private let pollMicroseconds: Int

    init(count: Int, pollMicroseconds: Int) {
        self.count = max(1, count)
        self.pollMicroseconds = pollMicroseconds
    }

    /// The least loaded poller, starting them on first use.
    func poller() throws(GmemError) -> RingPoller {
        try self.pollers.withLock { pollers throws(GmemError) -> RingPoller in
            if pollers.isEmpty {
                for _ in 0..<self.count {
                    let poller = try RingPoller(pollMicroseconds: self.pollMicroseconds)
                    try poller.start()
                    pollers.append(poller)
                }
            }
            return pollers.min { $0.ringCount.load(ordering: .relaxed) < $1.ringCount.load(ordering: .relaxed) }!
        }
    }

    /// Stops every poller: their rings are finished and their threads joined.
    func stop() {
        let pollers = self.pollers.withLock { pollers in
            defer { pollers.removeAll() }
            return pollers
        }
        for poller in pollers { poller.stop() }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no system call): the pollers' and rings' one clock.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}
