import GmemCore

/// Page references, STATS, and the memory once the connection closed.
extension Session {
    mutating func touch(_ gpa: UInt64, _ length: Int) {
        guard length > 0 else { return }
        let first = Int(gpa) / self.model.pageSize
        let last = (Int(gpa) + length - 1) / self.model.pageSize
        self.touchedInBatch.formUnion(first...last)
    }

    mutating func checkPageStates(_ payload: [UInt8], firstPage: Int) {
        for index in 0..<(payload.count / 4) {
            let page = firstPage + index
            let refcount = Int(payload.u16(4 * index))
            let state = payload[4 * index + 2]
            let isPrivate = state & 1 != 0
            let isAccessible = state & 2 != 0
            let expectedCount = min(self.model.references(onPage: page), 65535)
            let expectedPrivate = !self.model.sharedPages.contains(page)
            var problems: [String] = []
            if state & ~3 != 0 || payload[4 * index + 3] != 0 { problems.append("reserved bits set") }
            if isPrivate != expectedPrivate { problems.append("PRIVATE is \(isPrivate)") }
            // Transient accesses of this batch may still hold a reference.
            if self.touchedInBatch.contains(page) ? refcount < expectedCount : refcount != expectedCount {
                problems.append("refcount \(refcount), but \(expectedCount) valid GPCs")
            }
            let shouldBeAccessible = self.model.directMap || !isPrivate || refcount > 0
            if isAccessible != shouldBeAccessible {
                problems.append("ACCESSIBLE is \(isAccessible): the invariant breaks")
            }
            if !problems.isEmpty {
                return self.violation("PAGE_STATE of page \(page): \(problems.joined(separator: "; "))")
            }
        }
    }

    mutating func checkStats(_ payload: [UInt8]) {
        var offset = 0
        var values: [String: UInt64] = [:]
        while offset < payload.count {
            let nameLength = Int(payload[offset])
            guard nameLength >= 1, offset + 1 + nameLength + 8 <= payload.count else {
                return self.violation("STATS: an entry at offset \(offset) runs past the payload")
            }
            let nameBytes = payload[(offset + 1)..<(offset + 1 + nameLength)]
            guard nameBytes.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                return self.violation("STATS: a name with bytes outside 0x21…0x7e")
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard values[name] == nil else { return self.violation("STATS: \(name) appears twice") }
            values[name] = payload.u64(offset + 1 + nameLength)
            offset += 1 + nameLength + 8
        }
        let required = [
            "reads", "writes", "bytes_read", "bytes_written", "restores", "zaps", "protect_calls", "protect_failures",
            "gpc_activations", "gpc_active", "gpc_invalidations", "connections", "connections_total", "errors",
        ]
        for name in required where values[name] == nil { self.violation("STATS lacks \(name)") }
        // This connection is the memory's only user: every active GPC is its own.
        if let active = values["gpc_active"], active != UInt64(self.model.caches.count) {
            self.violation("STATS gpc_active is \(active), but the connection has \(self.model.caches.count) GPCs")
        }
    }

    // MARK: After the connection closed

    mutating func checkQuiescentMemory() {
        let memory = self.setup.memory
        let violations = memory.invariantViolations()
        if !violations.isEmpty {
            self.violation(
                "the invariant breaks after close: \(violations.prefix(4).map { "page \($0.page): \($0.state)" })"
            )
        }
        do {
            let states = try memory.pageStates(
                at: GuestPhysicalAddress(0),
                pageCount: Int(memory.geometry.regionSize) / memory.geometry.pageSize
            )
            if let (page, state) = states.enumerated().first(where: { $0.element.count != 0 }) {
                self.violation("page \(page) keeps a reference after the connection closed: \(state)")
            }
        } catch {
            self.violation("pageStates failed: \(error)")
        }
        let active = memory.statistics.cachesActive
        if active != 0 { self.violation("\(active) GPCs still active after the connection closed") }
    }
}
