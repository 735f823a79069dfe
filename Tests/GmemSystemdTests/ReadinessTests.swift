import GmemProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tests that spawn the real gmemd run one at a time: they measure timing
/// (watchdog pings) on a two-core machine.
@Suite("gmemd under a service manager", .serialized)
struct DaemonTests {}

extension DaemonTests {
    @Suite("readiness, status, stopping and the fd store")
    struct Readiness {
        @Test("READY=1 comes once the socket serves; STATUS repeats; STOPPING=1 on SIGTERM")
        func readyStatusStopping() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let daemon = try harness.start()
            let ready = try harness.waitReady()
            // READY means serving: a connection succeeds at once, no retry needed.
            let fd = UnixAddress.connect(path: harness.socketPath)
            #expect(fd != nil, "READY=1 was sent before the socket accepted connections")
            if let fd { close(fd) }
            #expect(
                ready.fields["STATUS"]?.contains("8M memfd") == true,
                "first status: \(ready.fields["STATUS"] ?? "none")"
            )
            #expect(ready.fields["STATUS"]?.contains("0 connections") == true)

            // Fresh region: both memfds went into the store, named.
            let names = harness.notify.store.map(\.name)
            #expect(names == ["gmemd-guest", "gmemd-state"])
            let storeIndex = harness.notify.messages.firstIndex { $0.fields["FDNAME"] == "gmemd-state" }
            let readyIndex = harness.notify.messages.firstIndex { $0.has("READY=1") }
            #expect(storeIndex != nil && readyIndex != nil && storeIndex! < readyIndex!, "FDSTORE must precede READY=1")

            // STATUS is refreshed at least every 5 s and counts connections.
            let client = try WireClient(path: harness.socketPath)
            try client.sayHello()
            let start = ContinuousClock.now
            let updated = harness.notify.waitFor(timeout: .seconds(6)) { message in
                message.time > ready.time && message.fields["STATUS"]?.contains("1 connection;") == true
            }
            #expect(updated != nil, "no STATUS update naming the connection")
            #expect(ContinuousClock.now - start < .seconds(5))

            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
            let stopping = harness.notify.messages.first { $0.has("STOPPING=1") }
            #expect(stopping?.fields["STATUS"]?.hasPrefix("stopping") == true)
        }

        @Test("JOURNAL_STREAM naming stderr moves the log to the journal; refusals still reach stderr")
        func journalStream() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            // The log file exists before the daemon starts, so its device and inode are known.
            let logPath = harness.directory.path + "/gmemd-0.log"
            close(open(logPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644))
            var status = stat()
            stat(logPath, &status)
            let daemon = try harness.start(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"])
            try harness.waitReady()
            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
            #expect(!daemon.log.contains("serving"), "log lines went to stderr instead of the journal:\n\(daemon.log)")
        }

        @Test("without NOTIFY_SOCKET gmemd serves as before and sends nothing")
        func withoutServiceManager() throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let socket = directory.path + "/plain.sock"
            let daemon = try GmemdProcess(
                arguments: ["--socket", socket, "--size", "4M", "--threads", "1"],
                notifySocket: nil,
                logPath: directory.path + "/plain.log"
            )
            defer { daemon.kill() }
            let client = try WireClient(path: socket)
            let hello = try client.sayHello()
            #expect(hello.regionSize == 4 << 20)
            #expect(!hello.regionFlags.contains(.recovered))
            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
            #expect(access(socket, F_OK) != 0, "gmemd removes the socket file it created")
        }
    }
}
