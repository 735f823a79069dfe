#if canImport(Glibc)
import Glibc
#endif

// Plain blocking POSIX plumbing for the measuring loops: no async runtime, no
// Foundation. Every helper retries EINTR and throws ``SystemError`` otherwise.

/// A failed system call, with the errno it left.
struct SystemError: Error, CustomStringConvertible {
    var call: String
    var code: Int32

    init(_ call: String, _ code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    var description: String { "\(self.call): \(String(cString: strerror(self.code))) (errno \(self.code))" }
}

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

// MARK: Unix sockets

enum UnixSocket {
    /// Fills a sockaddr_un; throws when the path does not fit in sun_path.
    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw BenchError("socket path longer than \(capacity - 1) bytes: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    static func newSocket() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_UNIX)") }
        return fd
    }

    /// A connected, blocking stream socket.
    static func connect(path: String) throws -> Int32 {
        var address = try Self.address(path)
        let fd = try Self.newSocket()
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = SystemError("connect(\(path))")
            close(fd)
            throw error
        }
        return fd
    }

    /// A listening socket bound to `path` (an existing file there is removed first).
    static func listen(path: String, backlog: Int32 = 4096) throws -> Int32 {
        var address = try Self.address(path)
        unlink(path)
        let fd = try Self.newSocket()
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let error = SystemError("bind(\(path))")
            close(fd)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = SystemError("listen(\(path))")
            close(fd)
            throw error
        }
        return fd
    }
}

/// Writes all `count` bytes, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int) throws {
    var offset = 0
    while offset < count {
        let written = write(fd, base + offset, count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            throw SystemError("write")
        }
        offset += written
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, $0.count) }
}

/// One read(2): the byte count, 0 at end of stream.
@inline(__always)
func readSome(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ capacity: Int) throws -> Int {
    while true {
        let count = read(fd, base, capacity)
        if count >= 0 { return count }
        if errno == EINTR { continue }
        throw SystemError("read")
    }
}

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
            throw SystemError("pthread_create", status)
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

/// The whole of a small text file (procfs, sysfs), or nil.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
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
        throw SystemError("mkdtemp")
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
