//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// DaemonProcess: the real gmemd binary, running in a fresh directory for one test.
//
//===----------------------------------------------------------------------===//

import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A `gmemd` process started for a test, listening on a socket in a directory of its own.
///
/// ```swift
/// let daemon = try DaemonProcess.start(arguments: ["--max-gpcs", "4"])
/// let connection = try daemon.connect()
/// let hello = try connection.hello()
/// ```
///
/// ``start(executable:arguments:size:socketPath:environment:readyTimeout:)`` returns once the daemon listens on its
/// socket (see ``waitUntilServing(timeout:interval:)``). The daemon's standard error (its log) and standard output
/// (which gmemd leaves unused, but a message there must not be lost) are captured in one file, readable through
/// ``stderr``. A daemon still running when the value is deinitialised is killed with SIGKILL; its directory is
/// removed.
///
/// A benchmark uses the same type: it passes the binary it measures and its own `--size`, strips the environment
/// (``Subprocess/Environment/isolated``), times the start-up with ``waitUntilAnswering(timeout:interval:)`` and
/// ends the daemon with ``stop(timeout:)``.
public final class DaemonProcess: Sendable {
    /// The daemon's process id.
    public var pid: pid_t { self.process.pid }
    /// The `gmemd` binary it runs.
    public let executable: String
    /// The socket the daemon serves.
    public let socketPath: String
    /// A directory created for this daemon (socket, log), removed on deinit.
    public let directory: String
    /// Where the daemon's standard error (and standard output) goes.
    public let stderrPath: String
    /// The arguments it was started with, after the binary.
    public let arguments: [String]

    private let process: Subprocess

    /// Spawns `gmemd --socket <path> --size <size> <arguments>` and does **not** wait for it to serve.
    ///
    /// - Parameters:
    ///   - executable: the `gmemd` binary; by default ``ExecutableLocator/gmemd()``.
    ///   - size: the region size; `nil` passes no `--size`, for a caller whose `arguments` hold their own (a small
    ///     default keeps tests cheap, a benchmark sizes the region it measures).
    ///   - socketPath: the socket to use; by default `<directory>/gmemd.sock`.
    ///   - environment: the daemon's environment; by default this process's, unchanged.
    ///   - inheriting: descriptors the daemon finds at 3, 4, 5, ... (socket activation, a service manager's fd store);
    ///     the caller sets the matching `LISTEN_FDS` in `environment`.
    ///   - launcher: a command that ends by executing the binary given as its next argument, for what only the
    ///     daemon's own process can set: `["/bin/sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""]`, or
    ///     `systemd-socket-activate --listen=...`. Empty: the binary is spawned directly.
    ///   - stderrPath: where standard error and output go; by default `stderr.log` in ``directory``.
    public init(
        executable: String? = nil,
        arguments: [String] = [],
        size: String? = "16M",
        socketPath: String? = nil,
        environment: Subprocess.Environment = .inherited,
        inheriting descriptors: [Int32] = [],
        launcher: [String] = [],
        stderrPath: String? = nil
    ) throws {
        self.executable = try executable ?? ExecutableLocator.gmemd()
        self.directory = try Self.makeTemporaryDirectory()
        self.socketPath = socketPath ?? self.directory + "/gmemd.sock"
        self.stderrPath = stderrPath ?? self.directory + "/stderr.log"
        self.arguments = ["--socket", self.socketPath] + (size.map { ["--size", $0] } ?? []) + arguments
        let command = launcher + [self.executable] + self.arguments
        do {
            self.process = try Subprocess(
                executable: command[0],
                arguments: Array(command.dropFirst()),
                standardOutput: .file(self.stderrPath),
                standardError: .file(self.stderrPath),
                environment: environment,
                inheriting: descriptors
            )
        } catch {
            Self.removeDirectory(self.directory)
            throw error
        }
    }

    /// Spawns the daemon and waits until it listens on its socket.
    ///
    /// - Throws: ``GmemTestingError/daemonExited(_:stderr:)`` if it exits first, ``GmemTestingError/timedOut(_:)``
    ///   if it does not serve within `readyTimeout` (it is killed then).
    public static func start(
        executable: String? = nil,
        arguments: [String] = [],
        size: String? = "16M",
        socketPath: String? = nil,
        environment: Subprocess.Environment = .inherited,
        readyTimeout: Duration = .seconds(10)
    ) throws -> DaemonProcess {
        let daemon = try DaemonProcess(
            executable: executable,
            arguments: arguments,
            size: size,
            socketPath: socketPath,
            environment: environment
        )
        try daemon.waitUntilServing(timeout: readyTimeout)
        return daemon
    }

    deinit {
        if self.process.isRunning {
            self.process.send(signal: SIGKILL)
            _ = try? self.process.wait(timeout: .seconds(10))
        }
        Self.removeDirectory(self.directory)
    }

    /// Polls, every `interval`, until the daemon listens on its socket.
    ///
    /// On Linux the check reads `/proc/net/unix` for a listening socket bound to ``socketPath``, so that it opens
    /// no connection: the daemon's `connections_total` starts at 0 and a `--max-connections` limit is not taken up
    /// by a probe still being closed. Where that file is unreadable, a connection is opened and closed instead.
    public func waitUntilServing(timeout: Duration = .seconds(10), interval: Duration = .milliseconds(2)) throws {
        let deadline = Deadline(after: timeout)
        while true {
            if let status = self.process.poll() {
                throw GmemTestingError.daemonExited(status, stderr: self.stderr)
            }
            if let listening = UnixSocket.isListening(at: self.socketPath) {
                if listening { return }
            } else if let descriptor = try? UnixSocket.connect(to: self.socketPath) {
                close(descriptor)
                return
            }
            if deadline.hasPassed {
                self.kill()
                throw GmemTestingError.timedOut("gmemd to serve \(self.socketPath); stderr:\n\(self.stderr)")
            }
            pause(interval)
        }
    }

    /// Polls, every `interval`, until the daemon answers HELLO on a connection of its own; returns the nanoseconds
    /// from ``spawnedAt`` to the reply.
    ///
    /// This is how long a client waits for a freshly started daemon, which a benchmark measures: hence the short
    /// default interval (the answer is seen at most that late) and the clock read right after the reply. Unlike
    /// ``waitUntilServing(timeout:interval:)`` it leaves a trace: the probe connections count in the daemon's STATS.
    /// The probe is closed before this returns.
    ///
    /// - Throws: ``GmemTestingError/daemonExited(_:stderr:)`` if the daemon exits first,
    ///   ``GmemTestingError/timedOut(_:)`` if it does not answer within `timeout` of being spawned (it is killed
    ///   then).
    @discardableResult
    public func waitUntilAnswering(
        timeout: Duration = .seconds(10),
        interval: Duration = .microseconds(200)
    ) throws -> UInt64 {
        let (seconds, attoseconds) = timeout.components
        let timeoutNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds)) / 1_000_000_000
        let deadline = self.spawnedAt + timeoutNanoseconds
        let hello = Request.hello(version: WireProtocol.version, features: 0)
        while true {
            if let connection = try? self.connect() {
                let remaining = Duration.nanoseconds(Int64(clamping: deadline - min(deadline, monotonicNanoseconds())))
                let reply = try? connection.request({ try hello.encoded(id: $0) }, opcode: .hello, timeout: remaining)
                let answered = monotonicNanoseconds()
                connection.close()
                if reply?.isSuccess == true { return answered - self.spawnedAt }
            }
            if let status = self.process.poll() {
                throw GmemTestingError.daemonExited(status, stderr: self.stderr)
            }
            if monotonicNanoseconds() >= deadline {
                self.kill()
                throw GmemTestingError.timedOut("gmemd to answer HELLO on \(self.socketPath); stderr:\n\(self.stderr)")
            }
            pause(interval)
        }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds, read just before the daemon was spawned (``Subprocess/spawnedAt``).
    public var spawnedAt: UInt64 {
        self.process.spawnedAt
    }

    /// Opens a new connection to the daemon (without HELLO).
    public func connect() throws -> RawConnection {
        try RawConnection(connectingTo: self.socketPath)
    }

    /// Opens a connection and completes HELLO.
    public func connectWithHello(features: HelloReply.Features = []) throws -> RawConnection {
        let connection = try self.connect()
        try connection.hello(features: features)
        return connection
    }

    /// Everything the daemon has written to standard error (and standard output) so far.
    public var stderr: String {
        (try? ProcMaps.readFile(self.stderrPath)) ?? ""
    }

    /// The last `lines` lines of ``stderr`` joined with ` | `, or `(no output)`: the daemon's last words on one line
    /// of an error message.
    public func logTail(lines: Int = 8) -> String {
        let text = self.stderr
        guard !text.isEmpty else { return "(no output)" }
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// Whether the daemon is still running.
    public var isRunning: Bool {
        self.process.isRunning
    }

    /// How the daemon ended, or `nil` while it runs.
    public var exitStatus: ExitStatus? {
        self.process.poll()
    }

    /// Sends `signal` to the daemon.
    public func send(signal: Int32) {
        self.process.send(signal: signal)
    }

    /// SIGTERM, then waits for the daemon to exit and returns how it ended.
    ///
    /// - Throws: ``GmemTestingError/timedOut(_:)`` if it still runs after `timeout` (it is left running; deinit
    ///   kills it).
    @discardableResult
    public func terminate(timeout: Duration = .seconds(10)) throws -> ExitStatus {
        self.process.send(signal: SIGTERM)
        return try self.process.wait(timeout: timeout)
    }

    /// Ends the daemon whatever state it is in: SIGTERM, then SIGKILL if it still runs after `timeout`. Returns how
    /// it ended, `nil` only if it could not be reaped even after SIGKILL.
    ///
    /// For a harness that starts many daemons in a row (a benchmark): each gets the chance to shut down cleanly, and
    /// none outlives its measurement. Does nothing but report once the daemon has ended.
    @discardableResult
    public func stop(timeout: Duration = .seconds(5)) -> ExitStatus? {
        if let status = self.process.poll() { return status }
        self.process.send(signal: SIGTERM)
        if let status = try? self.process.wait(timeout: timeout) { return status }
        self.process.send(signal: SIGKILL)
        return try? self.process.wait(timeout: .seconds(10))
    }

    /// SIGKILL, and reaps the daemon.
    public func kill() {
        self.process.send(signal: SIGKILL)
        _ = try? self.process.wait(timeout: .seconds(10))
    }

    /// Waits for the daemon to exit by itself.
    @discardableResult
    public func wait(timeout: Duration) throws -> ExitStatus {
        try self.process.wait(timeout: timeout)
    }

    /// The kernel's page size.
    public static let systemPageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    // MARK: The directory

    private static func makeTemporaryDirectory() throws -> String {
        let base = ExecutableLocator.environmentValue("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        // Socket paths are limited to 107 bytes: keep the template short.
        var template = Array((base + "/gmemd-e2e.XXXXXX").utf8CString)
        guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw GmemTestingError.systemCall("mkdtemp", errno: errno)
        }
        return String(cString: result)
    }

    /// Removes the files in the daemon's directory (the socket, the log, files a test put there), then the
    /// directory. The directory is the daemon's own (mkdtemp): nothing else lives there, and it has no subdirectories.
    private static func removeDirectory(_ directory: String) {
        if let stream = opendir(directory) {
            var names: [String] = []
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(stream)
            for name in names { unlink(directory + "/" + name) }
        }
        rmdir(directory)
    }
}

extension Subprocess.Environment {
    /// This process's environment without the variables through which a `gmemd` would act for the process that
    /// starts it: adopt its socket-activation descriptors (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), report to
    /// its service manager (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`) or journal (`JOURNAL_STREAM`), pick
    /// another default socket (`GMEMD_SOCKET`) or stall on purpose (`GMEMD_TEST_STALL_LOOP`).
    ///
    /// A benchmark started from a systemd unit, or from a shell where a test's variables linger, must still measure a
    /// plain daemon. Tests that pass such variables on purpose keep ``inherited``.
    public static let isolated = Subprocess.Environment.inherited(removing: [
        "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
        "JOURNAL_STREAM", "GMEMD_SOCKET", "GMEMD_TEST_STALL_LOOP",
    ])
}
