import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// The real gmemd binary, started through GmemTesting's ``DaemonProcess`` the way systemd would start it: passed
/// fds at 3, 4, 5… with LISTEN_FDS, LISTEN_FDNAMES and a LISTEN_PID that names the daemon itself (set by
/// `sh -c 'LISTEN_PID=$$ exec gmemd …'`, since the pid is only known after fork), NOTIFY_SOCKET, and optionally
/// the watchdog.
final class GmemdProcess: Sendable {
    let daemon: DaemonProcess

    var pid: pid_t { self.daemon.pid }
    var logPath: String { self.daemon.stderrPath }

    /// Starts gmemd ($GMEMD_BINARY, else the one beside the tests) with `arguments`, which name its `--socket`.
    init(
        arguments: [String],
        passing passed: [(fd: Int32, name: String)] = [],
        notifySocket: String?,
        watchdogMicroseconds: Int? = nil,
        environment extra: [String: String] = [:],
        launcher: [String] = [],
        logPath: String
    ) throws {
        var environment: [String: String] = [:]
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
        environment.merge(extra) { _, new in new }
        let script = (exports.isEmpty ? "" : "export " + exports.joined(separator: " ") + "; ") + "exec \"$0\" \"$@\""
        // The socket path is DaemonProcess's to pass; the harness's argument lists carry it as `--socket PATH`.
        var arguments = arguments
        guard let flag = arguments.firstIndex(of: "--socket"), flag + 1 < arguments.count else {
            throw TestFailure("gmemd arguments without --socket: \(arguments)")
        }
        let socketPath = arguments[flag + 1]
        arguments.removeSubrange(flag...(flag + 1))
        self.daemon = try DaemonProcess(
            arguments: arguments,
            size: nil,
            socketPath: socketPath,
            // Nothing of this process's own service manager (a CI job under systemd) reaches the daemon.
            environment: Subprocess.Environment.isolated.setting(environment),
            inheriting: passed.map(\.fd),
            // A launcher (systemd-socket-activate) sets LISTEN_* itself and execs gmemd.
            launcher: launcher.isEmpty ? ["/bin/sh", "-c", script] : launcher,
            stderrPath: logPath
        )
    }

    func signal(_ number: Int32) { self.daemon.send(signal: number) }

    /// The exit code (or 128 + signal), or nil if still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(10)) -> Int32? {
        switch try? self.daemon.wait(timeout: timeout) {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        case nil: return nil
        }
    }

    /// SIGKILL and reap: for failed tests and the crash test.
    func kill() {
        self.daemon.kill()
    }

    /// Everything the daemon wrote to stdout and stderr.
    var log: String { self.daemon.stderr }
}
