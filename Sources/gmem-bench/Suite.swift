import ArgumentParser
import GmemCommandLine
import GmemProtocol
import GmemTesting

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

    @Option(
        help:
            "Run only these groups of targets, comma-separated: core (1-6), rings (R1-R7), startup (7), idle (8), gpcs (9)."
    )
    var only: String?

    @Flag(help: "Print JSON.")
    var json = false

    /// Whether the group named `group` runs.
    func runs(_ group: String) -> Bool {
        guard let only = self.only else { return true }
        return only.split(separator: ",").contains { $0 == group }
    }

    @Flag(help: "Measure even from a debug build (numbers are then meaningless).")
    var allowDebug = false

    func validate() throws {
        guard self.duration > 0, self.warmup >= 0 else {
            throw ValidationError("--duration must be positive, --warmup not negative")
        }
        guard self.rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        if let only = self.only {
            let groups = ["core", "rings", "startup", "idle", "gpcs"]
            for group in only.split(separator: ",") where !groups.contains(String(group)) {
                throw ValidationError(
                    "--only: unknown group '\(group)'; the groups are \(groups.joined(separator: ", "))"
                )
            }
        }
        guard self.gpcConnections >= 1, self.gpcs % self.gpcConnections == 0 else {
            throw ValidationError("--gpcs must be a multiple of --gpc-connections")
        }
        guard self.gpcsPerPage >= 1, self.gpcsPerPage * 64 <= 4096 else {
            throw ValidationError("--gpcs-per-page must lie in 1...64")
        }
    }

    func run() throws {
        warnIfDebug(allow: self.allowDebug)
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        let executable = try locateGmemd(self.gmemd)
        if looksLikeDebugBuild(executable) {
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

    func spec(
        _ label: String,
        _ socket: String,
        _ operation: Operation,
        payload: Int = 8,
        connections: Int = 1,
        depth: Int = 1,
        hotPage: UInt64 = 16
    ) -> LoadSpec {
        LoadSpec(
            label: label,
            socketPath: socket,
            operation: operation,
            payload: payload,
            connections: connections,
            depth: depth,
            pattern: .hot,
            warmup: self.options.warmup,
            duration: self.options.duration,
            hotPage: hotPage,
            progress: self.progress,
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
        try self.checked(LoadDriver.run(spec))
    }

    /// Fails a run that had failed requests, and prints its line.
    func checked(_ result: LoadResult) throws -> LoadResult {
        let label = result.spec.label
        if result.errors > 0 {
            throw BenchError("\(label): \(result.errors) requests failed (first: \(result.firstError ?? "?"))")
        }
        if !self.options.json {
            let protect = result.protectCallsPerOp.map { ", \(fixed($0, 2)) protect calls/op" } ?? ""
            emit(
                "  \(label): \(grouped(result.opsPerSecond)) ops/s, p50 \(micros(result.p50)) us, p99 \(micros(result.p99)) us\(protect)"
            )
        }
        return result
    }

    /// Rows that could not be measured, with the error.
    mutating func addFailed(_ rows: [(number: String, measure: String)], _ error: any Error) {
        for (number, measure) in rows {
            self.rows.append(
                TargetRow(
                    number: number,
                    measure: measure,
                    value: "error",
                    baseline: "-",
                    ratio: "-",
                    target: "-",
                    met: nil,
                    json: ["error": .string("\(error)")]
                )
            )
        }
    }

    /// A fresh gmemd of the suite (see ``spawnGmemd(_:_:)``) and its spawn-to-HELLO time in nanoseconds.
    func spawn(_ arguments: [String]) throws -> (DaemonProcess, UInt64) {
        try spawnGmemd(self.executable, arguments)
    }

    mutating func execute() throws {
        let start = monotonicNanos()
        self.log("gmem-bench suite: \(self.machine.summary)")
        self.log(
            "gmemd: \(self.executable); \(fixed(self.options.duration, 1)) s per run after \(fixed(self.options.warmup, 1)) s warm-up, \(self.options.rounds) interleaved rounds (median kept)"
        )

        if self.machine.load1 > 0.5 {
            self.log(
                "WARNING: the machine is busy (load average \(self.machine.loadAverage)); other work on these \(self.machine.cores) cores disturbs every number"
            )
        }

        // The cost of one restore+zap pair on this machine (target 3's unit), and the same with a second thread of
        // the process active on the other core, as gmemd's other event loop is (TLB shootdown IPIs).
        let pair = try ProtectPairMeasurement.measure()
        let siblingPair = try ProtectPairMeasurement.measure(sibling: true)
        self.log(
            "restore+zap pair: \(fixed(pair.nanosPerPair, 0)) ns (\(fixed(siblingPair.nanosPerPair, 0)) ns with a sibling thread on the other core)"
        )
        var pairJSON = JSONObject()
        pairJSON["ns_per_pair"] = .measurement(pair.nanosPerPair)
        pairJSON["min_ns_per_pair"] = .measurement(pair.minimumNanosPerPair)
        pairJSON["ns_per_pair_with_sibling_thread"] = .measurement(siblingPair.nanosPerPair)
        self.sections["protect_pair"] = pairJSON.value
        self.pairWithSibling = siblingPair.nanosPerPair

        if self.options.runs("core") { self.runCoreTargets(pairNanos: pair.nanosPerPair) }
        if self.options.runs("rings") { self.runRingTargets() }
        if self.options.runs("startup") { self.runStartupTarget() }
        if self.options.runs("idle") { self.runIdleTarget() }
        if self.options.runs("gpcs") { self.runGPCTarget() }

        let elapsed = Double(monotonicNanos() - start) / 1e9
        self.report(elapsed: elapsed)
    }

    mutating func addRatio(
        _ number: String,
        _ measure: String,
        _ value: Double,
        _ baseline: Double,
        baselineText: String,
        limit: Double,
        atMost: Bool,
        latency: Bool
    ) {
        let ratio = value / baseline
        let show: (Double) -> String = latency ? { "\(micros($0)) us" } : { "\(grouped($0)) ops/s" }
        var row = TargetRow(
            number: number,
            measure: measure,
            value: show(value),
            baseline: "\(show(baseline)) (\(baselineText))",
            ratio: fixed(ratio, 3),
            target: (atMost ? "<= " : ">= ") + fixed(limit, 2) + "x",
            met: atMost ? ratio <= limit : ratio >= limit
        )
        row.json["value"] = .measurement(value)
        row.json["baseline"] = .measurement(baseline)
        row.json["unit"] = .string(latency ? "ns" : "ops/s")
        row.json["ratio"] = .measurement(ratio)
        row.json["limit"] = .measurement(limit)
        self.rows.append(row)
    }

    mutating func addAbsolute(
        _ number: String,
        _ measure: String,
        _ value: Double,
        text: String,
        target: String,
        met: Bool,
        baseline: String = "-",
        ratio: String = "-"
    ) {
        var row = TargetRow(
            number: number,
            measure: measure,
            value: text,
            baseline: baseline,
            ratio: ratio,
            target: target,
            met: met
        )
        row.json["value"] = .measurement(value)
        self.rows.append(row)
    }
}
