import Testing

#if canImport(Glibc)
import Glibc
#endif

extension DaemonTests {
    @Suite("watchdog")
    struct WatchdogPings {
        @Test("WATCHDOG_USEC=500000: pings arrive at about half the interval")
        func pingsArrive() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            try harness.start(watchdogMicroseconds: 500_000)
            let ready = try harness.waitReady()
            usleep(2_000_000)
            let pings = harness.notify.messages.filter { $0.has("WATCHDOG=1") && $0.time > ready.time }.map(\.time)
            #expect(pings.count >= 5, "only \(pings.count) pings in 2 s")
            let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }
            #expect(gaps.allSatisfy { $0 < .milliseconds(500) }, "a gap reached the interval: \(gaps)")
        }

        @Test("a wedged event loop stops the pings; they resume once it runs again")
        func stallStopsPings() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            // Block one loop for 2.5 s, 1 s after READY.
            try harness.start(watchdogMicroseconds: 500_000, environment: ["GMEMD_TEST_STALL_LOOP": "2.5@1"])
            let ready = try harness.waitReady()
            usleep(4_500_000)
            let offsets = harness.notify.messages.filter { $0.has("WATCHDOG=1") }.map { $0.time - ready.time }
            let before = offsets.filter { $0 < .milliseconds(900) }
            let during = offsets.filter { $0 > .milliseconds(1_300) && $0 < .milliseconds(3_400) }
            let after = offsets.filter { $0 > .milliseconds(3_600) }
            #expect(before.count >= 2, "pings before the stall: \(offsets)")
            #expect(during.isEmpty, "pings while a loop was wedged: \(during)")
            #expect(after.count >= 1, "pings did not resume: \(offsets)")
            #expect(harness.daemons[0].log.contains("withholding WATCHDOG=1"))
        }

        @Test("no WATCHDOG_USEC, no pings")
        func noWatchdog() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            try harness.start()
            try harness.waitReady()
            usleep(600_000)
            #expect(!harness.notify.messages.contains { $0.has("WATCHDOG=1") })
        }
    }
}
