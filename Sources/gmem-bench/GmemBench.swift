import ArgumentParser
import GmemCommandLine
import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Benchmarks of gmemd. Each subcommand measures one thing and prints a short,
/// human-readable report (or JSON with --json where offered).
@main
struct GmemBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmem-bench",
        abstract:
            "Benchmarks for gmemd: the core's start-up, the served protocol against a raw baseline, the target suite.",
        discussion: "Measure with release builds (swift build -c release). See Benchmarks/README.md.",
        subcommands: [
            Startup.self, RunCommand.self, RawServerCommand.self, ProtectPairCommand.self, SuiteCommand.self,
            FetchAddCommand.self, RingCommand.self,
        ]
    )
}

/// A byte count argument, parsed by GmemCommandLine's ``ByteCount`` like every other size gmemd's tools take
/// (4096, 64K, 2M, 0x1000, 1T), and shown in binary units (64.0 MiB).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    var bytes: UInt64

    init(bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        guard let count = ByteCount(parsing: argument) else { return nil }
        self.bytes = count.value
    }

    var description: String { Self.format(Double(self.bytes)) }

    static func format(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = value
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : "\(fixed(value, 1)) \(units[unit])"
    }
}

/// `value` with `digits` decimals, without Foundation.
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = Int(rounded / scale)
    var fraction = String(Int(rounded.truncatingRemainder(dividingBy: scale)))
    while fraction.count < digits { fraction = "0" + fraction }
    return (value < 0 ? "-" : "") + (digits == 0 ? "\(whole)" : "\(whole).\(fraction)")
}

/// Reads of this process's memory use.
enum ProcessMemory {
    /// VmRSS from /proc/self/status, in bytes.
    static func residentBytes() -> UInt64 {
        guard let file = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("VmRSS:") {
                let digits = text.drop { !$0.isNumber }.prefix { $0.isNumber }
                return (UInt64(digits) ?? 0) * 1024
            }
        }
        return 0
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
