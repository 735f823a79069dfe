//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// TestDaemon: a real gmemd process on a socket in a fresh temporary directory.
//
//===----------------------------------------------------------------------===//

import Foundation
import GmemClient
import GmemProtocol
import GmemTesting
import Testing

/// A gmemd process for one test, listening on `<fresh dir>/gmemd.sock`: GmemTesting's ``DaemonProcess`` (which
/// removes the directory and kills a daemon left running when it is released) with the client tests' defaults.
final class TestDaemon: Sendable {
    let daemon: DaemonProcess

    var directory: String { self.daemon.directory }
    var socketPath: String { self.daemon.socketPath }

    private init(daemon: DaemonProcess) {
        self.daemon = daemon
    }

    /// Starts gmemd with a small region and waits until its socket answers HELLO (at most 10 s).
    ///
    /// - Parameter arguments: extra gmemd options, e.g. `["--max-payload", "4K"]`.
    static func start(size: String = "16M", _ arguments: [String] = []) async throws -> TestDaemon {
        let daemon = try DaemonProcess(
            executable: try TestBinaries.path(of: "gmemd"),
            arguments: ["--threads", "1", "--log-level", "warning"] + arguments,
            size: size,
            environment: .isolated
        )
        try daemon.waitUntilAnswering(timeout: .seconds(10), interval: .milliseconds(20))
        return TestDaemon(daemon: daemon)
    }

    /// What gmemd logged so far.
    var log: String { self.daemon.stderr }

    /// Stops gmemd (SIGTERM, then SIGKILL after 3 s); the directory goes with the last reference.
    func stop() {
        self.daemon.stop(timeout: .seconds(3))
    }

    /// Connects a client to this daemon.
    func connect(features: HelloReply.Features = .events) async throws -> GmemClient {
        try await GmemClient.connect(path: self.socketPath, features: features)
    }

    /// Runs the real gmemctl against this daemon: `gmemctl ARGUMENTS --socket PATH`.
    func gmemctl(_ arguments: [String], input: Data? = nil) async throws -> ProcessResult {
        try await runProcess(
            try TestBinaries.path(of: "gmemctl"),
            arguments + ["--socket", self.socketPath],
            input: input
        )
    }
}

/// Runs `body` with a fresh daemon and stops the daemon afterwards, whatever happens.
func withDaemon<T>(
    size: String = "16M",
    _ arguments: [String] = [],
    _ body: (TestDaemon) async throws -> T
) async throws -> T {
    let daemon = try await TestDaemon.start(size: size, arguments)
    defer { daemon.stop() }
    return try await body(daemon)
}

/// Runs `body` with a fresh daemon and one client connected to it; closes both afterwards.
func withClient<T>(
    size: String = "16M",
    _ arguments: [String] = [],
    _ body: (GmemClient, TestDaemon) async throws -> T
) async throws -> T {
    try await withDaemon(size: size, arguments) { daemon in
        let client = try await daemon.connect()
        do {
            let result = try await body(client, daemon)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}

/// Expects `body` to throw a ``GmemClientError`` with `errno`, and returns it.
@discardableResult
func expectClientError(
    _ errno: Errno,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> GmemClientError? {
    do {
        try await body()
        Issue.record("expected \(errno.name), but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as GmemClientError {
        #expect(error.errno == errno, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected GmemClientError \(errno.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
