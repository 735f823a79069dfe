import GmemCommandLine
import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// Targets R1-R7 (the ring transport) against the socket, measured in the same interleaved rounds, for ``SuiteRun``.
extension SuiteRun {
    /// One measurement of a round: over the socket or over a ring.
    enum Measurement {
        case socket(LoadSpec)
        case ring(RingLoadSpec)

        var label: String {
            switch self {
            case .socket(let spec): return spec.label
            case .ring(let spec): return spec.label
            }
        }
    }

    func ringSpec(
        _ label: String,
        _ socket: String,
        _ operation: RingOperation,
        depth: Int = 1,
        spin: Int = 1_000_000
    ) -> RingLoadSpec {
        RingLoadSpec(
            label: label,
            socketPath: socket,
            operation: operation,
            depth: depth,
            warmup: self.options.warmup,
            duration: self.options.duration,
            spin: spin
        )
    }

    /// ``measureRounds(_:)`` for a mix of socket and ring measurements.
    mutating func measureMixedRounds(_ items: [(Measurement, Pick)]) throws -> [LoadResult] {
        var all = [[LoadResult]](repeating: [], count: items.count)
        for round in 0..<self.options.rounds {
            if self.options.rounds > 1 { self.log("  round \(round + 1) of \(self.options.rounds)") }
            for (index, (item, _)) in items.enumerated() {
                switch item {
                case .socket(let spec): all[index].append(try self.measure(spec))
                case .ring(let spec): all[index].append(try self.measureRing(spec))
                }
            }
        }
        return items.indices.map { self.keep(all[$0], items[$0].1) }
    }

    mutating func measureRing(_ spec: RingLoadSpec) throws -> LoadResult {
        try self.checked(RingLoadDriver.run(spec))
    }

    mutating func runRingTargets() {
        self.log("\n[R1-R5] rings against the socket, gmemd \(Self.baseArguments.joined(separator: " ")), interleaved")
        do {
            let (polling, _) = try self.spawn(Self.baseArguments)
            defer { polling.stop() }
            let (doorbell, _) = try self.spawn(Self.baseArguments + ["--ring-poll-us", "0"])
            defer { doorbell.stop() }
            let g = polling.socketPath
            let results = try self.measureMixedRounds([
                (.socket(self.spec("socket GPC_READ 1x1 hot", g, .gpcRead)), .latency),
                (.ring(self.ringSpec("ring GPC_READ depth 1, polling", g, .gpcRead)), .latency),
                (.socket(self.spec("socket READ 2x16 hot", g, .read, connections: 2, depth: 16)), .throughput),
                (.ring(self.ringSpec("ring READ depth 32 hot", g, .read, depth: 32)), .throughput),
                (.ring(self.ringSpec("ring READV 16x128 B over 16 pages", g, .readv16)), .latency),
                (.ring(self.ringSpec("ring GPC CMPXCHG depth 1", g, .gpcCompareExchange)), .latency),
                (
                    .ring(
                        self.ringSpec("ring GPC_READ depth 1, doorbells only", doorbell.socketPath, .gpcRead, spin: 0)
                    ),
                    .latency
                ),
            ])
            let (socketGPC, ringGPC, socketRead, ringRead, readv, cmpxchg, doorbellGPC) = (
                results[0], results[1], results[2], results[3], results[4], results[5], results[6]
            )
            if polling.status() == nil || doorbell.status() == nil { throw BenchError("a gmemd died") }
            self.addRatio(
                "R1",
                "ring GPC_READ p50, depth 1, polling",
                ringGPC.p50,
                socketGPC.p50,
                baselineText: "socket GPC_READ",
                limit: 0.15,
                atMost: true,
                latency: true
            )
            self.addRatio(
                "R2",
                "ring READ ops/s, 32 in flight, hot private page",
                ringRead.opsPerSecond,
                socketRead.opsPerSecond,
                baselineText: "socket READ 2x16",
                limit: 5,
                atMost: false,
                latency: false
            )
            let calls = readv.protectCallsPerOp ?? .nan
            self.addAbsolute(
                "R3",
                "ring READV 16 segments, 16 private pages: protection calls per request",
                calls,
                text: fixed(calls, 2),
                target: "<= 2",
                met: calls <= 2
            )
            self.addRatio(
                "R4",
                "ring CMPXCHG (8 B) on a GPC p50, depth 1",
                cmpxchg.p50,
                ringGPC.p50,
                baselineText: "ring GPC_READ",
                limit: 1.1,
                atMost: true,
                latency: true
            )
            self.addRatio(
                "R5",
                "ring GPC_READ p50, --ring-poll-us 0, depth 1",
                doorbellGPC.p50,
                socketGPC.p50,
                baselineText: "socket GPC_READ",
                limit: 1.0,
                atMost: true,
                latency: true
            )
        } catch {
            self.log("targets R1-R5 failed: \(error)")
            self.addFailed(["R1", "R2", "R3", "R4", "R5"].map { ($0, "ring target") }, error)
        }
        self.runIdleRingsTarget()
        self.runFetchAddTarget()
    }

    /// R6: eight open, idle rings cost gmemd almost nothing: the poller sleeps on their doorbells.
    mutating func runIdleRingsTarget() {
        self.log("\n[R6] 8 idle rings for 2 s")
        do {
            let (daemon, _) = try self.spawn(Self.baseArguments)
            defer { daemon.stop() }
            let connection = try RawConnection.connect(daemon.socketPath)
            defer { connection.close() }
            _ = try connection.hello(features: [.rings])
            var rings: [RawRing] = []
            for _ in 0..<8 { rings.append(try connection.ring(entries: 64, dataSize: 1 << 16)) }
            // Use each once, so that the poller has had work and then went idle.
            for ring in rings { _ = try ring.call(.ping(cookie: 1)) }
            sleepNanos(100_000_000)
            guard let before = daemon.cpuNanoseconds() else { throw BenchError("gmemd died") }
            sleepNanos(2_000_000_000)
            guard let after = daemon.cpuNanoseconds() else { throw BenchError("gmemd died") }
            let share = Double(after - before) / 2e9
            self.log("  gmemd ran \(fixed(Double(after - before) / 1e6, 2)) ms of CPU in 2 s")
            self.addAbsolute(
                "R6",
                "8 rings open and idle for 2 s: gmemd's CPU time",
                share,
                text: "\(fixed(share * 100, 3)) % of a core",
                target: "<= 2 %",
                met: share <= 0.02
            )
            for ring in rings { ring.close() }
        } catch {
            self.log("target R6 failed: \(error)")
            self.addFailed([("R6", "idle rings")], error)
        }
    }

    /// R7: FETCH_ADD from three processes at once (socket, ring, ring GPC) ends exactly at the sum.
    mutating func runFetchAddTarget() {
        let count = 100_000
        self.log("\n[R7] FETCH_ADD x \(count) from 3 processes: socket, ring, ring through a GPC")
        do {
            let (daemon, _) = try self.spawn(Self.baseArguments)
            defer { daemon.stop() }
            let gpa: UInt64 = 0x8008
            // This very gmem-bench, as three client processes.
            var path = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/self/exe", &path, path.count - 1)
            guard length > 0 else { throw BenchError("cannot read /proc/self/exe") }
            let me = String(decoding: path[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let started = monotonicNanos()
            let children = try ["socket", "ring", "ring-gpc"].map { transport in
                try Subprocess(
                    executable: me,
                    arguments: [
                        "fetch-add", "--socket", daemon.socketPath, "--gpa", String(gpa), "--count", String(count),
                        "--transport", transport,
                    ]
                )
            }
            for child in children {
                let status = try child.wait(timeout: .seconds(300))
                guard status == .exited(0) else { throw BenchError("a fetch-add process ended with \(status)") }
            }
            let seconds = Double(monotonicNanos() - started) / 1e9
            let connection = try RawConnection.connect(daemon.socketPath)
            defer { connection.close() }
            _ = try connection.hello()
            let value = try connection.atomicValue(gpa: gpa, AtomicArguments(op: .load, width: 8))
            self.log("  final value \(value) after \(fixed(seconds, 2)) s")
            self.addAbsolute(
                "R7",
                "3 processes x \(count) FETCH_ADD on one word (socket, ring, ring GPC): final value",
                Double(value),
                text: "\(value)",
                target: "= \(3 * count)",
                met: value == UInt64(3 * count)
            )
        } catch {
            self.log("target R7 failed: \(error)")
            self.addFailed([("R7", "FETCH_ADD from 3 processes")], error)
        }
    }

}
