//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Process lifecycle: graceful shutdown, one daemon per socket, stale socket files.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What happens around the daemon process itself: SIGTERM, a second daemon on the same socket, and the socket
/// file a crashed daemon leaves behind.
@Suite("Daemon lifecycle")
struct ShutdownTests {
    @Test(
        "SIGTERM (or SIGINT) with idle connections open: exit 0 within 5 s, connections closed, socket removed",
        arguments: [SIGTERM, SIGINT]
    )
    func gracefulShutdown(signal: Int32) throws {
        let session = try Session()
        // Shutdown, not start-up, is under test here: see earlySigterm for a signal during start-up.
        try session.daemon.waitUntilCatching(signal)
        let withGpc = try session.connect(features: .events)
        _ = try withGpc.activateGpc(gpa: 0x1000, length: 8)
        let withoutHello = try session.daemon.connect()
        let midFrame = try session.connect()
        try midFrame.send(Array(RawConnection.frame(opcode: .ping, id: 1, payload: [1, 2, 3]).prefix(5)))
        // Every connection is known to the daemon before the signal.
        try waitUntil("the four connections to be accepted") {
            try statistic("connections", of: session.connection) == 4
        }

        let started = ContinuousClock.now
        session.daemon.send(signal: signal)
        let status = try session.daemon.wait(timeout: .seconds(5))
        #expect(status == .exited(0), "stderr:\n\(session.daemon.stderr)")
        #expect(started.duration(to: .now) < .seconds(5))
        #expect(!UnixSocket.socketFileExists(at: session.daemon.socketPath))
        for connection in [session.connection, withGpc, withoutHello, midFrame] {
            #expect(try connection.waitForClose(timeout: .seconds(1)))
        }
        #expect(throws: (any Error).self) { try RawConnection.connect(session.daemon.socketPath) }
    }

    @Test("SIGABRT, the watchdog's signal, ends gmemd at once and names the signal on stderr")
    func abortEndsTheDaemon() throws {
        // No core file in the working directory from this deliberate abort.
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_CORE.rawValue), &limit) == 0 {
            limit.rlim_cur = 0
            setrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
        }
        let session = try Session()
        // SIGTERM's handler is installed after SIGABRT's, so both are in place.
        try session.daemon.waitUntilCatching(SIGTERM)
        session.daemon.send(signal: SIGABRT)
        let status = try session.daemon.wait(timeout: .seconds(2))
        #expect(status == .signaled(SIGABRT), "stderr:\n\(session.daemon.stderr)")
        #expect(session.daemon.stderr.contains("gmemd: SIGABRT"))
    }

    @Test("a second SIGTERM during the drain does not cut off replies already owed")
    func secondSignalKeepsDraining() throws {
        let session = try Session()
        try session.daemon.waitUntilCatching(SIGTERM)
        let data = Payload.pattern(Int(pageSize), seed: 21)
        try session.connection.writeBytes(gpa: 0, data: data)
        // 4 MiB of replies owed to a client that is not reading yet.
        let reader = try session.connect()
        var bytes: [UInt8] = []
        for index in 0..<4 {
            bytes += RawConnection.frame(
                opcode: .read,
                id: UInt32(index),
                payload: Payload.read(gpa: 0, length: 1 << 20)
            )
        }
        try reader.send(bytes)
        try waitUntil("the four READs to be received") { try statistic("reads", of: session.connection) >= 1 }
        session.daemon.send(signal: SIGTERM)
        usleep(100_000)
        session.daemon.send(signal: SIGTERM)
        usleep(300_000)
        for index in 0..<4 {
            let frame = try #require(try reader.receiveFrame(timeout: .seconds(5)), "cut off after \(index) replies")
            #expect(frame.header.id == UInt32(index) && frame.header.status == 0)
            #expect(Array(frame.payload.prefix(data.count)) == data)
        }
        #expect(try session.daemon.wait(timeout: .seconds(5)) == .exited(0), "stderr:\n\(session.daemon.stderr)")
    }

    @Test("SIGTERM as soon as the socket accepts connections still shuts down cleanly")
    func earlySigterm() throws {
        // Several daemons at once, each signalled the moment it serves, so the whole test takes one 5 s budget.
        // A supervisor may stop a service the moment it is up; the signal must neither kill gmemd outright (the
        // default action) nor be lost (ignored before the handler is ready).
        var daemons: [DaemonProcess] = []
        for _ in 0..<12 { daemons.append(try DaemonProcess(arguments: [])) }
        var dispositions: [SignalDisposition?] = []
        for daemon in daemons {
            try daemon.waitUntilServing(interval: .microseconds(100))
            dispositions.append(try? daemon.disposition(of: SIGTERM))
            daemon.send(signal: SIGTERM)
        }
        let deadline = Deadline(after: .seconds(5))
        for (index, daemon) in daemons.enumerated() {
            let status = try? daemon.wait(timeout: deadline.remaining)
            let outcome = status.map { "\($0)" } ?? "still running after 5 s"
            let before = dispositions[index].map { "\($0)" } ?? "unknown"
            #expect(status == .exited(0), "daemon \(index): \(outcome); SIGTERM disposition when sent: \(before)")
            if status == .exited(0) {
                #expect(!UnixSocket.socketFileExists(at: daemon.socketPath), "daemon \(index) left its socket file")
            }
        }
    }

    @Test("SIGTERM the moment the handler is installed, possibly before the socket exists: exit 0, no socket left")
    func sigtermDuringStartup() throws {
        var daemons: [DaemonProcess] = []
        for _ in 0..<8 { daemons.append(try DaemonProcess(arguments: [])) }
        for daemon in daemons {
            try daemon.waitUntilCatching(SIGTERM)
            daemon.send(signal: SIGTERM)
        }
        let deadline = Deadline(after: .seconds(5))
        for (index, daemon) in daemons.enumerated() {
            let status = try? daemon.wait(timeout: deadline.remaining)
            #expect(
                status == .exited(0),
                "daemon \(index): \(status.map { "\($0)" } ?? "still running after 5 s"); stderr:\n\(daemon.stderr)"
            )
            #expect(!UnixSocket.socketFileExists(at: daemon.socketPath), "daemon \(index) left its socket file")
        }
    }

    @Test(
        "SIGTERM or SIGINT while gmemd is still starting, before the service group traps it: exit 0, no socket left",
        arguments: [SIGTERM, SIGINT]
    )
    func signalBeforeServiceGroup(signal: Int32) throws {
        // The seam pauses startup after the region exists and before the service group runs. Without the startup
        // trap, the default action of the signal ends gmemd (killed by it, socket file left behind if it was bound).
        let daemon = try DaemonProcess(
            arguments: [],
            environment: Subprocess.Environment.inherited.setting(["GMEMD_TEST_STARTUP_PAUSE": "1"])
        )
        try daemon.waitUntilCatching(signal)
        daemon.send(signal: signal)
        let status = try? daemon.wait(timeout: .seconds(6))
        #expect(
            status == .exited(0),
            "\(status.map { "\($0)" } ?? "still running after 6 s"); stderr:\n\(daemon.stderr)"
        )
        #expect(!daemon.stderr.contains("READY"), "stderr:\n\(daemon.stderr)")
        #expect(!UnixSocket.socketFileExists(at: daemon.socketPath), "socket file left behind")
    }

    @Test("a second gmemd on a socket that is being served exits 1, naming the other daemon; the first serves on")
    func secondDaemonRefused() throws {
        let first = try Session()
        let second = try DaemonProcess(socketPath: first.daemon.socketPath)
        let status = try second.wait(timeout: .seconds(10))
        #expect(status == .exited(1))
        #expect(second.stderr.contains("another gmemd"), "stderr:\n\(second.stderr)")
        // The first daemon's socket file is untouched and it still accepts new clients.
        #expect(UnixSocket.socketFileExists(at: first.daemon.socketPath))
        let newcomer = try first.connect()
        try newcomer.requirePing()
        try first.connection.requirePing()
    }

    @Test("a stale socket file nobody listens on is replaced", arguments: ["killed daemon", "bound, never listened"])
    func staleSocketReplaced(origin: String) throws {
        let crashed = try DaemonProcess.start()
        if origin == "killed daemon" {
            crashed.kill()  // SIGKILL: no chance to remove its socket file.
        } else {
            try crashed.waitUntilCatching(SIGTERM)
            #expect(try crashed.terminate() == .exited(0))
            try UnixSocket.createStaleSocketFile(at: crashed.socketPath)
        }
        #expect(UnixSocket.socketFileExists(at: crashed.socketPath))
        #expect(throws: (any Error).self) { try RawConnection.connect(crashed.socketPath) }

        let successor = try DaemonProcess.start(socketPath: crashed.socketPath)
        let connection = try successor.connectWithHello()
        try connection.requirePing()
        try successor.waitUntilCatching(SIGTERM)
        #expect(try successor.terminate() == .exited(0), "stderr:\n\(successor.stderr)")
        #expect(!UnixSocket.socketFileExists(at: crashed.socketPath))
    }

    @Test("a path that is not a socket is never replaced: gmemd exits 1")
    func refusesNonSocket() throws {
        // A directory of our own, whose daemon is gone: SIGKILL, then replace its socket file by a regular file.
        let holder = try DaemonProcess.start()
        holder.kill()
        let path = holder.directory + "/gmemd.sock"
        unlink(path)
        let descriptor = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(descriptor >= 0)
        _ = write(descriptor, "keep", 4)
        close(descriptor)
        let daemon = try DaemonProcess(socketPath: path)
        #expect(try daemon.wait(timeout: .seconds(10)) == .exited(1), "stderr:\n\(daemon.stderr)")
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_size == 4, "the regular file was replaced")
    }

    @Test("the socket file gets --socket-mode, 0600 by default", arguments: [nil, "0660", "0666"] as [String?])
    func socketMode(mode: String?) throws {
        let daemon = try DaemonProcess.start(arguments: mode.map { ["--socket-mode", $0] } ?? [])
        let expected = mode_t(UInt32(mode ?? "0600", radix: 8)!)
        // gmemd listens first and sets the mode right after (a window of its own, see the report), so the mode is
        // polled rather than read once.
        try waitSocketMode(daemon.socketPath, expected)
        #expect(socketFileMode(daemon.socketPath) == expected)
    }
}

/// The permission bits of the socket file at `path`, or `nil` if it is not a socket.
func socketFileMode(_ path: String) -> mode_t? {
    var status = stat()
    guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { return nil }
    return status.st_mode & 0o7777
}

/// Waits until the socket file at `path` has the permission bits `mode`.
func waitSocketMode(_ path: String, _ mode: mode_t) throws {
    try waitUntil("\(path) to get mode \(String(mode, radix: 8))", timeout: .seconds(5)) {
        socketFileMode(path) == mode
    }
}
