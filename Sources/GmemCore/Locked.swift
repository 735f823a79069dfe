#if canImport(Glibc)
import Glibc
#endif

/// A value that is only read or changed with a pthread mutex held.
///
/// gmemd uses this instead of `Synchronization.Mutex`. On Linux that type
/// locks with atomics and futex calls inside the standard library, which is
/// not built with ThreadSanitizer, so TSan sees no ordering between two
/// critical sections and reports every value it guards as a race (reproduced
/// with four threads appending to a `Mutex<[Int]>`). TSan intercepts
/// `pthread_mutex_lock`, so it checks what a `Locked` guards instead of
/// crying wolf; scripts/sanitizers.sh depends on that.
///
/// Not for the hot path: the per-folio locks of ``PageTable`` are plain
/// pthread mutexes in the chunk's own storage.
public final class Locked<Value> {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
        self.mutex = .allocate(capacity: 1)
        pthread_mutex_init(self.mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(self.mutex)
        self.mutex.deallocate()
    }

    /// Runs `body` with the mutex held. `body` must not call `withLock` on the
    /// same instance: the mutex is not recursive.
    @inlinable
    public func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        self.lock()
        defer { self.unlock() }
        return try body(&self.value)
    }

    @usableFromInline
    func lock() { pthread_mutex_lock(self.mutex) }

    @usableFromInline
    func unlock() { pthread_mutex_unlock(self.mutex) }
}

// Every access to `value` happens in withLock, with the mutex held.
extension Locked: @unchecked Sendable where Value: Sendable {}
