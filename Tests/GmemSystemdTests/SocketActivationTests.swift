import GmemProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension DaemonTests {
    @Suite("socket activation")
    struct SocketActivation {
        @Test("an inherited listening socket is served and no socket file is created")
        func inheritedSocket() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let unused = harness.directory.path + "/unused.sock"
            // The listening socket at harness.socketPath comes first, as systemd orders it.
            let daemon = try harness.start(
                arguments: ["--socket", unused, "--size", "8M", "--threads", "2"],
                listeningSocket: true
            )
            try harness.waitReady()
            let client = try WireClient(path: harness.socketPath, timeout: .seconds(2))
            let hello = try client.sayHello()
            #expect(hello.regionSize == ServiceHarness.regionSize)
            #expect(access(unused, F_OK) != 0, "gmemd created its own socket despite an inherited one")
            #expect(daemon.log.contains("inherited fd 3"))
            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
            // The socket file belongs to the manager: gmemd leaves it in place.
            #expect(access(harness.socketPath, F_OK) == 0)
        }

        @Test("a listening socket, the guest memfd and the state memfd arrive together")
        func socketAndStoreTogether() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let first = try harness.start(listeningSocket: true)
            try harness.waitReady()
            let regionID = try WireClient(path: harness.socketPath).sayHello().regionID
            first.signal(SIGTERM)
            #expect(first.waitForExit() == 0)
            harness.notify.clearMessages()

            // fd 3 the socket, 4 gmemd-guest, 5 gmemd-state.
            try harness.start(listeningSocket: true)
            try harness.waitReady()
            let hello = try WireClient(path: harness.socketPath).sayHello()
            #expect(hello.regionID == regionID)
            #expect(hello.regionFlags.contains(.recovered))
        }

        @Test(
            "systemd-socket-activate starts gmemd on the first connection",
            .enabled(
                if: access("/usr/bin/systemd-socket-activate", X_OK) == 0,
                "systemd-socket-activate is not installed"
            )
        )
        func systemdSocketActivate() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let unused = harness.directory.path + "/unused.sock"
            let daemon = try GmemdProcess(
                arguments: ["--socket", unused, "--size", "4M", "--threads", "1"],
                notifySocket: harness.notify.path,
                // It passes only TERM, PATH, USER and HOME through: NOTIFY_SOCKET needs -E.
                launcher: [
                    "/usr/bin/systemd-socket-activate", "--listen=\(harness.socketPath)", "--fdname=gmemd.socket",
                    "-E", "NOTIFY_SOCKET=\(harness.notify.path)",
                ],
                logPath: harness.directory.path + "/activate.log"
            )
            defer { daemon.kill() }
            let client = try WireClient(path: harness.socketPath)
            let hello = try client.sayHello()
            #expect(hello.regionSize == 4 << 20)
            #expect(harness.notify.waitFor { $0.has("READY=1") } != nil, "no READY=1; log:\n\(daemon.log)")
            #expect(access(unused, F_OK) != 0)
            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
        }
    }
}
