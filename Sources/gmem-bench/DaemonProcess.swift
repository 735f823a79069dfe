#if canImport(Glibc)
import Glibc
#endif

/// A gmemd the harness started itself, on a socket in a private temporary directory; stopped on deinit.
final class DaemonProcess {
    let executable: String
    let pid: pid_t
    let socketPath: String
    let logPath: String
    let directory: String
    let arguments: [String]
    /// CLOCK_MONOTONIC just before posix_spawn.
    let spawnedAt: UInt64
    private var exited = false

    /// Finds gmemd: the explicit path, else next to this executable.
    static func locate(_ explicit: String?) throws -> String {
        if let explicit {
            guard access(explicit, X_OK) == 0 else { throw BenchError("--gmemd \(explicit) is not an executable file") }
            return explicit
        }
        guard let me = currentExecutablePath(), let slash = me.lastIndex(of: "/") else {
            throw BenchError("cannot locate this executable; pass --gmemd PATH")
        }
        let candidate = String(me[..<slash]) + "/gmemd"
        guard access(candidate, X_OK) == 0 else {
            throw BenchError("no gmemd next to gmem-bench (\(candidate)); build it (swift build -c release) or pass --gmemd PATH")
        }
        return candidate
    }

    /// Whether the path looks like a debug build product.
    static func looksLikeDebugBuild(_ path: String) -> Bool {
        path.contains("/debug/") || path.hasSuffix("/debug")
    }

    /// Variables that would make gmemd adopt descriptors or talk to a service manager.
    private static let strippedEnvironment: Set<String> = [
        "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
        "JOURNAL_STREAM", "GMEMD_SOCKET", "GMEMD_TEST_STALL_LOOP",
    ]

    /// Spawns `executable --socket <tmp>/gmemd.sock --log-level warning <arguments>`; stdout and stderr go to a log.
    init(executable: String, arguments: [String]) throws {
        self.executable = executable
        self.directory = try makeTemporaryDirectory(prefix: "gmem-bench")
        self.socketPath = self.directory + "/gmemd.sock"
        self.logPath = self.directory + "/gmemd.log"
        self.arguments = ["--socket", self.socketPath, "--log-level", "warning"] + arguments

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, self.logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ([executable] + self.arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var environment: [UnsafeMutablePointer<CChar>?] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            let name = String(text.prefix { $0 != "=" })
            if !Self.strippedEnvironment.contains(name) { environment.append(strdup(entry)) }
            cursor += 1
        }
        defer { environment.forEach { free($0) } }

        var pid: pid_t = 0
        let start = monotonicNanos()
        let status = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (environment + [nil]).withUnsafeBufferPointer { environmentBuffer in
                posix_spawn(&pid, executable, &actions, nil, argvBuffer.baseAddress!, environmentBuffer.baseAddress!)
            }
        }
        guard status == 0 else { throw SystemError("posix_spawn(\(executable))", status) }
        self.spawnedAt = start
        self.pid = pid
    }

    deinit {
        self.stop()
        unlink(self.logPath)
        unlink(self.socketPath)
        rmdir(self.directory)
    }

    /// Polls connect + HELLO until the daemon answers; returns nanoseconds from spawn to the HELLO reply.
    @discardableResult
    func waitUntilAnswering(timeout: Double = 30) throws -> UInt64 {
        let deadline = self.spawnedAt + UInt64(timeout * 1e9)
        while true {
            if let connection = try? BlockingConnection(path: self.socketPath) {
                let answered = monotonicNanos()
                connection.close()
                return answered - self.spawnedAt
            }
            var status: Int32 = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                self.exited = true
                throw BenchError("gmemd exited during start-up (status \(status)): \(self.logTail())")
            }
            guard monotonicNanos() < deadline else { throw BenchError("gmemd did not answer within \(timeout) s: \(self.logTail())") }
            sleepNanos(200_000)
        }
    }

    /// /proc/PID/status of the daemon.
    func status() -> ProcessStatus? { ProcessStatus.read(pid: self.pid) }

    /// The last lines of gmemd's output.
    func logTail(lines: Int = 8) -> String {
        guard let text = readTextFile(self.logPath), !text.isEmpty else { return "(no output)" }
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// SIGTERM, then SIGKILL after 5 s.
    func stop() {
        guard !self.exited else { return }
        self.exited = true
        kill(self.pid, SIGTERM)
        let deadline = monotonicNanos() + 5_000_000_000
        var status: Int32 = 0
        while waitpid(self.pid, &status, WNOHANG) == 0 {
            if monotonicNanos() > deadline {
                kill(self.pid, SIGKILL)
                waitpid(self.pid, &status, 0)
                return
            }
            sleepNanos(2_000_000)
        }
    }
}
