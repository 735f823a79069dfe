//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// HarnessTests: the GmemTesting library's own pieces, so that a daemon failure is never a harness bug.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("GmemTesting harness")
struct HarnessTests {
    static let mapsSample = """
        55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234                       /usr/bin/gmemd
        7f0000000000-7f0000002000 ---s 00000000 00:01 99                         /memfd:gmemd-guest (deleted)
        7f0000002000-7f0000003000 rw-s 00002000 00:01 99                         /memfd:gmemd-guest (deleted)
        7f0000003000-7f0000005000 ---s 00003000 00:01 99                         /memfd:gmemd-guest (deleted)
        7f0000005000-7f0000006000 r--s 00005000 00:01 99                         /memfd:gmemd-guest (deleted)
        7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
        7ffc00030000-7ffc00031000 rw-p 00000000 00:00 0
        """

    @Test("maps parsing: pages by file offset across split VMAs")
    func parseMaps() throws {
        let protections = try ProcMaps.protections(mapsText: Self.mapsSample, pages: 0..<6, pageSize: 4096)
        #expect(protections.map(\.description) == ["---s", "---s", "rw-s", "---s", "---s", "r--s"])
        #expect(protections.map(\.isAccessible) == [false, false, true, false, false, true])
        #expect(protections[2] == .readWriteShared && protections[0] == .noneShared)
        #expect(throws: GmemTestingError.self) {
            try ProcMaps.protections(mapsText: Self.mapsSample, pages: 5..<7, pageSize: 4096)
        }
        #expect(throws: GmemTestingError.self) {
            try ProcMaps.protections(mapsText: "", pages: 0..<1, pageSize: 4096)
        }
    }

    @Test("maps parsing: two different files with the guest's name are ambiguous")
    func ambiguousMaps() {
        let text =
            Self.mapsSample + "\n7f1000000000-7f1000001000 rw-s 00000000 00:01 100 /memfd:gmemd-guest (deleted)\n"
        #expect(throws: GmemTestingError.self) {
            try ProcMaps.protections(mapsText: text, pages: 0..<1, pageSize: 4096)
        }
    }

    @Test("the gmemd binary is found next to the test bundle and the daemon's mapping is visible")
    func locateAndInspect() throws {
        let binary = try ExecutableLocator.gmemd()
        #expect(binary.hasSuffix("/gmemd"))
        let daemon = try DaemonProcess.start()
        #expect(daemon.isRunning && daemon.pid > 0)
        let pages = Int(regionSize / pageSize)
        let protections = try daemon.mapsProtections(ofRegionIn: 0..<pages)
        #expect(protections.count == pages)
        #expect(protections.allSatisfy { $0 == .noneShared })
        #expect(daemon.stderr.contains("serving"), "\(daemon.stderr)")
        try daemon.waitUntilCatching(SIGTERM)
        #expect(try daemon.disposition(of: SIGTERM) == .caught)
        #expect(try daemon.disposition(of: SIGUSR2) == .default)
        #expect(try daemon.terminate() == .exited(0))
        #expect(!daemon.isRunning)
        #expect(throws: GmemTestingError.self) { try daemon.mapsProtections(ofRegionIn: 0..<1) }
    }

    @Test("readiness is detected without connecting: the daemon has accepted no connection yet")
    func readinessLeavesNoTrace() throws {
        let daemon = try DaemonProcess.start()
        #expect(UnixSocket.isListening(at: daemon.socketPath) == true)
        #expect(UnixSocket.isListening(at: daemon.directory + "/nothing.sock") == false)
        let connection = try daemon.connectWithHello()
        let stats = try connection.statistics()
        #expect(stats["connections_total"] == 1)
        #expect(stats["connections"] == 1)
    }

    @Test("a daemon that cannot start is reported with its exit status and stderr")
    func failedStart() {
        do {
            _ = try DaemonProcess.start(arguments: ["--max-gpcs", "0"])
            Issue.record("gmemd accepted --max-gpcs 0")
        } catch let error as GmemTestingError where error.code == .daemonExited {
            #expect(error.exitStatus != nil && error.exitStatus != .exited(0))
            #expect(error.stderr?.contains("max-gpcs") == true, "\(error)")
            #expect(error.description.contains("GmemTesting/DaemonProcess.swift:"), "prints where it was raised")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("subprocesses: exit codes, signals, piped output, timeouts")
    func subprocesses() throws {
        let shell = "/bin/sh"
        let exiting = try Subprocess(executable: shell, arguments: ["-c", "echo hello; exit 3"], standardOutput: .pipe)
        #expect(try exiting.readOutput(timeout: .seconds(5)) == "hello\n")
        #expect(try exiting.wait(timeout: .seconds(5)) == .exited(3))

        let sleeper = try Subprocess(
            executable: shell,
            arguments: ["-c", "echo up; exec sleep 30"],
            standardOutput: .pipe
        )
        #expect(try sleeper.readOutput(until: "up", timeout: .seconds(5)).hasPrefix("up"))
        #expect(throws: GmemTestingError.self) { try sleeper.wait(timeout: .milliseconds(50)) }
        sleeper.send(signal: SIGTERM)
        #expect(try sleeper.wait(timeout: .seconds(5)) == .signaled(SIGTERM))
        #expect(ExitStatus(waitStatus: 0x0100) == .exited(1))
        #expect(ExitStatus(waitStatus: 9) == .signaled(9))
    }

    @Test("a child's environment can leave out named variables and keeps every other one")
    func environmentRemoval() throws {
        var parent: Set<String> = []
        var cursor = environ
        while let entry = cursor.pointee {
            parent.insert(String(String(cString: entry).prefix { $0 != "=" }))
            cursor += 1
        }
        #expect(parent.contains("PATH"), "the test runner has no PATH to remove")
        let env = try Subprocess(
            executable: "/usr/bin/env",
            arguments: ["-0"],
            standardOutput: .pipe,
            environment: .inherited(removing: ["PATH"])
        )
        let output = try env.readOutput(timeout: .seconds(5))
        #expect(try env.wait(timeout: .seconds(5)) == .exited(0))
        let child = Set(output.split(separator: "\0").map { String($0.prefix { $0 != "=" }) })
        #expect(child == parent.subtracting(["PATH"]))
        #expect(Subprocess.Environment.isolated.removed.isSuperset(of: ["LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"]))
    }

    @Test("a child gets variables set for it and the passed descriptors at 3, 4, and no others")
    func environmentAndDescriptors() throws {
        let first = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let second = open("/proc/version", O_RDONLY | O_CLOEXEC)
        defer {
            close(first)
            close(second)
        }
        let child = try Subprocess(
            executable: "/bin/sh",
            arguments: [
                "-c",
                #"printf '%s|%s|' "$GMEM_MARK" "$PATH"; readlink /proc/self/fd/3 /proc/self/fd/4; if [ -e /proc/$$/fd/5 ]; then echo leaked; fi"#,
            ],
            standardOutput: .pipe,
            environment: Subprocess.Environment.inherited(removing: ["GMEM_MARK"]).setting([
                "GMEM_MARK": "set", "PATH": "/bin:/usr/bin",
            ]),
            inheriting: [second, first]
        )
        let output = try child.readOutput(timeout: .seconds(5))
        #expect(try child.wait(timeout: .seconds(5)) == .exited(0))
        #expect(output == "set|/bin:/usr/bin|/proc/version\n/dev/null\n")
    }

    @Test("untimed socket helpers: listen over a stale file, connect, writeAll, readSome to end of stream")
    func blockingSocketHelpers() throws {
        var template = Array("/tmp/gmem-harness.XXXXXX".utf8CString)
        let directory = try #require(
            template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        )
        let path = directory + "/raw.sock"
        defer { rmdir(directory) }
        try UnixSocket.createStaleSocketFile(at: path)
        let listener = try UnixSocket.listen(at: path, backlog: 4)
        defer { close(listener) }
        #expect(UnixSocket.isListening(at: path) == true)
        let client = try UnixSocket.connect(to: path)
        let server = accept(listener, nil, nil)
        defer { close(server) }
        #expect(server >= 0)
        let sent = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try UnixSocket.writeAll(client, sent)
        close(client)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1000)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try UnixSocket.readSome(server, into: $0) }
            if count == 0 { break }
            received += chunk[..<count]
        }
        #expect(received == sent)
        #expect(throws: GmemTestingError.self) {
            try chunk.withUnsafeMutableBytes { try UnixSocket.readSome(-1, into: $0) }
        }
        unlink(path)
    }

    @Test("a pipelined connection: a burst of requests in one write, replies read in place in order, GPC helpers")
    func pipelinedConnection() throws {
        let daemon = try DaemonProcess.start()
        let connection = try PipelinedConnection(path: daemon.socketPath, receiveCapacity: 4096)
        #expect(connection.hello.regionSize == 16 << 20)
        var batch: [UInt8] = []
        var ids: [UInt32] = []
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        // 300 replies of 24 bytes: more than the 4 KiB buffer holds at once, so it is compacted while reading.
        for _ in 0..<300 { ids.append(try bytes.withUnsafeBytes { try connection.append(.ping($0), to: &batch) }) }
        try connection.send(batch)
        for id in ids {
            let (header, payload) = try connection.readFrame()
            #expect(header.id == id && header.opcode == .ping && header.status == 0)
            #expect(Array(payload) == bytes)
        }
        let pageSize = UInt64(connection.hello.pageSize)
        let handles = try connection.activateGPCs((0..<5).map { (gpa: $0 * pageSize, length: 64) }, window: 2)
        #expect(Set(handles).count == 5)
        let stats = try connection.stats()
        #expect(stats.entries.first { $0.name == "gpc_active" }?.value == 5)
        #expect(try connection.pageIsPrivate(gpa: pageSize + 12))
        #expect(throws: GmemTestingError.self) { try connection.callSucceeding(.read(gpa: 1 << 40, length: 8)) }
        daemon.kill()
        #expect(throws: GmemTestingError.self) { try connection.readFrame() }
    }

    @Test("a daemon's directory goes with it, files a test put there included")
    func directoryRemoval() throws {
        var directory = ""
        do {
            let daemon = try DaemonProcess.start()
            directory = daemon.directory
            close(open(directory + "/data.bin", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644))
            #expect(access(directory + "/data.bin", F_OK) == 0)
        }
        #expect(access(directory, F_OK) != 0, "\(directory) is left behind")
    }

    @Test("a benchmark's daemon: its own --size, start-up timed to HELLO, status while it runs, stop() with SIGTERM")
    func benchmarkDaemon() throws {
        let daemon = try DaemonProcess(arguments: ["--size", "8M"], size: nil, environment: .isolated)
        #expect(daemon.arguments.filter { $0 == "--size" }.count == 1)
        let startup = try daemon.waitUntilAnswering(timeout: .seconds(10))
        #expect(startup > 0 && startup < 10_000_000_000)
        let hello = try daemon.connect().hello()
        #expect(hello.regionSize == 8 << 20)
        let status = try #require(daemon.status())
        #expect(status.vmRSS > 0 && status.threads >= 2, "\(status)")
        #expect(daemon.logTail().contains("serving"), "\(daemon.logTail())")
        #expect(daemon.stop() == .exited(0))
        #expect(daemon.status() == nil)
        #expect(daemon.stop() == .exited(0), "a second stop reports the same end")
    }

    @Test("/proc/PID/status is parsed into bytes; missing fields stay 0")
    func processStatusParsing() {
        let status = ProcessStatus(parsing: "Name:\tgmemd\nVmRSS:\t  2048 kB\nRssShmem:\t 12 kB\nThreads:\t3\n")
        #expect(status == ProcessStatus(vmRSS: 2 << 20, rssShmem: 12 << 10, threads: 3))
    }

    @Test("an explicit gmemd path must be an executable file")
    func explicitExecutable() {
        #expect(throws: GmemTestingError.self) { try ExecutableLocator.gmemd(explicit: "/nonexistent/gmemd") }
        #expect((try? ExecutableLocator.gmemd(explicit: "/bin/sh")) == "/bin/sh")
    }

    @Test("raw connections: a closed socket reads as end of stream, a silent one times out")
    func rawConnection() throws {
        let daemon = try DaemonProcess.start()
        let connection = try daemon.connect()
        let started = ContinuousClock.now
        #expect(throws: GmemTestingError.self) { try connection.receiveFrame(timeout: .milliseconds(100)) }
        #expect(started.duration(to: .now) >= .milliseconds(90))
        #expect(try connection.waitForClose(timeout: .milliseconds(50)) == false)
        daemon.kill()
        #expect(try connection.receiveFrame(timeout: .seconds(5)) == nil)
    }
}
