import ArgumentParser
import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One line of the target table.
struct TargetRow {
    var number: String
    var measure: String
    var value: String
    var baseline: String
    var ratio: String
    var target: String
    /// nil: not measured (an error).
    var met: Bool?
    var json = JSONObject()

    var metText: String {
        switch self.met {
        case true?: return "yes"
        case false?: return "NO"
        case nil: return "error"
        }
    }
}

/// `gmem-bench suite`: every measure of the target table, in one process, against the raw baseline and fresh gmemds.
struct SuiteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Run every target of the performance table against the raw baseline and freshly spawned gmemds.",
        discussion: """
            Spawns gmemd (no-direct-map, memfd) several times: the core measures (1-6) share one daemon, start-up \
            (7), idle connections (8) and active GPCs (9) each get a fresh one. Baseline and gmemd runs alternate so \
            that drift hits both. See Benchmarks/README.md.
            """
    )

    @Option(help: "Seconds measured per run.")
    var duration: Double = 1.5

    @Option(help: "Rounds: every run is repeated this often, interleaved, and the median round is reported.")
    var rounds = 5

    @Option(help: "Seconds of warm-up before each run.")
    var warmup: Double = 0.5

    @Option(help: "The gmemd executable (default: next to gmem-bench).")
    var gmemd: String?

    @Option(help: "Idle connections for target 8.")
    var idleConnections = 1000

    @Option(help: "Active GPCs for target 9.")
    var gpcs = 100_000

    @Option(help: "Connections holding the GPCs of target 9.")
    var gpcConnections = 100

    @Option(help: "GPCs sharing each page in target 9 (keeps the VMA count under vm.max_map_count).")
    var gpcsPerPage = 5

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Measure even from a debug build (numbers are then meaningless).")
    var allowDebug = false

    func validate() throws {
        guard self.duration > 0, self.warmup >= 0 else { throw ValidationError("--duration must be positive, --warmup not negative") }
        guard self.rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard self.gpcConnections >= 1, self.gpcs % self.gpcConnections == 0 else {
            throw ValidationError("--gpcs must be a multiple of --gpc-connections")
        }
        guard self.gpcsPerPage >= 1, self.gpcsPerPage * 64 <= 4096 else { throw ValidationError("--gpcs-per-page must lie in 1...64") }
    }

    func run() throws {
        warnIfDebug(allow: self.allowDebug)
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        let executable = try DaemonProcess.locate(self.gmemd)
        if DaemonProcess.looksLikeDebugBuild(executable) {
            warn("WARNING: \(executable) looks like a DEBUG build of gmemd; its numbers are meaningless")
        }
        var suite = SuiteRun(options: self, executable: executable)
        try suite.execute()
    }
}

/// The state of one suite run.
struct SuiteRun {
    let options: SuiteCommand
    let executable: String
    let machine = MachineInfo.current()
    let progress: Bool
    var runs: [LoadResult] = []
    var rows: [TargetRow] = []
    var sections = JSONObject()
    var pairWithSibling = 0.0

    init(options: SuiteCommand, executable: String) {
        self.options = options
        self.executable = executable
        self.progress = !options.json && isatty(STDOUT_FILENO) != 0
    }

    /// The default gmemd arguments of the suite: memfd, no direct map, 1 GiB.
    static let baseArguments = ["--size", "1G", "--backing", "memfd"]

    func log(_ message: String) {
        if !self.options.json { emit(message) } else { warn(message) }
    }

    func spec(_ label: String, _ socket: String, _ operation: Operation, payload: Int = 8, connections: Int = 1, depth: Int = 1, hotPage: UInt64 = 16) -> LoadSpec {
        LoadSpec(
            label: label, socketPath: socket, operation: operation, payload: payload, connections: connections, depth: depth,
            pattern: .hot, warmup: self.options.warmup, duration: self.options.duration, hotPage: hotPage, progress: self.progress,
            readsStats: !label.hasPrefix("raw")
        )
    }

    /// How the representative of several rounds is chosen.
    enum Pick { case latency, throughput }

    /// The median round: by p50 for latency measures, by ops/s for throughput measures.
    static func median(_ results: [LoadResult], _ pick: Pick) -> LoadResult {
        // Best first; with an even count the better of the two middle rounds.
        let sorted = results.sorted { pick == .latency ? $0.p50 < $1.p50 : $0.opsPerSecond > $1.opsPerSecond }
        return sorted[(sorted.count - 1) / 2]
    }

    /// Keeps the representative of `results` for the report, its label marked with the round count.
    mutating func keep(_ results: [LoadResult], _ pick: Pick) -> LoadResult {
        var chosen = Self.median(results, pick)
        if results.count > 1 { chosen.spec.label += " [median of \(results.count)]" }
        self.runs.append(chosen)
        return chosen
    }

    /// Runs every spec `rounds` times, interleaved, and keeps the median round of each.
    mutating func measureRounds(_ specs: [(LoadSpec, Pick)]) throws -> [LoadResult] {
        var all = [[LoadResult]](repeating: [], count: specs.count)
        for round in 0..<self.options.rounds {
            if self.options.rounds > 1 { self.log("  round \(round + 1) of \(self.options.rounds)") }
            for (index, (spec, _)) in specs.enumerated() { all[index].append(try self.measure(spec)) }
        }
        return specs.indices.map { self.keep(all[$0], specs[$0].1) }
    }

    mutating func measure(_ spec: LoadSpec) throws -> LoadResult {
        let result = try LoadDriver.run(spec)
        if result.errors > 0 { throw BenchError("\(spec.label): \(result.errors) requests failed (first: \(result.firstError ?? "?"))") }
        if !self.options.json {
            let protect = result.protectCallsPerOp.map { ", \(fixed($0, 2)) protect calls/op" } ?? ""
            emit("  \(spec.label): \(grouped(result.opsPerSecond)) ops/s, p50 \(micros(result.p50)) us, p99 \(micros(result.p99)) us\(protect)")
        }
        return result
    }

    mutating func spawn(_ arguments: [String]) throws -> (DaemonProcess, UInt64) {
        let daemon = try DaemonProcess(executable: self.executable, arguments: arguments)
        let startup = try daemon.waitUntilAnswering()
        return (daemon, startup)
    }

    mutating func execute() throws {
        let start = monotonicNanos()
        self.log("gmem-bench suite: \(self.machine.summary)")
        self.log("gmemd: \(self.executable); \(fixed(self.options.duration, 1)) s per run after \(fixed(self.options.warmup, 1)) s warm-up, \(self.options.rounds) interleaved rounds (median kept)")

        if self.machine.load1 > 0.5 {
            self.log("WARNING: the machine is busy (load average \(self.machine.loadAverage)); other work on these \(self.machine.cores) cores disturbs every number")
        }

        // The cost of one restore+zap pair on this machine (target 3's unit), and the same with a second thread of
        // the process active on the other core, as gmemd's other event loop is (TLB shootdown IPIs).
        let pair = try ProtectPairMeasurement.measure()
        let siblingPair = try ProtectPairMeasurement.measure(sibling: true)
        self.log("restore+zap pair: \(fixed(pair.nanosPerPair, 0)) ns (\(fixed(siblingPair.nanosPerPair, 0)) ns with a sibling thread on the other core)")
        var pairJSON = JSONObject()
        pairJSON["ns_per_pair"] = .number(pair.nanosPerPair)
        pairJSON["min_ns_per_pair"] = .number(pair.minimumNanosPerPair)
        pairJSON["ns_per_pair_with_sibling_thread"] = .number(siblingPair.nanosPerPair)
        self.sections["protect_pair"] = .object(pairJSON)
        self.pairWithSibling = siblingPair.nanosPerPair

        self.runCoreTargets(pairNanos: pair.nanosPerPair)
        self.runStartupTarget()
        self.runIdleTarget()
        self.runGPCTarget()

        let elapsed = Double(monotonicNanos() - start) / 1e9
        self.report(elapsed: elapsed)
    }

    // MARK: Targets 1-6

    mutating func runCoreTargets(pairNanos: Double) {
        self.log("\n[1-6] raw baseline (in-process) and gmemd \(Self.baseArguments.joined(separator: " ")), interleaved")
        do {
            let directory = try makeTemporaryDirectory(prefix: "gmem-bench-raw")
            defer { rmdir(directory) }
            let raw = try RawServer(socketPath: directory + "/raw.sock", size: 64 << 20)
            try raw.start()
            defer { raw.stop() }
            let rawEpoll = try RawServer(socketPath: directory + "/raw-epoll.sock", size: 64 << 20, mode: .epoll)
            try rawEpoll.start()
            defer { rawEpoll.stop() }
            let e = rawEpoll.socketPath
            let (daemon, _) = try self.spawn(Self.baseArguments)
            defer { daemon.stop() }
            let r = raw.socketPath
            let g = daemon.socketPath

            let results = try self.measureRounds([
                (self.spec("raw PING 1x1", r, .ping), .latency),
                (self.spec("raw-epoll PING 1x1 (diagnostic)", e, .ping), .latency),
                (self.spec("gmemd PING 1x1", g, .ping), .latency),
                (self.spec("raw PING 2x16", r, .ping, connections: 2, depth: 16), .throughput),
                (self.spec("gmemd PING 2x16", g, .ping, connections: 2, depth: 16), .throughput),
                (self.spec("gmemd READ 1x1 hot", g, .read), .latency),
                (self.spec("gmemd READ 2x16 hot", g, .read, connections: 2, depth: 16), .throughput),
                (self.spec("raw READ 64K 1x1", r, .read, payload: 64 << 10), .latency),
                (self.spec("gmemd READ 64K 1x1 hot", g, .read, payload: 64 << 10), .latency),
                (self.spec("gmemd GPC_READ 1x1 hot", g, .gpcRead), .latency),
                (self.spec("raw READ 1x1", r, .read), .latency),
            ])
            let rawPing = results[0]
            let ping = results[2]
            let rawPingThroughput = results[3]
            let pingThroughput = results[4]
            let read = results[5]
            let readThroughput = results[6]
            let rawRead64K = results[7]
            let read64K = results[8]
            let gpcRead = results[9]
            if daemon.status() == nil { throw BenchError("gmemd died: \(daemon.logTail())") }
            if read.pagePrivate == false { self.log("WARNING: the hot page is not private; targets 3-6 are about private pages") }

            self.addRatio("1", "PING p50, 1 conn, depth 1", ping.p50, rawPing.p50, baselineText: "raw", limit: 1.15, atMost: true, latency: true)
            self.addRatio("2", "PING throughput, 2 conns x depth 16", pingThroughput.opsPerSecond, rawPingThroughput.opsPerSecond, baselineText: "raw", limit: 0.8, atMost: false, latency: false)
            // 3: the overhead of READ over PING in units of one restore+zap pair.
            let overhead = (read.p50 - ping.p50) / pairNanos
            var row3 = TargetRow(
                number: "3", measure: "READ p50, 1 conn, depth 1",
                value: "\(micros(read.p50)) us",
                baseline: "PING \(micros(ping.p50)) + pair \(micros(pairNanos)) us",
                ratio: "\(fixed(overhead, 2)) pairs", target: "<= PING + 1.2 pairs",
                met: read.p50 <= ping.p50 + 1.2 * pairNanos
            )
            row3.json["value_ns"] = .number(read.p50)
            row3.json["ping_p50_ns"] = .number(ping.p50)
            row3.json["pair_ns"] = .number(pairNanos)
            row3.json["overhead_pairs"] = .number(overhead)
            row3.json["pair_with_sibling_thread_ns"] = .number(self.pairWithSibling)
            self.rows.append(row3)
            self.addRatio("4", "READ throughput, 2x16, one hot page", readThroughput.opsPerSecond, pingThroughput.opsPerSecond, baselineText: "gmemd PING 2x16", limit: 0.7, atMost: false, latency: false)
            let calls64K = read64K.protectCallsPerOp ?? .nan
            self.addAbsolute("5a", "READ 64 KiB: protection calls per request", calls64K, text: fixed(calls64K, 2), target: "<= 2", met: calls64K <= 2)
            self.addRatio("5b", "READ 64 KiB p50, 1 conn, depth 1", read64K.p50, rawRead64K.p50, baselineText: "raw 64K", limit: 1.3, atMost: true, latency: true)
            self.addRatio("6a", "GPC_READ p50, 1 conn, depth 1", gpcRead.p50, ping.p50, baselineText: "gmemd PING", limit: 1.05, atMost: true, latency: true)
            let gpcCalls = gpcRead.counters?["protect_calls"] ?? UInt64.max
            self.addAbsolute("6b", "GPC_READ: protection calls in the window", Double(gpcCalls), text: "\(gpcCalls)", target: "= 0", met: gpcCalls == 0)
        } catch {
            self.log("targets 1-6 failed: \(error)")
            for (number, measure) in [("1", "PING p50"), ("2", "PING throughput"), ("3", "READ p50"), ("4", "READ throughput"), ("5", "READ 64 KiB"), ("6", "GPC_READ p50")] {
                self.rows.append(TargetRow(number: number, measure: measure, value: "error", baseline: "-", ratio: "-", target: "-", met: nil, json: ["error": .string("\(error)")]))
            }
        }
    }

    mutating func addRatio(_ number: String, _ measure: String, _ value: Double, _ baseline: Double, baselineText: String, limit: Double, atMost: Bool, latency: Bool) {
        let ratio = value / baseline
        let show: (Double) -> String = latency ? { "\(micros($0)) us" } : { "\(grouped($0)) ops/s" }
        var row = TargetRow(
            number: number, measure: measure, value: show(value), baseline: "\(show(baseline)) (\(baselineText))",
            ratio: fixed(ratio, 3), target: (atMost ? "<= " : ">= ") + fixed(limit, 2) + "x",
            met: atMost ? ratio <= limit : ratio >= limit
        )
        row.json["value"] = .number(value)
        row.json["baseline"] = .number(baseline)
        row.json["unit"] = .string(latency ? "ns" : "ops/s")
        row.json["ratio"] = .number(ratio)
        row.json["limit"] = .number(limit)
        self.rows.append(row)
    }

    mutating func addAbsolute(_ number: String, _ measure: String, _ value: Double, text: String, target: String, met: Bool, baseline: String = "-", ratio: String = "-") {
        var row = TargetRow(number: number, measure: measure, value: text, baseline: baseline, ratio: ratio, target: target, met: met)
        row.json["value"] = .number(value)
        self.rows.append(row)
    }

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
            self.log("  answered after \(fixed(seconds * 1000, 1)) ms; VmRSS \(ByteSize.format(Double(idle.vmRSS))) (RssShmem \(ByteSize.format(Double(idle.rssShmem))))")
            self.addAbsolute("7a", "start-up, 1 TiB region: spawn to HELLO reply", seconds, text: "\(fixed(seconds * 1000, 1)) ms", target: "< 1 s", met: seconds < 1, ratio: fixed(seconds, 3) + " of 1 s")
            self.addAbsolute("7b", "idle RSS, 1 TiB region", Double(idle.vmRSS), text: ByteSize.format(Double(idle.vmRSS)), target: "< 64 MiB", met: idle.vmRSS < 64 << 20, ratio: fixed(Double(idle.vmRSS) / Double(64 << 20), 3) + " of 64 MiB")
            var section = JSONObject()
            section["startup_ns"] = .integer(Int64(startup))
            section["vm_rss_at_answer"] = .integer(Int64(atAnswer?.vmRSS ?? 0))
            section["vm_rss_idle"] = .integer(Int64(idle.vmRSS))
            section["rss_anon_idle"] = .integer(Int64(idle.rssAnon))
            section["rss_shmem_idle"] = .integer(Int64(idle.rssShmem))
            self.sections["startup_1t"] = .object(section)
        } catch {
            self.log("target 7 failed: \(error)")
            self.rows.append(TargetRow(number: "7", measure: "start-up, 1 TiB region", value: "error", baseline: "-", ratio: "-", target: "< 1 s, < 64 MiB", met: nil, json: ["error": .string("\(error)")]))
        }
    }

    // MARK: Target 8

    mutating func runIdleTarget() {
        let count = self.options.idleConnections
        self.log("\n[8] \(count) idle connections, gmemd \(Self.baseArguments.joined(separator: " ")) --max-connections \(count + 64)")
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
                var idle: [BlockingConnection] = []
                idle.reserveCapacity(count)
                let openStart = monotonicNanos()
                for _ in 0..<count { idle.append(try BlockingConnection(path: socket, receiveCapacity: 4096)) }
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
                    self.log("  opened \(count) in \(fixed(opened * 1000, 0)) ms; VmRSS \(ByteSize.format(Double(rssBefore.vmRSS))) -> \(ByteSize.format(Double(rssAfter.vmRSS))) (RssShmem \(ByteSize.format(Double(rssAfter.rssShmem) - Double(rssBefore.rssShmem))) of it), threads \(rssBefore.threads) -> \(rssAfter.threads)")
                }
                try self.waitForConnections(socket: socket, atMost: 1)
            }
            let alone = self.keep(aloneRounds, .latency)
            let crowded = self.keep(crowdedRounds, .latency)
            let extra = Double(after.vmRSS) - Double(before.vmRSS)
            let extraShmem = Double(after.rssShmem) - Double(before.rssShmem)
            self.addAbsolute("8a", "\(count) idle connections: extra daemon RSS", extra, text: "\(ByteSize.format(extra)) (shmem \(ByteSize.format(extraShmem)))", target: "< 64 MiB", met: extra < Double(64 << 20), ratio: fixed(extra / Double(64 << 20), 3) + " of 64 MiB")
            self.addRatio("8b", "PING p50 of an active client, \(count) idle", crowded.p50, alone.p50, baselineText: "none idle", limit: 1.2, atMost: true, latency: true)
            var section = JSONObject()
            section["connections"] = .integer(Int64(count))
            section["open_seconds"] = .number(openSeconds)
            section["vm_rss_before"] = .integer(Int64(before.vmRSS))
            section["vm_rss_after"] = .integer(Int64(after.vmRSS))
            section["rss_shmem_before"] = .integer(Int64(before.rssShmem))
            section["rss_shmem_after"] = .integer(Int64(after.rssShmem))
            section["rss_anon_before"] = .integer(Int64(before.rssAnon))
            section["rss_anon_after"] = .integer(Int64(after.rssAnon))
            self.sections["idle_connections"] = .object(section)
        } catch {
            self.log("target 8 failed: \(error)")
            self.rows.append(TargetRow(number: "8", measure: "\(count) idle connections", value: "error", baseline: "-", ratio: "-", target: "< 64 MiB, <= 1.2x", met: nil, json: ["error": .string("\(error)")]))
        }
    }

    // MARK: Target 9

    mutating func runGPCTarget() {
        let total = self.options.gpcs
        let connections = self.options.gpcConnections
        let perConnection = total / connections
        let perPage = self.options.gpcsPerPage
        let maxGPCs = max(2000, perConnection * 2)
        self.log("\n[9] \(total) active GPCs over \(connections) connections (\(perPage) per page, pages 2 apart), gmemd \(Self.baseArguments.joined(separator: " ")) --max-gpcs \(maxGPCs)")
        do {
            let (daemon, _) = try self.spawn(Self.baseArguments + ["--max-gpcs", "\(maxGPCs)", "--max-connections", "\(connections + 64)"])
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
                gpcBeforeRounds.append(try self.measure(self.spec("gmemd GPC_READ 1x1, no GPCs active", socket, .gpcRead, hotPage: 16)))
                readBeforeRounds.append(try self.measure(self.spec("gmemd READ 1x1, no GPCs active", socket, .read, hotPage: 32)))
                let maps = mappingCount(pid: daemon.pid) ?? 0

                let control = try BlockingConnection(path: socket)
                let pageSize = UInt64(control.hello.pageSize)
                let base: UInt64 = 64 << 20
                guard base + UInt64(pages) * 2 * pageSize <= control.hello.regionSize else {
                    throw BenchError("the region is too small for \(pages) pages 2 apart above 64 MiB")
                }
                var holders: [BlockingConnection] = []
                let activateStart = monotonicNanos()
                for connection in 0..<connections {
                    let holder = try BlockingConnection(path: socket, receiveCapacity: 64 << 10)
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
                guard stats["gpc_active"] >= UInt64(total) else { throw BenchError("gpc_active is \(stats["gpc_active"]), expected \(total)") }
                if round == 0 {
                    mapsBefore = maps
                    mapsAfter = mappingCount(pid: daemon.pid) ?? 0
                    activateSeconds = activated
                    gpcActive = stats["gpc_active"]
                    rss = daemon.status()
                    self.log("  activated \(total) GPCs on \(pages) pages in \(fixed(activated, 2)) s; gpc_active \(gpcActive); mappings \(mapsBefore) -> \(mapsAfter); VmRSS \(ByteSize.format(Double(rss?.vmRSS ?? 0)))")
                }
                gpcAfterRounds.append(try self.measure(self.spec("gmemd GPC_READ 1x1, \(total) GPCs active", socket, .gpcRead, hotPage: 16)))
                readAfterRounds.append(try self.measure(self.spec("gmemd READ 1x1, \(total) GPCs active", socket, .read, hotPage: 32)))
                for holder in holders { holder.close() }
                // Closing deactivates: wait until the daemon has dropped them all before the next round.
                try self.waitForConnections(socket: socket, atMost: 1, gpcsAtMost: 0)
            }
            let gpcBefore = self.keep(gpcBeforeRounds, .latency)
            let readBefore = self.keep(readBeforeRounds, .latency)
            let gpcAfter = self.keep(gpcAfterRounds, .latency)
            let readAfter = self.keep(readAfterRounds, .latency)
            self.addRatio("9a", "GPC_READ p50 with \(total) GPCs active", gpcAfter.p50, gpcBefore.p50, baselineText: "none active", limit: 1.1, atMost: true, latency: true)
            self.addRatio("9b", "READ p50 with \(total) GPCs active", readAfter.p50, readBefore.p50, baselineText: "none active", limit: 1.1, atMost: true, latency: true)
            var section = JSONObject()
            section["gpcs"] = .integer(Int64(total))
            section["connections"] = .integer(Int64(connections))
            section["pages"] = .integer(Int64(pages))
            section["gpcs_per_page"] = .integer(Int64(perPage))
            section["activate_seconds"] = .number(activateSeconds)
            section["gpc_active"] = .integer(Int64(gpcActive))
            section["mappings_before"] = .integer(Int64(mapsBefore))
            section["mappings_after"] = .integer(Int64(mapsAfter))
            section["vm_rss_after"] = .integer(Int64(rss?.vmRSS ?? 0))
            self.sections["active_gpcs"] = .object(section)
        } catch {
            self.log("target 9 failed: \(error)")
            self.rows.append(TargetRow(number: "9", measure: "\(total) active GPCs", value: "error", baseline: "-", ratio: "-", target: "<= 1.1x", met: nil, json: ["error": .string("\(error)")]))
        }
    }

    /// Polls STATS until the daemon has at most `atMost` connections (the poller's own) and `gpcsAtMost` GPCs.
    func waitForConnections(socket: String, atMost: UInt64, gpcsAtMost: UInt64 = .max) throws {
        let deadline = monotonicNanos() + 30_000_000_000
        while true {
            let control = try BlockingConnection(path: socket)
            let stats = DaemonCounters(try control.stats())
            control.close()
            if stats["connections"] <= atMost && stats["gpc_active"] <= gpcsAtMost { return }
            guard monotonicNanos() < deadline else {
                throw BenchError("gmemd still has \(stats["connections"]) connections and \(stats["gpc_active"]) GPCs after 30 s")
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
            object["duration_s"] = .number(self.options.duration)
            object["elapsed_s"] = .number(elapsed)
            object["targets"] = .array(self.rows.map { row in
                var item = JSONObject()
                item["number"] = .string(row.number)
                item["measure"] = .string(row.measure)
                item["value_text"] = .string(row.value)
                item["baseline_text"] = .string(row.baseline)
                item["ratio_text"] = .string(row.ratio)
                item["target"] = .string(row.target)
                item["met"] = row.met.map { .bool($0) } ?? .null
                for key in row.json.keys { item[key] = row.json[key] }
                return .object(item)
            })
            for key in self.sections.keys { object[key] = self.sections[key] }
            object["runs"] = .array(self.runs.map(\.json))
            print(JSONValue.object(object).rendered())
            return
        }
        var runs = TextTable(["run", "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "protect/op", "restores/op", "zaps/op"], rightAligned: Set(1..<10))
        for run in self.runs {
            let ops = Double(run.daemonOps)
            func per(_ name: String) -> String {
                guard let counters = run.counters, ops > 0, run.spec.label.hasPrefix("gmemd") else { return "-" }
                return fixed(Double(counters[name]) / ops, 2)
            }
            runs.add([
                run.spec.label, grouped(run.opsPerSecond), micros(run.p50), micros(run.p90), micros(run.p99), micros(run.p999),
                micros(run.maxLatency), per("protect_calls"), per("restores"), per("zaps"),
            ])
        }
        print("\nRuns (\(fixed(self.options.duration, 1)) s each, 8-byte payloads unless stated, hot = page 16, private):")
        print(runs.rendered())
        var table = TextTable(["#", "measure", "value", "baseline", "ratio", "target", "met?"])
        for row in self.rows { table.add([row.number, row.measure, row.value, row.baseline, row.ratio, row.target, row.metText]) }
        print("\nTargets (\(self.machine.summary); suite took \(fixed(elapsed, 0)) s):")
        print(table.rendered())
        let met = self.rows.filter { $0.met == true }.count
        print("\n\(met) of \(self.rows.count) rows met.")
    }
}
