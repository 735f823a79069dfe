import GmemTesting

// The gmemd that `run --spawn` and `suite` measure is started by GmemTesting's DaemonProcess, the harness of the
// end-to-end tests, with the benchmark's choices: the binary of this build, its own --size, warnings only in the log,
// no service-manager variables, and start-up timed to the HELLO reply.

/// The gmemd to measure: `--gmemd PATH`, else the one next to gmem-bench (never `$GMEMD_BINARY` or another build).
func locateGmemd(_ explicit: String?) throws -> String {
    do {
        return try ExecutableLocator.gmemd(explicit: explicit, search: .besideExecutable)
    } catch let error as GmemTestingError where error.code == .binaryNotFound {
        let searched = error.searched
        if let explicit { throw BenchError("--gmemd \(explicit) is not an executable file") }
        guard let candidate = searched.first else {
            throw BenchError("cannot locate this executable; pass --gmemd PATH")
        }
        throw BenchError(
            "no gmemd next to gmem-bench (\(candidate)); build it (swift build -c release) or pass --gmemd PATH"
        )
    }
}

/// Whether the path looks like a debug build product.
func looksLikeDebugBuild(_ path: String) -> Bool {
    path.contains("/debug/") || path.hasSuffix("/debug")
}

/// Spawns `executable --socket <tmp>/gmemd.sock --log-level warning <arguments>` (`arguments` carry the --size) and
/// waits until it answers HELLO; returns the daemon and the nanoseconds from posix_spawn to the reply (target 7a).
///
/// The caller stops the daemon (DaemonProcess.stop: SIGTERM, SIGKILL after 5 s) when its measurement is done.
func spawnGmemd(_ executable: String, _ arguments: [String]) throws -> (daemon: DaemonProcess, startup: UInt64) {
    let daemon = try DaemonProcess(
        executable: executable,
        arguments: ["--log-level", "warning"] + arguments,
        size: nil,
        environment: .isolated
    )
    do {
        let startup = try daemon.waitUntilAnswering(timeout: .seconds(30))
        return (daemon, startup)
    } catch let error as GmemTestingError where error.code == .daemonExited {
        throw BenchError(
            "gmemd exited during start-up (\(error.exitStatus.map { "\($0)" } ?? "status unknown")): \(daemon.logTail())"
        )
    } catch let error as GmemTestingError where error.code == .timedOut {
        throw BenchError("gmemd did not answer within 30 s: \(daemon.logTail())")
    }
}
