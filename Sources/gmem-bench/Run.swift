import ArgumentParser
import GmemCommandLine
import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// `gmem-bench run`: drive a gmemd (or the raw baseline) and report throughput, latency and protection calls.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "Drive gmemd (or the raw baseline) with pipelined requests and report ops/s, latency and STATS deltas.",
        discussion: """
            Exactly one of --socket (a running gmemd), --spawn (start a gmemd on a temporary socket) or --raw \
            (the in-process raw baseline server) picks the target. Each connection is a thread with blocking \
            Unix-socket I/O that keeps --depth requests in flight; latencies go into one HdrHistogram per thread, \
            merged at the end. STATS is read at the start and end of the measured window.
            """
    )

    @Option(help: "The socket of a running gmemd.")
    var socket: String?

    @Flag(help: "Start a gmemd on a temporary socket for this run (no-direct-map, memfd).")
    var spawn = false

    @Flag(help: "Measure the in-process raw baseline server instead (HELLO, PING and READ only).")
    var raw = false

    @Flag(help: "With --raw: serve from epoll event loops (one per core) instead of a thread per connection.")
    var rawEpoll = false

    @Flag(help: "With --raw: serve from SwiftNIO event loops with one minimal handler (a diagnostic baseline).")
    var rawNio = false

    @Option(help: "The gmemd executable for --spawn (default: next to gmem-bench).")
    var gmemd: String?

    @Option(help: "Region size of a spawned gmemd (default 1G) or of the raw server's mapping (default 64M).")
    var size: ByteSize?

    @Option(
        name: .customLong("gmemd-arg"),
        parsing: .unconditionalSingleValue,
        help: "An extra argument for a spawned gmemd (repeatable), e.g. --gmemd-arg=--direct-map."
    )
    var gmemdArguments: [String] = []

    @Option(
        help:
            "ping, read, write, gpc-read, gpc-write or mixed (40% read, 20% write, 20% gpc-read, 10% gpc-write, 10% ping)."
    )
    var op: Operation = .ping

    @Option(help: "Payload bytes per request (K and M suffixes).")
    var payload = ByteSize(bytes: 8)

    @Option(help: "Connections, one thread each.")
    var connections = 1

    @Option(help: "Requests in flight per connection.")
    var depth = 1

    @Option(help: "Seconds measured.")
    var duration: Double = 5

    @Option(help: "Seconds of warm-up before the measured window.")
    var warmup: Double = 0.5

    @Option(help: "hot (one page), random or sequential.")
    var pattern: AccessPattern = .hot

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Measure even from a debug build (numbers are then meaningless).")
    var allowDebug = false

    func validate() throws {
        let targets = (self.socket != nil ? 1 : 0) + (self.spawn ? 1 : 0) + (self.raw ? 1 : 0)
        guard targets == 1 else { throw ValidationError("pass exactly one of --socket PATH, --spawn or --raw") }
        guard self.connections >= 1, self.depth >= 1 else {
            throw ValidationError("--connections and --depth must be at least 1")
        }
        guard self.duration > 0, self.warmup >= 0 else {
            throw ValidationError("--duration must be positive, --warmup not negative")
        }
        if self.raw && ![.ping, .read].contains(self.op) {
            throw ValidationError("the raw server only serves ping and read")
        }
        if (self.rawEpoll || self.rawNio) && !self.raw {
            throw ValidationError("--raw-epoll and --raw-nio go with --raw")
        }
        if self.rawEpoll && self.rawNio { throw ValidationError("choose one of --raw-epoll and --raw-nio") }
        // The raw server writes replies with blocking writes: with big PINGs pipelined, it would wait for the
        // client to read while the client waits for it to read. Keep the pipelined request bytes under the
        // socket buffer.
        if self.raw && self.op == .ping && self.depth > 1 && Int(self.payload.bytes + 16) * self.depth > 128 << 10 {
            throw ValidationError("--raw with pipelined PINGs needs depth x (16 + payload) <= 128 KiB")
        }
    }

    private var rawMode: RawServer.Mode { RawServer.Mode(epoll: self.rawEpoll, nio: self.rawNio) }

    func run() throws {
        warnIfDebug(allow: self.allowDebug)
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()

        var daemon: DaemonProcess?
        var rawServer: RawServer?
        var rawDirectory: String?
        var target: String
        let socketPath: String
        if self.spawn {
            let executable = try locateGmemd(self.gmemd)
            if looksLikeDebugBuild(executable) { warn("WARNING: \(executable) looks like a DEBUG build of gmemd") }
            let arguments = ["--size", "\(self.size?.bytes ?? 1 << 30)"] + self.gmemdArguments
            let (spawned, startup) = try spawnGmemd(executable, arguments)
            daemon = spawned
            socketPath = spawned.socketPath
            target =
                "spawned \(executable) \(arguments.joined(separator: " ")) (answered after \(fixed(Double(startup) / 1e6, 1)) ms)"
        } else if self.raw {
            let directory = try makeTemporaryDirectory(prefix: "gmem-bench-raw")
            rawDirectory = directory
            let rawSize = self.size ?? ByteSize(bytes: 64 << 20)
            let server = try RawServer(
                socketPath: directory + "/raw.sock",
                size: Int(rawSize.bytes),
                mode: self.rawMode
            )
            try server.start()
            rawServer = server
            socketPath = server.socketPath
            target =
                "raw baseline server (in-process, \(self.rawMode.summary), \(rawSize))"
        } else {
            socketPath = self.socket!
            target = "gmemd at \(socketPath)"
        }
        defer {
            rawServer?.stop()
            if let rawDirectory { rmdir(rawDirectory) }
            daemon?.stop()
        }

        let spec = LoadSpec(
            label: self.raw ? self.rawMode.label : "gmemd",
            socketPath: socketPath,
            operation: self.op,
            payload: Int(self.payload.bytes),
            connections: self.connections,
            depth: self.depth,
            pattern: self.pattern,
            warmup: self.warmup,
            duration: self.duration,
            progress: !self.json && isatty(STDOUT_FILENO) != 0,
            readsStats: !self.raw
        )
        let result = try LoadDriver.run(spec)
        let machine = MachineInfo.current()
        if self.json {
            var object = JSONObject()
            object["target"] = .string(target)
            object["machine"] = machine.json
            object["debug_build"] = .bool(isDebugBuild)
            object["result"] = result.json
            print(object.value.prettyPrinted)
        } else {
            print("gmem-bench run against \(target)")
            print("machine: \(machine.summary)")
            print(result.humanReport)
            if result.pagePrivate == false {
                warn("note: the page measured is SHARED; the targets are about private pages")
            }
        }
        if result.errors > 0 { warn("warning: \(result.errors) requests failed (first: \(result.firstError ?? "?"))") }
    }
}
