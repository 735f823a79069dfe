import GmemErrno
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

// Plain blocking POSIX plumbing for the measuring loops: no async runtime, no
// Foundation. Socket calls are GmemTesting's (UnixSocket), which retry EINTR.

/// A problem the benchmark reports as is (bad reply, refused setup, ...).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no system call).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline` (nanoseconds).
func sleepUntil(_ deadline: UInt64) {
    var target = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, nil) == EINTR {}
}

func sleepNanos(_ nanos: UInt64) { sleepUntil(monotonicNanos() + nanos) }

// Sockets (connect, listen, blocking writes and reads) are GmemTesting's UnixSocket.

// MARK: Threads

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A joinable POSIX thread running `body`. `stackSize` 0 keeps the default.
struct PosixThread {
    let handle: pthread_t

    init(stackSize: Int = 0, _ body: @escaping @Sendable () -> Void) throws {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if stackSize > 0 { pthread_attr_setstacksize(&attributes, stackSize) }
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(
            &handle,
            &attributes,
            { context in
                Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().body()
                return nil
            },
            context
        )
        guard status == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw GmemError.systemCall("pthread_create", errno: status)
        }
        self.handle = handle
    }

    func join() { pthread_join(self.handle, nil) }

    /// Lets the thread run to its end without anyone joining it.
    func detach() { pthread_detach(self.handle) }
}

/// A pthread barrier on stable memory.
final class Barrier: @unchecked Sendable {
    private let barrier: UnsafeMutablePointer<pthread_barrier_t>

    init(count: Int) {
        self.barrier = .allocate(capacity: 1)
        pthread_barrier_init(self.barrier, nil, UInt32(count))
    }

    deinit {
        pthread_barrier_destroy(self.barrier)
        self.barrier.deallocate()
    }

    func wait() { pthread_barrier_wait(self.barrier) }
}

// MARK: Processes

/// The whole of a small text file (procfs, sysfs), or nil: GmemTesting's reader, which retries EINTR.
func readTextFile(_ path: String) -> String? {
    try? ProcMaps.readFile(path)
}

/// Lines in /proc/PID/maps: the process's VMA count.
func mappingCount(pid: pid_t) -> Int? {
    guard let text = readTextFile("/proc/\(pid)/maps") else { return nil }
    return text.utf8.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
}

/// A fresh private directory under $TMPDIR or /tmp.
func makeTemporaryDirectory(prefix: String) throws -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
    guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw GmemError.systemCall("mkdtemp", errno: errno)
    }
    return String(cString: result)
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit (1,000 idle connections need it); children inherit it.
func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// Whether this binary was built without optimisation.
var isDebugBuild: Bool {
    #if DEBUG
    return true
    #else
    return false
    #endif
}

/// Prints to stderr.
func warn(_ message: String) {
    var text = message + "\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Prints to stdout and flushes.
func emit(_ message: String, terminator: String = "\n") {
    print(message, terminator: terminator)
    fflush(nil)
}
