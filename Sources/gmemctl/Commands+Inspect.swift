//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Inspection commands: info, ping, stats.
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient
import GmemCommandLine
import GmemProtocol

/// `gmemctl info`: the HELLO reply.
struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what gmemd answers to HELLO: sizes, limits, region id and flags.",
        discussion: """
            region_flags: NO_DIRECT_MAP (the memory left the kernel's direct map), SECRETMEM \
            (memfd_secret backing), READ_ONLY (this connection may only read), RECOVERED (gmemd \
            re-attached the region after a restart).
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await self.global.withClient(events: true) { client in
            self.global.emit(Operations.info(client))
        }
    }
}

/// `gmemctl ping`: round-trip times of PING.
struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure round trips to gmemd with PING.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .shortAndLong, help: "Pings to send, one after the other.", transform: Number.parseLength)
    var count: Int = 4

    @Option(help: "Payload bytes per ping (at most max_payload).", transform: Number.parseLength)
    var size: Int = 0

    func validate() throws {
        guard self.count > 0 else { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        try await self.global.withClient { client in
            try Operations.checkPingSize(self.size, client: client)
            let payload = (0..<self.size).map { UInt8(truncatingIfNeeded: $0) }
            if !self.global.json { print("PING \(client.socketPath): \(self.size) bytes") }
            var times: [Double] = []
            let clock = ContinuousClock()
            for sequence in 1...self.count {
                let elapsed = try await clock.measure { try await client.ping(payload) }
                let milliseconds = elapsed.milliseconds
                times.append(milliseconds)
                if !self.global.json {
                    print("seq=\(sequence) time=\(formatFixed(milliseconds, digits: 3)) ms")
                    flushStandardOutput()
                }
            }
            let minimum = times.min() ?? 0
            let maximum = times.max() ?? 0
            let average = times.reduce(0, +) / Double(times.count)
            let summary = [minimum, average, maximum].map { formatFixed($0, digits: 3) }.joined(separator: "/")
            self.global.emit(
                Report(
                    text: "--- \(times.count) pings: min/avg/max = \(summary) ms",
                    json: .object([
                        ("socket", .string(client.socketPath)),
                        ("bytes", .number(self.size)),
                        ("count", .number(times.count)),
                        ("rtt_ms", .array(times.map { .double($0) })),
                        ("min_ms", .double(minimum)),
                        ("avg_ms", .double(average)),
                        ("max_ms", .double(maximum)),
                    ])
                )
            )
        }
    }
}

/// `gmemctl stats`: the daemon's counters, once or repeatedly.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show gmemd's counters.",
        discussion: """
            With --watch, a sample every --interval seconds, each followed by the change since the \
            previous one; with --json, one JSON object per sample and line.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Sample repeatedly until interrupted (or --count samples).")
    var watch = false

    @Option(help: "Seconds between samples with --watch.")
    var interval: Double = 1

    @Option(help: "Stop after this many samples with --watch.", transform: Number.parseLength)
    var count: Int?

    func validate() throws {
        guard self.interval > 0, self.interval <= 86400 else {
            throw ValidationError("--interval must lie between 0 and 86400 seconds")
        }
        if let count = self.count, count < 1 { throw ValidationError("--count must be at least 1") }
        if !self.watch, self.count != nil { throw ValidationError("--count needs --watch") }
    }

    func run() async throws {
        try await self.global.withClient { client in
            var previous: StatsReply?
            var sample = 0
            let start = ContinuousClock.now
            while true {
                let stats = try await client.stats()
                sample += 1
                if self.watch && !self.global.json {
                    let elapsed = (ContinuousClock.now - start).milliseconds / 1000
                    print("\(sample > 1 ? "\n" : "")--- sample \(sample) at +\(formatFixed(elapsed, digits: 1)) s")
                }
                self.global.emit(Operations.stats(stats, previous: previous))
                flushStandardOutput()
                guard self.watch, sample < (self.count ?? Int.max) else { return }
                previous = stats
                try await Task.sleep(for: .milliseconds(Int64(self.interval * 1000)))
            }
        }
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds.
    var milliseconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// `value` with exactly `digits` decimals, e.g. `0.125`, without Foundation.
func formatFixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let units = UInt64(scaled)
    let whole = units / UInt64(scale)
    let fraction = String(units % UInt64(scale))
    let sign = value < 0 && units != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    return sign + "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
}
