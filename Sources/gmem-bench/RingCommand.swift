import ArgumentParser
import GmemCommandLine
import GmemTesting

/// `gmem-bench ring`: one ring measurement against a running gmemd, for comparing clients (Benchmarks/README.md).
struct RingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Measure one ring workload (depth, operation) against a running gmemd and print its latency.",
        discussion: """
            The client polls cq_tail and rings doorbells as PROTOCOL.md 10.5 says; --spin 0 makes it sleep on the \
            completion doorbell at once. Prints one line: ops/s and p50/p99 in nanoseconds (or JSON).
            """
    )

    @Option(help: "gmemd's socket.")
    var socket: String

    @Option(help: "ping, read, gpc-read, gpc-cmpxchg or readv16.")
    var op: String = "gpc-read"

    @Option(help: "Bytes per READ or GPC_READ.")
    var payload = 8

    @Option(help: "Entries in flight.")
    var depth = 1

    @Option(help: "Seconds measured.")
    var duration: Double = 2

    @Option(help: "Seconds of warm-up.")
    var warmup: Double = 0.5

    @Option(help: "Polls of cq_tail before sleeping on the completion doorbell.")
    var spin = 1_000_000

    @Option(help: "Microseconds of busy think time after each completion before the next submission.")
    var gapUs = 0

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        guard let operation = RingOperation(rawValue: self.op) else {
            throw ValidationError("--op must be ping, read, gpc-read, gpc-cmpxchg or readv16")
        }
        let spec = RingLoadSpec(
            label: "ring \(self.op) depth \(self.depth)",
            socketPath: self.socket,
            operation: operation,
            payload: self.payload,
            depth: self.depth,
            warmup: self.warmup,
            duration: self.duration,
            spin: self.spin,
            gapMicroseconds: self.gapUs
        )
        let result = try RingLoadDriver.run(spec)
        if self.json {
            var object = JSONObject()
            object["client"] = .string("swift")
            object["ops_per_second"] = .measurement(result.opsPerSecond)
            object["p50_ns"] = .measurement(result.p50)
            object["p99_ns"] = .measurement(result.p99)
            object["errors"] = .number(result.errors)
            emit(object.value.serialized)
        } else {
            emit(
                "swift \(spec.label): \(grouped(result.opsPerSecond)) ops/s, p50 \(Int(result.p50)) ns, p99 \(Int(result.p99)) ns"
            )
        }
    }
}
