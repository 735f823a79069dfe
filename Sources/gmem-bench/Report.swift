import GmemCommandLine

#if canImport(Glibc)
import Glibc
#endif

// Output helpers: number formatting and text tables (JSON is GmemCommandLine's JSONValue).

/// `1234567.8` as `1,234,568`.
func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "-" }
    let whole = Int64(value.rounded())
    var digits = String(abs(whole))
    var groups: [Substring] = []
    while digits.count > 3 {
        groups.insert(digits.suffix(3), at: 0)
        digits = String(digits.dropLast(3))
    }
    groups.insert(Substring(digits), at: 0)
    return (whole < 0 ? "-" : "") + groups.joined(separator: ",")
}

/// Nanoseconds as microseconds with two decimals.
func micros(_ nanos: Double) -> String { fixed(nanos / 1000, 2) }

/// A left-aligned text table; numeric-looking columns are right-aligned.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    var rightAligned: Set<Int> = []

    init(_ header: [String], rightAligned: Set<Int> = []) {
        self.header = header
        self.rightAligned = rightAligned
    }

    mutating func add(_ row: [String]) { self.rows.append(row) }

    func rendered() -> String {
        var widths = self.header.map(\.count)
        for row in self.rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: max(widths[index] - cell.count, 0))
                return self.rightAligned.contains(index) ? padding + cell : cell + padding
            }.joined(separator: "  ")
        }
        var lines = [line(self.header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        lines += self.rows.map(line)
        // Trailing spaces come from padding the last column.
        return lines.map { String($0.reversed().drop { $0 == " " }.reversed()) }.joined(separator: "\n")
    }
}

/// A description of this machine for reports: date, cores, kernel, CPU model.
struct MachineInfo {
    var date: String
    var cores: Int
    var kernel: String
    var cpu: String
    var maxMapCount: String
    /// /proc/loadavg's 1, 5 and 15 minute averages: other work on the machine disturbs every number.
    var loadAverage: String

    /// The 1-minute load average.
    var load1: Double { Double(self.loadAverage.split(separator: " ").first ?? "") ?? 0 }

    static func current() -> MachineInfo {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        let date = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let cpu =
            readTextFile("/proc/cpuinfo")?
            .split(separator: "\n")
            .first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?
            .trimmingCharacters() ?? "unknown"
        return MachineInfo(
            date: date,
            cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
            kernel: "\(field(names.sysname)) \(field(names.release)) \(field(names.machine))",
            cpu: cpu,
            maxMapCount: readTextFile("/proc/sys/vm/max_map_count")?.trimmingCharacters() ?? "?",
            loadAverage: readTextFile("/proc/loadavg")?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        )
    }

    var summary: String {
        "\(self.date), \(self.cores) cores (\(self.cpu)), \(self.kernel), vm.max_map_count \(self.maxMapCount), load average \(self.loadAverage)"
    }

    var json: JSONValue {
        var object = JSONObject()
        object["date"] = .string(self.date)
        object["cores"] = .signed(Int64(self.cores))
        object["cpu"] = .string(self.cpu)
        object["kernel"] = .string(self.kernel)
        object["max_map_count"] = .string(self.maxMapCount)
        object["load_average"] = .string(self.loadAverage)
        return object.value
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        String(
            self.drop { $0 == " " || $0 == "\t" || $0 == "\n" }.reversed().drop {
                $0 == " " || $0 == "\t" || $0 == "\n"
            }.reversed()
        )
    }
}

/// Refuses (or, with `allow`, warns loudly about) measuring with a debug build.
func warnIfDebug(allow: Bool) {
    guard isDebugBuild else { return }
    let banner = """
        ************************************************************************
        gmem-bench is a DEBUG build: its numbers are meaningless for the targets.
        Build and run the release products:  swift build -c release
            .build/release/gmem-bench ...
        ************************************************************************
        """
    warn(banner)
    if !allow {
        warn("refusing to measure; pass --allow-debug to run anyway")
        exit(2)
    }
}

extension LoadResult {
    /// The result as a JSON object.
    var json: JSONValue {
        var object = JSONObject()
        object["label"] = .string(self.spec.label)
        object["op"] = .string(self.spec.operation.rawValue)
        object["payload"] = .signed(Int64(self.spec.payload))
        object["connections"] = .signed(Int64(self.spec.connections))
        object["depth"] = .signed(Int64(self.spec.depth))
        object["pattern"] = .string(self.spec.pattern.rawValue)
        object["duration_s"] = .measurement(self.seconds)
        object["warmup_s"] = .measurement(self.spec.warmup)
        object["ops"] = .signed(Int64(self.ops))
        object["errors"] = .signed(Int64(self.errors))
        if let firstError { object["first_error"] = .string(firstError) }
        object["ops_per_s"] = .measurement(self.opsPerSecond.rounded())
        object["bytes_per_s"] = .measurement(self.bytesPerSecond.rounded())
        var latency = JSONObject()
        latency["p50"] = .measurement(self.p50)
        latency["p90"] = .measurement(self.p90)
        latency["p99"] = .measurement(self.p99)
        latency["p99_9"] = .measurement(self.p999)
        latency["max"] = .measurement(self.maxLatency)
        latency["mean"] = .measurement(self.histogram.mean.rounded())
        object["latency_ns"] = latency.value
        if let pagePrivate { object["page_private"] = .bool(pagePrivate) }
        object["no_direct_map"] = .bool(self.regionFlags.contains(.noDirectMap))
        if let counters {
            var daemon = JSONObject()
            for name in [
                "reads", "writes", "bytes_read", "bytes_written", "restores", "zaps", "protect_calls",
                "protect_failures", "errors",
            ] {
                daemon[name] = .signed(Int64(bitPattern: counters[name]))
            }
            object["daemon_delta"] = daemon.value
            object["protect_calls_per_op"] = .measurement(self.protectCallsPerOp)
            let ops = Double(self.daemonOps)
            object["restores_per_op"] = .measurement(ops > 0 ? Double(counters["restores"]) / ops : nil)
            object["zaps_per_op"] = .measurement(ops > 0 ? Double(counters["zaps"]) / ops : nil)
        }
        return object.value
    }

    /// The result as a few human lines.
    var humanReport: String {
        let spec = self.spec
        var lines: [String] = []
        let page = self.pagePrivate.map { $0 ? " (private)" : " (SHARED: no protection calls expected)" } ?? ""
        lines.append(
            "\(spec.label): \(spec.operation.rawValue) \(ByteSize.format(Double(spec.payload))), \(spec.connections) conn x depth \(spec.depth), \(spec.pattern.rawValue)\(page), \(fixed(self.seconds, 1)) s after \(fixed(spec.warmup, 1)) s warm-up"
        )
        var table = TextTable(
            ["ops/s", "bytes/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "errors"],
            rightAligned: Set(0..<8)
        )
        table.add([
            grouped(self.opsPerSecond), ByteSize.format(self.bytesPerSecond) + "/s", micros(self.p50), micros(self.p90),
            micros(self.p99), micros(self.p999), micros(self.maxLatency), "\(self.errors)",
        ])
        lines.append(table.rendered().split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        if let firstError { lines.append("  first error: \(firstError)") }
        if let counters {
            let ops = Double(self.daemonOps)
            func perOp(_ name: String) -> String {
                ops > 0 ? "\(counters[name]) (\(fixed(Double(counters[name]) / ops, 3))/op)" : "\(counters[name])"
            }
            lines.append(
                "  daemon STATS delta: protect_calls \(perOp("protect_calls")), restores \(perOp("restores")), zaps \(perOp("zaps")), reads \(counters["reads"]), writes \(counters["writes"])"
            )
        }
        return lines.joined(separator: "\n")
    }
}
