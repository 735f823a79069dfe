import Dispatch
import GmemCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Delivers SIGTERM and SIGINT to a handler on a dispatch queue instead of
/// interrupting whatever thread the kernel picks.
///
/// A real signal handler writes the signal's number into a pipe (the
/// self-pipe trick) and a read source on the pipe calls `handler`. Unlike
/// SIG_IGN plus a signal source, no signal can be lost: whichever thread the
/// kernel delivers it to runs the handler, and the byte waits in the pipe
/// until it is read, even if that happens before the read source is registered.
final class SignalWatcher: @unchecked Sendable {  // Immutable; DispatchSource is thread-safe.
    private let source: any DispatchSourceRead
    private let readEnd: Int32

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        var ends: [Int32] = [-1, -1]
        _ = ends.withUnsafeMutableBufferPointer { pipe($0.baseAddress) }
        for end in ends {
            // Non-blocking: a full pipe must never block a signal handler. Close-on-exec: nothing inherits it.
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        self.readEnd = ends[0]
        signalPipeWriteEnd.store(ends[1], ordering: .releasing)
        let queue = DispatchQueue(label: "gmemd.signals")
        self.source = DispatchSource.makeReadSource(fileDescriptor: ends[0], queue: queue)
        let readEnd = ends[0]
        self.source.setEventHandler {
            var numbers = [UInt8](repeating: 0, count: 16)
            // Drains what the signal handler wrote; each byte is one signal.
            let count = numbers.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            for number in numbers.prefix(max(count, 0)) { handler(Int32(number)) }
        }
        self.source.resume()
        for number in signals {
            // Installed last: from here on every SIGTERM/SIGINT reaches the pipe.
            signal(number, gmemdSignalHandler)
        }
    }

    func cancel() {
        self.source.cancel()
    }
}

/// Holds a SIGTERM/SIGINT that arrives while gmemd is still starting (a
/// manager may stop a service the moment its socket answers) and acts on it
/// once the server serves and ``arm(_:)`` supplies the shutdown.
final class ShutdownGate: Sendable {
    private let state = Locked<(pending: Int32?, action: (@Sendable (Int32) -> Void)?)>((nil, nil))

    /// Called by the signal watcher for every signal.
    func signalled(_ number: Int32) {
        let action = self.state.withLock { state -> (@Sendable (Int32) -> Void)? in
            if state.action == nil && state.pending == nil { state.pending = number }
            return state.action
        }
        action?(number)
    }

    /// Installs the shutdown; runs it at once for a signal that came early.
    func arm(_ action: @escaping @Sendable (Int32) -> Void) {
        let pending = self.state.withLock { state -> Int32? in
            state.action = action
            return state.pending
        }
        if let pending { action(pending) }
    }
}

/// The pipe the signal handler writes to; -1 until a watcher exists.
private let signalPipeWriteEnd = Atomic<Int32>(-1)

/// Async-signal-safe: one atomic load and one write(2).
private let gmemdSignalHandler: @convention(c) (Int32) -> Void = { number in
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWriteEnd.load(ordering: .acquiring), &byte, 1)
    errno = saved
}

/// The environment as a dictionary, without Foundation.
enum Environment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

/// Writes to standard error without buffering.
enum FileHandleStandardError {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            _ = Glibc.write(2, bytes.baseAddress, bytes.count)
        }
    }
}
