/// A reference model of one connection, written from proto/PROTOCOL.md alone:
/// what the reply to each request must be, given what the connection and the
/// memory went through so far. The harness checks every reply against it.
///
/// It knows the guest memory's contents (acknowledged writes and discards),
/// each page's attribute and each GPC's target and validity. It does not
/// model protection-call failures: a 64 KiB region never exhausts the
/// kernel's map count, so -ENOMEM and partial progress are violations here.
struct ProtocolModel {
    struct Cache {
        var page: Int
        var offset: Int
        var length: Int
        var valid: Bool
    }

    enum Phase: Equatable {
        case awaitingHello
        case ready
        case closed
    }

    let pageSize: Int
    let folioSize: Int
    let regionSize: UInt64
    let directMap: Bool
    let readOnly: Bool
    let maxPayload: Int
    let maxCaches: Int

    var phase = Phase.awaitingHello
    var eventsGranted = false
    /// Contents of pages written since the last reset; absent pages are zero.
    var pages: [Int: [UInt8]] = [:]
    var sharedPages: Set<Int> = []
    var caches: [UInt64: Cache] = [:]
    var lastHandle: UInt64 = 0

    var pageCount: Int { Int(self.regionSize) / self.pageSize }

    // MARK: Memory contents

    func bytes(at address: Int, count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let page = (address + done) / self.pageSize
            let offset = (address + done) % self.pageSize
            let take = min(count - done, self.pageSize - offset)
            if let contents = self.pages[page] {
                for index in 0..<take { result[done + index] = contents[offset + index] }
            }
            done += take
        }
        return result
    }

    mutating func store(_ data: ArraySlice<UInt8>, at address: Int) {
        var done = 0
        var source = data.startIndex
        while done < data.count {
            let page = (address + done) / self.pageSize
            let offset = (address + done) % self.pageSize
            let take = min(data.count - done, self.pageSize - offset)
            var contents = self.pages[page] ?? [UInt8](repeating: 0, count: self.pageSize)
            for index in 0..<take { contents[offset + index] = data[source + index] }
            self.pages[page] = contents
            done += take
            source += take
        }
    }

    // MARK: Shapes and bounds

    /// `[gpa, gpa + len)` inside the region, as section 1 defines it.
    func inside(_ gpa: UInt64, _ length: UInt64) -> Bool {
        let (end, overflow) = gpa.addingReportingOverflow(length)
        return !overflow && end <= self.regionSize && gpa < self.regionSize
    }

    func aligned(_ value: UInt64) -> Bool { value % UInt64(self.pageSize) == 0 }

    /// A GPC window: 1 to page_size bytes within one page (else -EINVAL), then bounds (-EFAULT).
    func cacheWindowError(_ gpa: UInt64, _ length: UInt32) -> Int32? {
        guard length >= 1, Int(gpa % UInt64(self.pageSize)) + Int(length) <= self.pageSize else { return -Errno.EINVAL }
        guard self.inside(gpa, UInt64(length)) else { return -Errno.EFAULT }
        return nil
    }

    /// The references a page must show when nothing is in flight: its valid GPCs.
    func references(onPage page: Int) -> Int {
        self.caches.values.reduce(0) { $0 + ($1.valid && $1.page == page ? 1 : 0) }
    }

    /// Invalidates the valid caches on `pages`; returns their handles.
    mutating func invalidate(where predicate: (Int) -> Bool) -> Set<UInt64> {
        var handles: Set<UInt64> = []
        for (handle, cache) in self.caches where cache.valid && predicate(cache.page) {
            self.caches[handle]!.valid = false
            handles.insert(handle)
        }
        return handles
    }
}

/// The Linux errno values the protocol uses (section 8).
enum Errno {
    static let EPERM: Int32 = 1
    static let ENOENT: Int32 = 2
    static let EIO: Int32 = 5
    static let ENOMEM: Int32 = 12
    static let EACCES: Int32 = 13
    static let EFAULT: Int32 = 14
    static let EBUSY: Int32 = 16
    static let EINVAL: Int32 = 22
    static let ENOSPC: Int32 = 28
    static let EPROTO: Int32 = 71
    static let EMSGSIZE: Int32 = 90
    static let EPROTONOSUPPORT: Int32 = 93
    static let EOPNOTSUPP: Int32 = 95
    static let EALREADY: Int32 = 114
    static let ESTALE: Int32 = 116
}
