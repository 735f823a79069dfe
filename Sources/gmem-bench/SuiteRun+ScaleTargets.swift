import ArgumentParser
import GmemCommandLine
import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// Targets 7-9 (start-up, idle connections, many GPCs) and the report, for ``SuiteRun``.
extension SuiteRun {
    // MARK: Target 7

    mutating func runStartupTarget() {
        self.log("\n[7] start-up of gmemd --size 1T")
        do {
            let (daemon, startup) = try self.spawn(["--size", "1T", "--backing", "memfd"])
            defer { daemon.stop() }
            let atAnswer = daemon.status()
            sleepNanos(500_000_000)
            guard let idle = daemon.status() else { throw BenchError("gmemd died: \(daemon.logTail())") }
            let seconds = Double(startup) / 1e9
            self.log(
                "  answered after \(fixed(seconds * 1000, 1)) ms; VmRSS \(ByteSize.format(Double(idle.vmRSS))) (RssShmem \(ByteSize.format(Double(idle.rssShmem))))"
            )
            self.addAbsolute(
                "7a",
                "start-up, 1 TiB region: spawn to HELLO reply",
                seconds,
                text: "\(fixed(seconds * 1000, 1)) ms",
                target: "< 1 s",
                met: seconds < 1,
                ratio: fixed(seconds, 3) + " of 1 s"
            )
            self.addAbsolute(
                "7b",
                "idle RSS, 1 TiB region",
                Double(idle.vmRSS),
                text: ByteSize.format(Double(idle.vmRSS)),
                target: "< 64 MiB",
                met: idle.vmRSS < 64 << 20,
                ratio: fixed(Double(idle.vmRSS) / Double(64 << 20), 3) + " of 64 MiB"
            )
            var section = JSONObject()
            section["startup_ns"] = .signed(Int64(startup))
            section["vm_rss_at_answer"] = .signed(Int64(atAnswer?.vmRSS ?? 0))
            section["vm_rss_idle"] = .signed(Int64(idle.vmRSS))
            section["rss_anon_idle"] = .signed(Int64(idle.rssAnon))
            section["rss_shmem_idle"] = .signed(Int64(idle.rssShmem))
            self.sections["startup_1t"] = section.value
        } catch {
            self.log("target 7 failed: \(error)")
            self.rows.append(
                TargetRow(
                    number: "7",
                    measure: "start-up, 1 TiB region",
                    value: "error",
                    baseline: "-",
                    ratio: "-",
                    target: "< 1 s, < 64 MiB",
                    met: nil,
                    json: ["error": .string("\(error)")]
                )
            )
        }
    }

    // MARK: Target 8

    mutating func runIdleTarget() {
        let count = self.options.idleConnections
        self.log(
            "\n[8] \(count) idle connections, gmemd \(Self.baseArguments.joined(separator: " ")) --max-connections \(count + 64)"
        )
        do {
            let (daemon, _) = try self.spawn(Self.baseArguments + ["--max-connections", "\(count + 64)"])
            defer { daemon.stop() }
            let socket = daemon.socketPath
            var aloneRounds: [LoadResult] = []
            var crowdedRounds: [LoadResult] = []
            var before = ProcessStatus()
            var after = ProcessStatus()
            var openSeconds = 0.0
            for round in 0..<self.options.rounds {
                if self.options.rounds > 1 { self.log("  round \(round + 1) of \(self.options.rounds)") }
                aloneRounds.append(try self.measure(self.spec("gmemd PING 1x1, none idle", socket, .ping)))
                sleepNanos(200_000_000)
                guard let rssBefore = daemon.status() else { throw BenchError("gmemd died: \(daemon.logTail())") }
                var idle: [PipelinedConnection] = []
                idle.reserveCapacity(count)
                let openStart = monotonicNanos()
                for _ in 0..<count { idle.append(try PipelinedConnection(path: socket, receiveCapacity: 4096)) }
                let opened = Double(monotonicNanos() - openStart) / 1e9
                sleepNanos(500_000_000)
                guard let rssAfter = daemon.status() else { throw BenchError("gmemd died: \(daemon.logTail())") }
                crowdedRounds.append(try self.measure(self.spec("gmemd PING 1x1, \(count) idle", socket, .ping)))
                for connection in idle { connection.close() }
                // The first round's growth is the cost of the connections; later rounds may reuse freed memory.
                if round == 0 {
                    before = rssBefore
                    after = rssAfter
                    openSeconds = opened
                    self.log(
                        "  opened \(count) in \(fixed(opened * 1000, 0)) ms; VmRSS \(ByteSize.format(Double(rssBefore.vmRSS))) -> \(ByteSize.format(Double(rssAfter.vmRSS))) (RssShmem \(ByteSize.format(Double(rssAfter.rssShmem) - Double(rssBefore.rssShmem))) of it), threads \(rssBefore.threads) -> \(rssAfter.threads)"
                    )
                }
                try self.waitForConnections(socket: socket, atMost: 1)
            }
            let alone = self.keep(aloneRounds, .latency)
            let crowded = self.keep(crowdedRounds, .latency)
            let extra = Double(after.vmRSS) - Double(before.vmRSS)
            let extraShmem = Double(after.rssShmem) - Double(before.rssShmem)
            self.addAbsolute(
                "8a",
                "\(count) idle connections: extra daemon RSS",
                extra,
                text: "\(ByteSize.format(extra)) (shmem \(ByteSize.format(extraShmem)))",
                target: "< 64 MiB",
                met: extra < Double(64 << 20),
                ratio: fixed(extra / Double(64 << 20), 3) + " of 64 MiB"
            )
            self.addRatio(
                "8b",
                "PING p50 of an active client, \(count) idle",
                crowded.p50,
                alone.p50,
                baselineText: "none idle",
                limit: 1.2,
                atMost: true,
                latency: true
            )
            var section = JSONObject()
            section["connections"] = .signed(Int64(count))
            section["open_seconds"] = .measurement(openSeconds)
            section["vm_rss_before"] = .signed(Int64(before.vmRSS))
            section["vm_rss_after"] = .signed(Int64(after.vmRSS))
            section["rss_shmem_before"] = .signed(Int64(before.rssShmem))
            section["rss_shmem_after"] = .signed(Int64(after.rssShmem))
            section["rss_anon_before"] = .signed(Int64(before.rssAnon))
            section["rss_anon_after"] = .signed(Int64(after.rssAnon))
            self.sections["idle_connections"] = section.value
        } catch {
            self.log("target 8 failed: \(error)")
            self.rows.append(
                TargetRow(
                    number: "8",
                    measure: "\(count) idle connections",
                    value: "error",
                    baseline: "-",
                    ratio: "-",
                    target: "< 64 MiB, <= 1.2x",
                    met: nil,
                    json: ["error": .string("\(error)")]
                )
            )
        }
    }

    // MARK: Target 9

    mutating func runGPCTarget() {
        let total = self.options.gpcs
        let connections = self.options.gpcConnections
        let perConnection = total / connections
        let perPage = self.options.gpcsPerPage
        let maxGPCs = max(2000, perConnection * 2)
        self.log(
            "\n[9] \(total) active GPCs over \(connections) connections (\(perPage) per page, pages 2 apart), gmemd \(Self.baseArguments.joined(separator: " ")) --max-gpcs \(maxGPCs)"
        )
        do {
            let (daemon, _) = try self.spawn(
                Self.baseArguments + ["--max-gpcs", "\(maxGPCs)", "--max-connections", "\(connections + 64)"]
            )
            defer { daemon.stop() }
            let socket = daemon.socketPath
            // The measured pages (16 for GPC_READ, 32 for READ) lie far below the GPC area (64 MiB and up).
            var gpcBeforeRounds: [LoadResult] = []
            var readBeforeRounds: [LoadResult] = []
            var gpcAfterRounds: [LoadResult] = []
            var readAfterRounds: [LoadResult] = []
            var mapsBefore = 0
            var mapsAfter = 0
            var activateSeconds = 0.0
            var gpcActive: UInt64 = 0
            var rss: ProcessStatus?
            let pages = (total + perPage - 1) / perPage
            for round in 0..<self.options.rounds {
                if self.options.rounds > 1 { self.log("  round \(round + 1) of \(self.options.rounds)") }
                // The measured pages (16 for GPC_READ, 32 for READ) lie far below the GPC area (64 MiB and up).
                gpcBeforeRounds.append(
                    try self.measure(self.spec("gmemd GPC_READ 1x1, no GPCs active", socket, .gpcRead, hotPage: 16))
                )
                readBeforeRounds.append(
                    try self.measure(self.spec("gmemd READ 1x1, no GPCs active", socket, .read, hotPage: 32))
                )
                let maps = mappingCount(pid: daemon.pid) ?? 0

                let control = try PipelinedConnection(path: socket)
                let pageSize = UInt64(control.hello.pageSize)
                let base: UInt64 = 64 << 20
                guard base + UInt64(pages) * 2 * pageSize <= control.hello.regionSize else {
                    throw BenchError("the region is too small for \(pages) pages 2 apart above 64 MiB")
                }
                var holders: [PipelinedConnection] = []
                let activateStart = monotonicNanos()
                for connection in 0..<connections {
                    let holder = try PipelinedConnection(path: socket, receiveCapacity: 64 << 10)
                    // GPC g = j * connections + c: consecutive g share a page, so each page is cached by
                    // `perPage` different connections, each through its own 64-byte window.
                    var windows: [(gpa: UInt64, length: UInt32)] = []
                    windows.reserveCapacity(perConnection)
                    for j in 0..<perConnection {
                        let g = j * connections + connection
                        let page = UInt64(g / perPage)
                        windows.append((base + page * 2 * pageSize + UInt64(g % perPage) * 64, 64))
                    }
                    _ = try holder.activateGPCs(windows)
                    holders.append(holder)
                }
                let activated = Double(monotonicNanos() - activateStart) / 1e9
                let stats = DaemonCounters(try control.stats())
                control.close()
                guard stats["gpc_active"] >= UInt64(total) else {
                    throw BenchError("gpc_active is \(stats["gpc_active"]), expected \(total)")
                }
                if round == 0 {
                    mapsBefore = maps
                    mapsAfter = mappingCount(pid: daemon.pid) ?? 0
                    activateSeconds = activated
                    gpcActive = stats["gpc_active"]
                    rss = daemon.status()
                    self.log(
                        "  activated \(total) GPCs on \(pages) pages in \(fixed(activated, 2)) s; gpc_active \(gpcActive); mappings \(mapsBefore) -> \(mapsAfter); VmRSS \(ByteSize.format(Double(rss?.vmRSS ?? 0)))"
                    )
                }
                gpcAfterRounds.append(
                    try self.measure(
                        self.spec("gmemd GPC_READ 1x1, \(total) GPCs active", socket, .gpcRead, hotPage: 16)
                    )
                )
                readAfterRounds.append(
                    try self.measure(self.spec("gmemd READ 1x1, \(total) GPCs active", socket, .read, hotPage: 32))
                )
                for holder in holders { holder.close() }
                // Closing deactivates: wait until the daemon has dropped them all before the next round.
                try self.waitForConnections(socket: socket, atMost: 1, gpcsAtMost: 0)
            }
            let gpcBefore = self.keep(gpcBeforeRounds, .latency)
            let readBefore = self.keep(readBeforeRounds, .latency)
            let gpcAfter = self.keep(gpcAfterRounds, .latency)
            let readAfter = self.keep(readAfterRounds, .latency)
            self.addRatio(
                "9a",
                "GPC_READ p50 with \(total) GPCs active",
                gpcAfter.p50,
                gpcBefore.p50,
                baselineText: "none active",
                limit: 1.1,
                atMost: true,
                latency: true
            )
            self.addRatio(
                "9b",
                "READ p50 with \(total) GPCs active",
                readAfter.p50,
                readBefore.p50,
                baselineText: "none active",
                limit: 1.1,
                atMost: true,
                latency: true
            )
            var section = JSONObject()
            section["gpcs"] = .signed(Int64(total))
            section["connections"] = .signed(Int64(connections))
            section["pages"] = .signed(Int64(pages))
            section["gpcs_per_page"] = .signed(Int64(perPage))
            section["activate_seconds"] = .measurement(activateSeconds)
            section["gpc_active"] = .signed(Int64(gpcActive))
            section["mappings_before"] = .signed(Int64(mapsBefore))
            section["mappings_after"] = .signed(Int64(mapsAfter))
            section["vm_rss_after"] = .signed(Int64(rss?.vmRSS ?? 0))
            self.sections["active_gpcs"] = section.value
        } catch {
            self.log("target 9 failed: \(error)")
            self.rows.append(
                TargetRow(
                    number: "9",
                    measure: "\(total) active GPCs",
                    value: "error",
                    baseline: "-",
                    ratio: "-",
                    target: "<= 1.1x",
                    met: nil,
                    json: ["error": .string("\(error)")]
                )
            )
        }
    }

    /// Polls STATS until the daemon has at most `atMost` connections (the poller's own) and `gpcsAtMost` GPCs.
    func waitForConnections(socket: String, atMost: UInt64, gpcsAtMost: UInt64 = .max) throws {
        let deadline = monotonicNanos() + 30_000_000_000
        while true {
            let control = try PipelinedConnection(path: socket)
            let stats = DaemonCounters(try control.stats())
            control.close()
            if stats["connections"] <= atMost && stats["gpc_active"] <= gpcsAtMost { return }
            guard monotonicNanos() < deadline else {
                throw BenchError(
                    "gmemd still has \(stats["connections"]) connections and \(stats["gpc_active"]) GPCs after 30 s"
                )
            }
            sleepNanos(20_000_000)
        }
    }

    // MARK: Report

    func report(elapsed: Double) {
        if self.options.json {
            var object = JSONObject()
            object["machine"] = self.machine.json
            object["gmemd"] = .string(self.executable)
            object["debug_build"] = .bool(isDebugBuild)
            object["duration_s"] = .measurement(self.options.duration)
            object["elapsed_s"] = .measurement(elapsed)
            object["targets"] = .array(
                self.rows.map { row in
                    var item = JSONObject()
                    item["number"] = .string(row.number)
                    item["measure"] = .string(row.measure)
                    item["value_text"] = .string(row.value)
                    item["baseline_text"] = .string(row.baseline)
                    item["ratio_text"] = .string(row.ratio)
                    item["target"] = .string(row.target)
                    item["met"] = row.met.map { .bool($0) } ?? .null
                    for (key, value) in row.json.members { item[key] = value }
                    return item.value
                }
            )
            for (key, value) in self.sections.members { object[key] = value }
            object["runs"] = .array(self.runs.map(\.json))
            print(object.value.prettyPrinted)
            return
        }
        var runs = TextTable(
            [
                "run", "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "protect/op", "restores/op",
                "zaps/op",
            ],
            rightAligned: Set(1..<10)
        )
        for run in self.runs {
            let ops = Double(run.daemonOps)
            func per(_ name: String) -> String {
                guard let counters = run.counters, ops > 0, run.spec.label.hasPrefix("gmemd") else { return "-" }
                return fixed(Double(counters[name]) / ops, 2)
            }
            runs.add([
                run.spec.label, grouped(run.opsPerSecond), micros(run.p50), micros(run.p90), micros(run.p99),
                micros(run.p999),
                micros(run.maxLatency), per("protect_calls"), per("restores"), per("zaps"),
            ])
        }
        print(
            "\nRuns (\(fixed(self.options.duration, 1)) s each, 8-byte payloads unless stated, hot = page 16, private):"
        )
        print(runs.rendered())
        var table = TextTable(["#", "measure", "value", "baseline", "ratio", "target", "met?"])
        for row in self.rows {
            table.add([row.number, row.measure, row.value, row.baseline, row.ratio, row.target, row.metText])
        }
        print("\nTargets (\(self.machine.summary); suite took \(fixed(elapsed, 0)) s):")
        print(table.rendered())
        let met = self.rows.filter { $0.met == true }.count
        print("\n\(met) of \(self.rows.count) rows met.")
    }
}
