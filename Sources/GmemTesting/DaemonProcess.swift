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
/// ``start(arguments:size:socketPath:readyTimeout:)`` returns once the daemon listens on its socket (see
/// ``waitUntilServing(timeout:interval:)``). The daemon's standard error (its log) is captured in a file, readable
/// through ``stderr``. A daemon still running when the value is deinitialised is killed with SIGKILL; its directory
/// is removed.
public final class DaemonProcess: Sendable {
    /// The daemon's process id.
    public var pid: pid_t { self.process.pid }
    /// The socket the daemon serves.
    public let socketPath: String
    /// A directory created for this daemon (socket, log), removed on deinit.
    public let directory: String
    /// Where the daemon's standard error goes.
    public let stderrPath: String
    /// The arguments it was started with, after the binary.
    public let arguments: [String]

    private let process: Subprocess

    /// Spawns `gmemd --socket <path> --size <size> <arguments>` and does **not** wait for it to serve.
    ///
    /// - Parameter socketPath: the socket to use; by default `<directory>/gmemd.sock`.
    public init(arguments: [String] = [], size: String = "16M", socketPath: String? = nil) throws {
        let binary = try ExecutableLocator.gmemd()
        self.directory = try Self.makeTemporaryDirectory()
        self.socketPath = socketPath ?? self.directory + "/gmemd.sock"
        self.stderrPath = self.directory + "/stderr.log"
        self.arguments = ["--socket", self.socketPath, "--size", size] + arguments
        do {
            self.process = try Subprocess(
                executable: binary,
                arguments: self.arguments,
                standardError: .file(self.stderrPath)
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
        arguments: [String] = [],
        size: String = "16M",
        socketPath: String? = nil,
        readyTimeout: Duration = .seconds(10)
    ) throws -> DaemonProcess {
        let daemon = try DaemonProcess(arguments: arguments, size: size, socketPath: socketPath)
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

    /// Everything the daemon has written to standard error so far.
    public var stderr: String {
        (try? ProcMaps.readFile(self.stderrPath)) ?? ""
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

    /// Removes the files a daemon leaves in its directory (the socket, the log), then the directory.
    private static func removeDirectory(_ directory: String) {
        unlink(directory + "/gmemd.sock")
        unlink(directory + "/stderr.log")
        rmdir(directory)
    }
}
