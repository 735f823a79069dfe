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
import Testing

/// A gmemd process for one test, listening on `<fresh dir>/gmemd.sock`.
///
/// `@unchecked Sendable`: `Process` is only touched by ``start(_:)`` and ``stop()``; the other fields are
/// immutable.
final class TestDaemon: @unchecked Sendable {
    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    let directory: String
    let socketPath: String
    private let process: Process
    private let logPath: String

    private init(directory: String, process: Process, logPath: String) {
        self.directory = directory
        self.socketPath = directory + "/gmemd.sock"
        self.process = process
        self.logPath = logPath
    }

    /// Starts gmemd with a small region and waits until its socket answers HELLO.
    ///
    /// - Parameter arguments: extra gmemd options, e.g. `["--max-payload", "4K"]`.
    static func start(size: String = "16M", _ arguments: [String] = []) async throws -> TestDaemon {
        let executable = try TestBinaries.path(of: "gmemd")
        let directory = try makeTemporaryDirectory(prefix: "gmemd-test")
        let logPath = directory + "/gmemd.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            ["--socket", directory + "/gmemd.sock", "--size", size, "--threads", "1", "--log-level", "warning"]
            + arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        let daemon = TestDaemon(directory: directory, process: process, logPath: logPath)
        do {
            try await daemon.waitUntilServing()
        } catch {
            daemon.stop()
            throw error
        }
        return daemon
    }

    /// Polls the socket with real connections until HELLO succeeds (at most 10 s).
    private func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            guard self.process.isRunning else {
                throw StartFailure(description: "gmemd exited with \(self.process.terminationStatus): \(self.log)")
            }
            if let client = try? await GmemClient.connect(path: self.socketPath, features: []) {
                await client.close()
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw StartFailure(description: "gmemd did not answer on \(self.socketPath) within 10 s: \(self.log)")
    }

    /// What gmemd logged so far.
    var log: String {
        String(decoding: FileManager.default.contents(atPath: self.logPath) ?? Data(), as: UTF8.self)
    }

    /// Stops gmemd (SIGTERM, then SIGKILL after 3 s) and removes its directory.
    func stop() {
        if self.process.isRunning {
            self.process.terminate()
            let deadline = ContinuousClock.now + .seconds(3)
            while self.process.isRunning && ContinuousClock.now < deadline { usleep(5_000) }
            if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
            self.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: self.directory)
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
