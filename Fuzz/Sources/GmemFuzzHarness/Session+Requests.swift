/// The replies of a connection past HELLO, request by request.
extension Session {
    mutating func checkReady(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        let model = self.model
        let einval = -Errno.EINVAL
        if header.opcode == 1 { return self.expectError(reply, -Errno.EALREADY, "a second HELLO") }
        guard (2...20).contains(header.opcode) else {
            return self.expectError(reply, -Errno.EOPNOTSUPP, "an unknown opcode")
        }
        guard header.flags == 0, header.status == 0 else {
            return self.expectError(reply, einval, "request flags or status")
        }
        if header.opcode >= 18 { return self.checkRingRequest(header, q, reply) }
        if header.opcode >= 14 { return self.checkDeviceOp(header, q, reply) }
        let modifying = [4, 8, 10, 11].contains(header.opcode)
        /// Rule 4 for the fixed-size payloads, then rule 5.
        func shapeError(size: Int?, zeroFields: [Int] = []) -> (Int32, String)? {
            if let size, q.count != size { return (einval, "payload of \(q.count) bytes, expected \(size)") }
            for offset in zeroFields where q.u32(offset) != 0 { return (einval, "a non-zero flags or reserved field") }
            if modifying && model.readOnly { return (-Errno.EPERM, "read-only connection") }
            return nil
        }

        switch header.opcode {
        case 2:  // PING
            let events = self.expectSuccess(reply, "PING", payloadCount: q.count)
            self.expectNoEvents(events, "PING")
            if self.violations.isEmpty, reply.payload != Array(q) { self.violation("PING echoed different bytes") }

        case 3:  // READ
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let length = q.u32(8)
            guard Int(length) <= model.maxPayload else {
                return self.expectError(reply, -Errno.EMSGSIZE, "READ len \(length)")
            }
            guard model.inside(gpa, UInt64(length)) else {
                return self.expectError(reply, -Errno.EFAULT, "READ outside")
            }
            let events = self.expectSuccess(
                reply,
                "READ 0x\(String(gpa, radix: 16))+\(length)",
                payloadCount: Int(length)
            )
            self.expectNoEvents(events, "READ")
            guard self.violations.isEmpty else { return }
            if reply.payload != model.bytes(at: Int(gpa), count: Int(length)) {
                self.violation(
                    "READ 0x\(String(gpa, radix: 16))+\(length) returned bytes that differ from the acknowledged writes"
                )
            }
            self.touch(gpa, Int(length))

        case 4:  // WRITE
            let length = q.count >= 16 ? Int(q.u32(8)) : -1
            if let (status, why) = shapeError(size: q.count >= 16 ? 16 + length : 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            guard model.inside(gpa, UInt64(length)) else {
                return self.expectError(reply, -Errno.EFAULT, "WRITE outside")
            }
            let events = self.expectSuccess(reply, "WRITE 0x\(String(gpa, radix: 16))+\(length)", payloadCount: 0)
            self.expectNoEvents(events, "WRITE")
            self.model.store(q.dropFirst(16), at: Int(gpa))
            self.touch(gpa, length)

        case 5:  // GPC_ACTIVATE
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let length = q.u32(8)
            if let status = model.cacheWindowError(gpa, length) { return self.expectError(reply, status, "GPC window") }
            guard model.caches.count < model.maxCaches else {
                return self.expectError(reply, -Errno.ENOSPC, "max_gpcs")
            }
            let events = self.expectSuccess(reply, "GPC_ACTIVATE", payloadCount: 8)
            self.expectNoEvents(events, "GPC_ACTIVATE")
            guard self.violations.isEmpty else { return }
            let handle = reply.payload.u64(0)
            guard handle != 0, handle > model.lastHandle, model.caches[handle] == nil else {
                return self.violation(
                    "GPC_ACTIVATE returned handle \(handle) (0, or reused; last was \(model.lastHandle))"
                )
            }
            self.model.lastHandle = handle
            self.model.caches[handle] = ProtocolModel.Cache(
                page: Int(gpa) / model.pageSize,
                offset: Int(gpa) % model.pageSize,
                length: Int(length),
                valid: true
            )

        case 6:  // GPC_DEACTIVATE
            if let (status, why) = shapeError(size: 8) { return self.expectError(reply, status, why) }
            let handle = q.u64(0)
            guard model.caches[handle] != nil else { return self.expectError(reply, -Errno.ENOENT, "unknown handle") }
            let events = self.expectSuccess(reply, "GPC_DEACTIVATE", payloadCount: 0)
            self.expectNoEvents(events, "GPC_DEACTIVATE")
            self.model.caches[handle] = nil

        case 7, 8:  // GPC_READ, GPC_WRITE
            let isWrite = header.opcode == 8
            let length = q.count >= 16 ? Int(q.u32(12)) : -1
            if let (status, why) = shapeError(size: isWrite ? (q.count >= 16 ? 16 + length : 16) : 16) {
                return self.expectError(reply, status, why)
            }
            if !isWrite && length > model.maxPayload { return self.expectError(reply, -Errno.EMSGSIZE, "GPC_READ len") }
            let handle = q.u64(0)
            let offset = Int(q.u32(8))
            guard let cache = model.caches[handle] else {
                return self.expectError(reply, -Errno.ENOENT, "unknown handle")
            }
            guard offset + length <= cache.length else {
                return self.expectError(reply, einval, "beyond the GPC's window")
            }
            guard cache.valid else { return self.expectError(reply, -Errno.ESTALE, "an invalidated GPC") }
            let address = cache.page * model.pageSize + cache.offset + offset
            let events = self.expectSuccess(
                reply,
                isWrite ? "GPC_WRITE" : "GPC_READ",
                payloadCount: isWrite ? 0 : length
            )
            self.expectNoEvents(events, "GPC access")
            guard self.violations.isEmpty else { return }
            if isWrite {
                self.model.store(q.dropFirst(16), at: address)
            } else if reply.payload != model.bytes(at: address, count: length) {
                self.violation("GPC_READ handle \(handle) returned bytes that differ from the acknowledged writes")
            }

        case 9:  // GPC_REFRESH
            if let (status, why) = shapeError(size: 24, zeroFields: [20]) {
                return self.expectError(reply, status, why)
            }
            let handle = q.u64(0)
            let gpa = q.u64(8)
            let length = q.u32(16)
            if let status = model.cacheWindowError(gpa, length) { return self.expectError(reply, status, "GPC window") }
            guard model.caches[handle] != nil else { return self.expectError(reply, -Errno.ENOENT, "unknown handle") }
            let events = self.expectSuccess(reply, "GPC_REFRESH", payloadCount: 0)
            self.expectNoEvents(events, "GPC_REFRESH")
            self.model.caches[handle] = ProtocolModel.Cache(
                page: Int(gpa) / model.pageSize,
                offset: Int(gpa) % model.pageSize,
                length: Int(length),
                valid: true
            )

        case 10:  // SET_ATTRIBUTES
            // Rule 4 (payload size, attribute bits) comes before rule 5 (read-only).
            guard q.count == 24 else {
                return self.expectError(reply, einval, "payload of \(q.count) bytes, expected 24")
            }
            let gpa = q.u64(0)
            let size = q.u64(8)
            let attributes = q.u64(16)
            guard attributes & ~8 == 0 else { return self.expectError(reply, einval, "attribute bits") }
            if model.readOnly { return self.expectError(reply, -Errno.EPERM, "read-only connection") }
            guard model.aligned(gpa), model.aligned(size), size > 0 else {
                return self.expectError(reply, einval, "alignment or size 0")
            }
            guard model.inside(gpa, size) else {
                return self.expectError(reply, -Errno.EFAULT, "SET_ATTRIBUTES outside")
            }
            let events = self.expectSuccess(reply, "SET_ATTRIBUTES", payloadCount: 0)
            guard self.violations.isEmpty else { return }
            let first = Int(gpa) / model.pageSize
            let range = first..<(first + Int(size) / model.pageSize)
            let shared = attributes == 0
            let changed = Set(range.filter { model.sharedPages.contains($0) != shared })
            for page in changed {
                if shared { self.model.sharedPages.insert(page) } else { self.model.sharedPages.remove(page) }
            }
            let handles = self.model.invalidate(where: { changed.contains($0) })
            self.expectInvalidations(events, handles: handles, reason: 1)

        case 11:  // DISCARD
            if let (status, why) = shapeError(size: 16) { return self.expectError(reply, status, why) }
            let gpa = q.u64(0)
            let size = q.u64(8)
            guard model.aligned(gpa), model.aligned(size), size > 0 else {
                return self.expectError(reply, einval, "alignment or size 0")
            }
            guard model.inside(gpa, size) else { return self.expectError(reply, -Errno.EFAULT, "DISCARD outside") }
            let events = self.expectSuccess(reply, "DISCARD", payloadCount: 0)
            guard self.violations.isEmpty else { return }
            let first = Int(gpa) / model.pageSize
            let range = first..<(first + Int(size) / model.pageSize)
            for page in range { self.model.pages[page] = nil }
            let handles = self.model.invalidate(where: { range.contains($0) })
            self.expectInvalidations(events, handles: handles, reason: 2)

        case 12:  // STATS
            if let (status, why) = shapeError(size: 0) { return self.expectError(reply, status, why) }
            let events = self.expectSuccess(reply, "STATS", payloadCount: nil)
            self.expectNoEvents(events, "STATS")
            guard self.violations.isEmpty else { return }
            self.checkStats(reply.payload)

        case 13:  // PAGE_STATE
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let count = Int(q.u32(8))
            guard model.aligned(gpa) else { return self.expectError(reply, einval, "PAGE_STATE alignment") }
            guard count * 4 <= model.maxPayload else {
                return self.expectError(reply, -Errno.EMSGSIZE, "npages × 4 > max_payload")
            }
            guard model.inside(gpa, UInt64(count) * UInt64(model.pageSize)) else {
                return self.expectError(reply, -Errno.EFAULT, "PAGE_STATE outside")
            }
            let events = self.expectSuccess(reply, "PAGE_STATE", payloadCount: 4 * count)
            self.expectNoEvents(events, "PAGE_STATE")
            guard self.violations.isEmpty else { return }
            self.checkPageStates(reply.payload, firstPage: Int(gpa) / model.pageSize)

        default:
            fatalError("unreachable")
        }
    }
}
