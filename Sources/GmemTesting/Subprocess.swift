//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Subprocess: a child process spawned with posix_spawn, waited for with a timeout.
//
//===----------------------------------------------------------------------===//

import GmemErrno
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process: the daemon under test, or a helper client (such as a `python3` script) that must run as a
/// separate process because it changes its credentials or is killed with SIGKILL.
///
/// The child starts with default dispositions for the signals tests send (SIGTERM, SIGINT, SIGPIPE) and an empty
/// signal mask, whatever the test runner uses. Its standard input is `/dev/null`; standard output goes to `/dev/null`,
/// a file, or a pipe read with ``readOutput(until:timeout:)``; standard error to `/dev/null` or a file. Descriptors
/// of the test process are not inherited (every descriptor this module opens is close-on-exec), except those passed
/// as `inheriting`, which the child finds at 3, 4, 5, ... as a service manager passes them. The environment is this
/// process's, without some variables and with others set (see ``Environment``).
///
/// A child that is still running when the `Subprocess` is deinitialised is killed with SIGKILL and reaped.
public final class Subprocess: Sendable {
    /// Where a standard stream of the child goes.
    public enum Output: Sendable, Hashable {
        /// Discarded (`/dev/null`).
        case discard
        /// Appended to the file at this path, created if needed.
        case file(String)
        /// A stream to the test process; only for standard output, read with ``Subprocess/readOutput(until:timeout:)``.
        case pipe
    }

    /// The environment of the child: this process's, without the variables in ``removed``, with those in ``added``.
    ///
    /// A variable such as `LISTEN_FDS` or `NOTIFY_SOCKET` set for the process that runs the tests (a CI job under
    /// systemd) would otherwise reach the child, which might act on it as if it were addressed to itself; a test
    /// playing the service manager sets them on purpose with ``setting(_:)``.
    public struct Environment: Sendable, Hashable {
        /// Names of variables the child does not get.
        public var removed: Set<String>
        /// Variables the child gets with these values, whatever this process has.
        public var added: [String: String] = [:]

        /// This process's environment, unchanged.
        public static let inherited = Environment(removed: [])

        /// This process's environment without the variables named in `names`.
        public static func inherited(removing names: Set<String>) -> Environment {
            Environment(removed: names)
        }

        /// This environment with `values` set as well (replacing earlier values of the same names).
        public func setting(_ values: [String: String]) -> Environment {
            var copy = self
            copy.added.merge(values) { _, new in new }
            return copy
        }

        private init(removed: Set<String>) {
            self.removed = removed
        }
    }

    /// The child's process id.
    public let pid: pid_t
    /// The executable and arguments, for messages.
    public let commandLine: [String]
    /// `CLOCK_MONOTONIC` in nanoseconds, read just before `posix_spawn`: the start of a measured start-up, comparable
    /// with other `CLOCK_MONOTONIC` readings (`clock_gettime`) of this process.
    public let spawnedAt: UInt64

    private let exitStatus = Mutex<ExitStatus?>(nil)
    private let outputPipe: Int32?
    private let outputBuffer = Mutex<[UInt8]>([])

    /// Spawns `executable` (an absolute path) with `arguments`.
    ///
    /// - Parameter inheriting: descriptors the child gets at 3, 4, 5, ... in this order (socket activation, an fd
    ///   store passed back); the caller keeps its own copies.
    /// - Throws: ``GmemTestingError/systemCall(_:errno:)`` if the process cannot be spawned.
    public init(
        executable: String,
        arguments: [String] = [],
        standardOutput: Output = .discard,
        standardError: Output = .discard,
        environment: Environment = .inherited,
        inheriting descriptors: [Int32] = []
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        // Close-on-exec copies far above 3 + n first, so that dup2 into 3, 4, 5 never overwrites a source that is
        // still to be copied; dup2 clears close-on-exec on the target, so exactly the passed descriptors survive.
        let staged = descriptors.map { fcntl($0, F_DUPFD_CLOEXEC, 200) }
        defer { for descriptor in staged where descriptor >= 0 { close(descriptor) } }
        if staged.contains(where: { $0 < 0 }) { throw GmemTestingError.systemCall("F_DUPFD_CLOEXEC", errno: errno) }
        for (index, descriptor) in staged.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, descriptor, 3 + Int32(index))
        }

        var pipeRead: Int32? = nil
        var pipeWrite: Int32 = -1
        if standardOutput == .pipe {
            // A socket pair rather than pipe(2): SOCK_CLOEXEC is atomic, so a child spawned concurrently by another
            // test cannot inherit the write end and hold the stream open (pipe2 is hidden behind _GNU_SOURCE).
            var fds: [Int32] = [-1, -1]
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
                throw GmemTestingError.systemCall("socketpair", errno: errno)
            }
            pipeRead = fds[0]
            pipeWrite = fds[1]
            posix_spawn_file_actions_adddup2(&actions, pipeWrite, 1)
        } else {
            Self.addOutput(standardOutput, descriptor: 1, to: &actions)
        }
        Self.addOutput(standardError == .pipe ? .discard : standardError, descriptor: 2, to: &actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let commandLine = [executable] + arguments
        var argv: [UnsafeMutablePointer<CChar>?] = commandLine.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp = Self.environment(environment)
        defer { for pointer in envp { free(pointer) } }

        var pid: pid_t = 0
        let spawnedAt = monotonicNanoseconds()
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        if pipeWrite >= 0 { close(pipeWrite) }
        guard result == 0 else {
            if let pipeRead { close(pipeRead) }
            throw GmemTestingError.systemCall("posix_spawn \(executable)", errno: result)
        }
        self.pid = pid
        self.commandLine = commandLine
        self.spawnedAt = spawnedAt
        self.outputPipe = pipeRead
    }

    /// Copies of this process's `name=value` entries without the names `environment` removes or sets, then those it
    /// sets, ending in `nil` (an `envp`).
    private static func environment(_ environment: Environment) -> [UnsafeMutablePointer<CChar>?] {
        var entries: [UnsafeMutablePointer<CChar>?] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let name = String(String(cString: entry).prefix { $0 != "=" })
            if !environment.removed.contains(name) && environment.added[name] == nil { entries.append(strdup(entry)) }
            cursor += 1
        }
        for (name, value) in environment.added { entries.append(strdup("\(name)=\(value)")) }
        return entries + [nil]
    }

    private static func addOutput(_ output: Output, descriptor: Int32, to actions: inout posix_spawn_file_actions_t) {
        switch output {
        case .discard, .pipe:
            posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", O_WRONLY, 0)
        case .file(let path):
            posix_spawn_file_actions_addopen(&actions, descriptor, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
    }

    deinit {
        if self.exitStatus.withLock({ $0 == nil }) {
            Glibc.kill(self.pid, SIGKILL)
            _ = try? self.wait(timeout: .seconds(10))
        }
        if let outputPipe { close(outputPipe) }
    }

    /// Sends `signal` to the child; does nothing once it has been reaped (its pid may be reused).
    public func send(signal: Int32) {
        self.exitStatus.withLock { status in
            if status == nil { Glibc.kill(self.pid, signal) }
        }
    }

    /// The exit status if the child has ended (reaping it), `nil` while it runs.
    public func poll() -> ExitStatus? {
        self.exitStatus.withLock { status in
            if let status { return status }
            var word: Int32 = 0
            let result = waitpid(self.pid, &word, WNOHANG)
            if result == self.pid {
                status = ExitStatus(waitStatus: word)
            } else if result < 0 && errno == ECHILD {
                // Reaped by someone else (a SIGCHLD handler of the runner): the status is lost.
                status = .exited(-1)
            }
            return status
        }
    }

    /// Whether the child is still running.
    public var isRunning: Bool {
        self.poll() == nil
    }

    /// Waits for the child to end and returns how it ended.
    ///
    /// - Throws: ``GmemTestingError/timedOut(_:)`` if it still runs after `timeout`; it is left running.
    @discardableResult
    public func wait(timeout: Duration) throws -> ExitStatus {
        var result: ExitStatus? = nil
        try waitUntil(
            "\(self.commandLine.first ?? "child") (pid \(self.pid)) to exit",
            timeout: timeout,
            interval: .milliseconds(2)
        ) {
            result = self.poll()
            return result != nil
        }
        return result!
    }

    /// Reads the child's standard output (which must be ``Output/pipe``) until it contains `marker` or ends.
    ///
    /// - Returns: everything read so far, including `marker`.
    /// - Throws: ``GmemTestingError/timedOut(_:)`` if neither happens within `timeout`.
    public func readOutput(until marker: String? = nil, timeout: Duration) throws -> String {
        guard let outputPipe else { return "" }
        let deadline = Deadline(after: timeout)
        return try self.outputBuffer.withLock { buffer in
            func text() -> String { String(decoding: buffer, as: UTF8.self) }
            while true {
                if let marker, text().contains(marker) { return text() }
                var descriptor = pollfd(fd: outputPipe, events: Int16(POLLIN), revents: 0)
                let ready = SystemCall.retryingOnInterrupt {
                    Glibc.poll(&descriptor, 1, deadline.remainingMilliseconds)
                }
                guard ready > 0 else {
                    throw GmemTestingError.timedOut("output of \(self.commandLine) (got: \(text()))")
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = SystemCall.retryingOnInterrupt {
                    chunk.withUnsafeMutableBytes { Glibc.read(outputPipe, $0.baseAddress, $0.count) }
                }
                guard count > 0 else { return text() }  // End of output, or the pipe failed.
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (vDSO, no system call): the clock of ``Subprocess/spawnedAt``.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}
