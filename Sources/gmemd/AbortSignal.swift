#if canImport(Glibc)
import Glibc
#endif

/// Makes SIGABRT end gmemd at once, as systemd's watchdog expects.
///
/// systemd sends SIGABRT when WATCHDOG=1 stops coming. The Swift runtime's
/// crash handler catches SIGABRT to start its backtracer; under the unit's
/// hardening (MemoryDenyWriteExecute=) that fails, the handler returns, and
/// gmemd carried on until TimeoutAbortSec= ran out. The same happened to a
/// plain `kill -ABRT`. This handler names the signal on stderr (the journal
/// under systemd) and lets the default action end the process with a core
/// dump where cores are enabled (guest memory is MADV_DONTDUMP). Faults
/// (SIGSEGV, SIGILL, ...) keep the runtime's backtracer.
enum AbortSignal {
    static func terminateOnAbort() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = gmemdAbortHandler
        sigemptyset(&action.sa_mask)
        sigaction(SIGABRT, &action, nil)
    }
}

/// Async-signal-safe: write(2) of a static string, signal(2), raise(3).
private let gmemdAbortHandler: @convention(c) (Int32) -> Void = { number in
    let message: StaticString = "gmemd: SIGABRT (watchdog timeout or abort): terminating\n"
    _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
    signal(number, SIG_DFL)
    // Blocked while this handler runs; delivered with the default action on return.
    raise(number)
}
