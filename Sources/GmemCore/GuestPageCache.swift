import Synchronization

/// Why a cache stopped being valid.
public enum InvalidationReason: UInt32, Sendable {
    /// A page of the cache changed between private and shared.
    case attributesChanged = 1
    /// The cache's page was discarded (hole-punched).
    case discarded = 2
}

/// A model of KVM's gfn_to_pfn_cache: a window of at most one page that stays
/// usable, without restore or zap, from activation until deactivation or
/// invalidation.
///
/// While valid, the cache holds one reference on its page. Invalidation drops
/// that reference at once (the kernel keeps the page mapped until the next
/// refresh; dropping it is safer), and reads and writes then fail with
/// ``Errno/stale`` until ``GuestMemory/refresh(_:to:length:)``.
///
/// Thread safety: `page`, `offset` and `length` change only in the owner's
/// calls (activate, refresh, deactivate), under the folio locks of the old and
/// the new page; `state` changes under the folio lock too, also from other
/// threads' conversions and discards. Reads and writes through the cache may
/// run on other threads than the owner's (a connection's rings): they read
/// `page` once as a hint, lock that page's folio, and retry if a refresh moved
/// the cache meanwhile (``GuestMemory/withCachePageLocked(_:_:)``).
public final class GuestPageCache: @unchecked Sendable {
    enum State: Equatable {
        case valid
        case invalidated(InvalidationReason)
        case inactive
    }

    /// Called after an invalidation, outside every lock, on the invalidating thread.
    public typealias InvalidationHandler = @Sendable (GuestPageCache, InvalidationReason) -> Void

    /// The page, stored atomically because lock-free readers use it as a hint.
    var page: Int {
        get { self.pageStorage.load(ordering: .relaxed) }
        set { self.pageStorage.store(newValue, ordering: .relaxed) }
    }
    private let pageStorage: Atomic<Int>
    var offset: Int
    var length: Int
    var state: State
    /// Where the cache sits in its page's list while valid, for O(1) removal.
    var listIndex = 0
    let onInvalidation: InvalidationHandler?

    /// The owner's identifier, for instance a wire handle. The core never reads it.
    public let tag: UInt64

    init(page: Int, offset: Int, length: Int, tag: UInt64, onInvalidation: InvalidationHandler?) {
        self.pageStorage = Atomic(page)
        self.offset = offset
        self.length = length
        self.state = .inactive
        self.tag = tag
        self.onInvalidation = onInvalidation
    }
}
