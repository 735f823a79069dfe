import GmemCore
import Synchronization

/// A connection's GPCs by wire handle.
///
/// The event loop activates, refreshes and deactivates them; the pollers of
/// the connection's rings look them up for GPC_READ, GPC_WRITE and
/// GPC_ATOMIC. A lookup holds the mutex only to find the cache: the core
/// orders the access itself against refreshes and invalidations under the
/// page's folio lock.
final class CacheTable: Sendable {
    private let caches = Mutex<[UInt64: GuestPageCache]>([:])

    subscript(handle: UInt64) -> GuestPageCache? {
        self.caches.withLock { $0[handle] }
    }

    var count: Int { self.caches.withLock { $0.count } }

    func insert(_ cache: GuestPageCache, handle: UInt64) {
        self.caches.withLock { $0[handle] = cache }
    }

    func remove(handle: UInt64) -> GuestPageCache? {
        self.caches.withLock { $0.removeValue(forKey: handle) }
    }

    /// Empties the table, returning what it held.
    func removeAll() -> [GuestPageCache] {
        self.caches.withLock { caches in
            defer { caches.removeAll() }
            return Array(caches.values)
        }
    }
}
