/// What a page looks like to an observer: the answer to PAGE_STATE.
public struct PageState: Hashable, Sendable, CustomStringConvertible {
    public var count: UInt32
    public var isPrivate: Bool
    public var isAccessible: Bool

    public init(count: UInt32, isPrivate: Bool, isAccessible: Bool) {
        self.count = count
        self.isPrivate = isPrivate
        self.isAccessible = isAccessible
    }

    public var description: String {
        "\(self.isPrivate ? "private" : "shared") \(self.isAccessible ? "accessible" : "inaccessible") count=\(self.count)"
    }
}

extension GuestMemory {
    /// The state of `pageCount` pages from the page-aligned `address`, each
    /// read under its folio lock.
    public func pageStates(at address: GuestPhysicalAddress, pageCount: Int) throws(GmemError) -> [PageState] {
        guard pageCount > 0 else {
            _ = try self.geometry.pages(address: address.rawValue, count: 0)
            guard self.geometry.isPageAligned(address.rawValue) else {
                throw GmemError(.invalidArgument, "\(address) is not page-aligned")
            }
            return []
        }
        let pages = try self.geometry.alignedPages(
            address: address.rawValue,
            size: UInt64(pageCount) * UInt64(self.geometry.pageSize)
        )
        var states: [PageState] = []
        states.reserveCapacity(pageCount)
        for chunkIndex in self.geometry.chunk(of: pages.lowerBound)...self.geometry.chunk(of: pages.upperBound - 1) {
            let run = self.geometry.chunkPages(chunkIndex).clamped(to: pages)
            guard self.table.existingChunk(chunkIndex) != nil else {
                let shared = self.table.uniformMarker(chunkIndex) == PageTable.uniformShared
                let state = PageState(count: 0, isPrivate: !shared, isAccessible: shared || !self.table.protectsPages)
                states.append(contentsOf: repeatElement(state, count: run.count))
                continue
            }
            self.table.withFolios(of: run) {
                for page in run {
                    let record = self.table.recordSnapshot(page)
                    states.append(
                        PageState(count: record.count, isPrivate: !record.isShared, isAccessible: record.isAccessible)
                    )
                }
            }
        }
        return states
    }

    /// The pages that break the invariant right now, as (page, state). Empty
    /// when, for every page, shared ⇒ accessible and, in no-direct-map mode,
    /// private ⇒ (accessible ⇔ count > 0). Meaningful at quiescence.
    public func invariantViolations() -> [(page: Int, state: PageState)] {
        var violations: [(Int, PageState)] = []
        for chunkIndex in 0..<self.geometry.chunkCount where self.table.existingChunk(chunkIndex) != nil {
            let run = self.geometry.chunkPages(chunkIndex)
            self.table.withFolios(of: run) {
                for page in run {
                    let record = self.table.recordSnapshot(page)
                    let holds =
                        record.isShared
                        ? record.isAccessible
                        : (!self.table.protectsPages || record.isAccessible == (record.count > 0))
                    if !holds {
                        violations.append(
                            (
                                page,
                                PageState(
                                    count: record.count,
                                    isPrivate: !record.isShared,
                                    isAccessible: record.isAccessible
                                )
                            )
                        )
                    }
                }
            }
        }
        return violations
    }
}
