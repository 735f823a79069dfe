#if canImport(Glibc)
import Glibc
#endif

/// The real gmemd binary, started the way systemd would start it: passed fds
/// at 3, 4, 5… with LISTEN_FDS, LISTEN_FDNAMES and a LISTEN_PID that names
/// the daemon itself (set by `sh -c 'LISTEN_PID=$$ exec gmemd …'`, since the
/// pid is only known after fork), NOTIFY_SOCKET, and optionally the watchdog.
// @unchecked: pid and paths are immutable; the exit status is only touched by the waiting test.
final class GmemdProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    private var exitStatus: Int32? = nil

    /// gmemd next to the test bundle (the build products directory), or $GMEMD_BINARY.
    static func binary() throws -> String {
        if let path = getenv("GMEMD_BINARY").map({ String(cString: $0) }) { return path }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw TestFailure("readlink /proc/self/exe: \(errno)") }
        var path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // …/debug/gmemdPackageTests.xctest is the test executable; gmemd sits beside it.
        while let slash = path.lastIndex(of: "/"), !path.hasSuffix(".xctest"), path.count > 1 {
            path = String(path[..<slash])
        }
        if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        let candidate = path + "/gmemd"
        guard access(candidate, X_OK) == 0 else {
            throw TestFailure(
                "no gmemd binary at \(candidate): run `swift build --product gmemd` first or set GMEMD_BINARY"
            )
        }
        return candidate
    }

    init(
        arguments: [String],
        passing passed: [(fd: Int32, name: String)] = [],
        notifySocket: String?,
        watchdogMicroseconds: Int? = nil,
        environment extra: [String: String] = [:],
        launcher: [String] = [],
        logPath: String
    ) throws {
        let binary = try Self.binary()
        self.logPath = logPath
        var environment = Self.inheritedEnvironment()
        if let notifySocket { environment["NOTIFY_SOCKET"] = notifySocket }
        var exports: [String] = []
        if !passed.isEmpty {
            environment["LISTEN_FDS"] = "\(passed.count)"
            environment["LISTEN_FDNAMES"] = passed.map(\.name).joined(separator: ":")
            exports.append("LISTEN_PID=$$")
        }
        if let watchdogMicroseconds {
            environment["WATCHDOG_USEC"] = "\(watchdogMicroseconds)"
            exports.append("WATCHDOG_PID=$$")
        }
        for (key, value) in extra { environment[key] = value }
        let script = (exports.isEmpty ? "" : "export " + exports.joined(separator: " ") + "; ") + "exec \"$0\" \"$@\""
        // A launcher (systemd-socket-activate) sets LISTEN_* itself and execs gmemd.
        let argv = launcher.isEmpty ? ["/bin/sh", "-c", script, binary] + arguments : launcher + [binary] + arguments
        let path = launcher.first ?? "/bin/sh"

        // Copies far above 3+n first, so dup2 into 3, 4, 5 never clobbers a source.
        let staged = passed.map { fcntl($0.fd, F_DUPFD_CLOEXEC, 200) }
        defer { for fd in staged where fd >= 0 { close(fd) } }
        guard !staged.contains(where: { $0 < 0 }) else { throw TestFailure("F_DUPFD_CLOEXEC: \(errno)") }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (index, fd) in staged.enumerated() {
            // dup2 clears FD_CLOEXEC on the target: exactly the passed fds survive exec.
            posix_spawn_file_actions_adddup2(&actions, fd, 3 + Int32(index))
        }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)

        var pid = pid_t()
        let result = Self.withCStrings(argv) { argvPointer in
            Self.withCStrings(environment.map { "\($0.key)=\($0.value)" }) { envPointer in
                posix_spawn(&pid, path, &actions, nil, argvPointer, envPointer)
            }
        }
        guard result == 0 else { throw TestFailure("posix_spawn: \(result)") }
        self.pid = pid
    }

    /// This process's environment without anything a service manager sets.
    private static func inheritedEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            pointer += 1
            guard let equals = text.firstIndex(of: "=") else { continue }
            let key = String(text[..<equals])
            let managed =
                key.hasPrefix("LISTEN_") || key.hasPrefix("WATCHDOG_") || key == "NOTIFY_SOCKET"
                || key == "JOURNAL_STREAM"
                || key.hasPrefix("GMEMD_")
            if !managed { result[key] = String(text[text.index(after: equals)...]) }
        }
        return result
    }

    private static func withCStrings<R>(
        _ strings: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
    ) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    func signal(_ number: Int32) { Glibc.kill(self.pid, number) }

    /// The exit code (or 128 + signal), or nil if still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(10)) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = ContinuousClock.now + timeout
        repeat {
            var status: Int32 = 0
            // WNOHANG: poll, so a hung daemon fails the test instead of hanging it.
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                let signal = status & 0x7f
                self.exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
                return self.exitStatus
            }
            usleep(10_000)
        } while ContinuousClock.now < deadline
        return nil
    }

    /// SIGKILL and reap: for failed tests and the crash test.
    func kill() {
        self.signal(SIGKILL)
        self.waitForExit(timeout: .seconds(5))
    }

    /// Everything the daemon wrote to stdout and stderr.
    var log: String {
        guard let file = fopen(self.logPath, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
