import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The tests' service manager: a private directory, a NOTIFY_SOCKET with an
/// fd store, and gmemd started with that store's fds passed back as
/// LISTEN_FDS (optionally after a listening socket, as gmemd.socket passes it).
final class ServiceHarness {
    let directory: TemporaryDirectory
    let notify: NotifyListener
    private(set) var daemons: [GmemdProcess] = []
    private var listeners: [Int32] = []

    var socketPath: String { self.directory.path + "/gmemd.sock" }
    static let regionSize: UInt64 = 8 << 20

    init() throws {
        self.directory = try TemporaryDirectory()
        self.notify = try NotifyListener(directory: self.directory.path)
    }

    /// The flags every test daemon gets unless it asks for others.
    func arguments(size: UInt64 = ServiceHarness.regionSize, extra: [String] = []) -> [String] {
        ["--socket", self.socketPath, "--size", "\(size)", "--threads", "2", "--log-level", "debug"] + extra
    }

    /// Starts gmemd. `storedFDs` defaults to everything in the harness's fd store.
    @discardableResult
    func start(
        arguments: [String]? = nil,
        listeningSocket: Bool = false,
        storedFDs: [(fd: Int32, name: String)]? = nil,
        watchdogMicroseconds: Int? = nil,
        environment: [String: String] = [:]
    ) throws -> GmemdProcess {
        var passed: [(fd: Int32, name: String)] = []
        if listeningSocket {
            let fd = try UnixAddress.listeningSocket(path: self.socketPath)
            self.listeners.append(fd)
            passed.append((fd, "gmemd.socket"))
        }
        passed += storedFDs ?? self.notify.store.map { ($0.fd, $0.name) }
        let daemon = try GmemdProcess(
            arguments: arguments ?? self.arguments(),
            passing: passed,
            notifySocket: self.notify.path,
            watchdogMicroseconds: watchdogMicroseconds,
            environment: environment,
            logPath: self.directory.path + "/gmemd-\(self.daemons.count).log"
        )
        self.daemons.append(daemon)
        return daemon
    }

    /// Waits for READY=1 from the latest daemon; fails the test with its log otherwise.
    @discardableResult
    func waitReady(timeout: Duration = .seconds(20)) throws -> NotifyMessage {
        guard let ready = self.notify.waitFor(timeout: timeout, { $0.has("READY=1") }) else {
            let log = self.daemons.last?.log ?? ""
            throw TestFailure("no READY=1 within \(timeout); daemon log:\n\(log)")
        }
        return ready
    }

    /// Kills every daemon still running and removes the directory.
    func tearDown() {
        for daemon in self.daemons where daemon.waitForExit(timeout: .zero) == nil { daemon.kill() }
        for fd in self.listeners { close(fd) }
        self.notify.close()
        self.directory.remove()
    }
}
