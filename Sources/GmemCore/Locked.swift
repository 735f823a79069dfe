#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex, for locks that guard no single value (``PageTable``'s
/// slot installs) and as the lock of ``Locked``.
///
/// gmemd uses pthread mutexes instead of `Synchronization.Mutex`. On Linux
/// that type locks with atomics and futex calls inside the standard library,
/// which is not built with ThreadSanitizer, so TSan sees no ordering between
/// two critical sections and reports every value it guards as a race
/// (reproduced with four threads appending to a `Mutex<[Int]>`: three or four
/// reports a run). TSan intercepts `pthread_mutex_lock`, so it checks what
/// these locks guard instead of crying wolf; scripts/sanitizers.sh relies on
/// that.
///
/// Not for the hot path: the per-folio locks of ``PageTable`` are plain
/// pthread mutexes in the chunk's own storage.
public final class PThreadLock: @unchecked Sendable {  // The mutex is only used through pthread calls.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        self.mutex = .allocate(capacity: 1)
        pthread_mutex_init(self.mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(self.mutex)
        self.mutex.deallocate()
    }

    /// Runs `body` with the mutex held. Not recursive: `body` must not take
    /// the same lock again.
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        self.lock()
        defer { self.unlock() }
        return try body()
    }

    @usableFromInline
    func lock() { pthread_mutex_lock(self.mutex) }

    @usableFromInline
    func unlock() { pthread_mutex_unlock(self.mutex) }
}

/// A value that is only read or changed with a ``PThreadLock`` held.
public final class Locked<Value> {
    @usableFromInline let lock = PThreadLock()
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the lock held. Not recursive: `body` must not call
    /// `withLock` on the same instance.
    @inlinable
    public func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try self.lock.withLock { () throws(Failure) -> Result in try body(&self.value) }
    }
}

// Every access to `value` happens in withLock, with the lock held.
extension Locked: @unchecked Sendable where Value: Sendable {}
