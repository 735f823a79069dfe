/// The reference model's READV, WRITEV, ATOMIC and GPC_ATOMIC, written from
/// PROTOCOL.md sections 5.14 to 5.17: each reply is checked, and the memory
/// contents follow every acknowledged WRITEV and atomic operation.
extension Session {
    /// HELLO's `max_segments` in gmemd (ConnectionHandler.maxSegments).
    static let maxSegments = 1024

    mutating func checkDeviceOp(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        switch header.opcode {
        case 14, 15: self.checkVector(isWrite: header.opcode == 15, q, reply)
        default: self.checkAtomic(byHandle: header.opcode == 17, q, reply)
        }
    }

    private mutating func checkVector(isWrite: Bool, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        let model = self.model
        let einval = -Errno.EINVAL
        let name = isWrite ? "WRITEV" : "READV"
        // Rule 4: {u32 nsegs, u32 flags = 0}, the table, and for WRITEV exactly the segments' bytes.
        guard q.count >= 8, q.u32(4) == 0 else { return self.expectError(reply, einval, "\(name) header") }
        let count = Int(q.u32(0))
        let tableEnd = 8 + 16 * count
        guard isWrite ? q.count >= tableEnd : q.count == tableEnd else {
            return self.expectError(reply, einval, "\(name) table size")
        }
        let segments = (0..<count).map { (gpa: q.u64(8 + 16 * $0), length: Int(q.u32(16 + 16 * $0))) }
        guard (0..<count).allSatisfy({ q.u32(20 + 16 * $0) == 0 }) else {
            return self.expectError(reply, einval, "a reserved field")
        }
        let total = segments.reduce(0) { $0 + $1.length }
        if isWrite && q.count - tableEnd != total { return self.expectError(reply, einval, "WRITEV data size") }
        if isWrite && model.readOnly { return self.expectError(reply, -Errno.EPERM, "read-only connection") }
        guard count >= 1, count <= Self.maxSegments else { return self.expectError(reply, einval, "nsegs") }
        if !isWrite && total > model.maxPayload { return self.expectError(reply, -Errno.EMSGSIZE, "READV total") }
        guard segments.allSatisfy({ model.inside($0.gpa, UInt64($0.length)) }) else {
            return self.expectError(reply, -Errno.EFAULT, "\(name) segment outside")
        }
        let events = self.expectSuccess(reply, name, payloadCount: isWrite ? 0 : total)
        self.expectNoEvents(events, name)
        guard self.violations.isEmpty else { return }
        var offset = 0
        for segment in segments {
            if isWrite {
                let start = q.startIndex + tableEnd + offset
                self.model.store(q[start..<(start + segment.length)], at: Int(segment.gpa))
            } else if reply.payload[offset..<(offset + segment.length)]
                != model.bytes(at: Int(segment.gpa), count: segment.length)[...]
            {
                return self.violation("READV segment at 0x\(String(segment.gpa, radix: 16)) differs from the writes")
            }
            offset += segment.length
            self.touch(segment.gpa, segment.length)
        }
    }

    private mutating func checkAtomic(byHandle: Bool, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        let model = self.model
        let einval = -Errno.EINVAL
        let name = byHandle ? "GPC_ATOMIC" : "ATOMIC"
        guard q.count == 32 else { return self.expectError(reply, einval, "payload of \(q.count) bytes") }
        // ATOMIC: op at 24, width 25, flags 26, reserved 28. GPC_ATOMIC: offset 24, op 28, width 29, flags 30.
        let opAt = byHandle ? 28 : 24
        let op = q[q.startIndex + opAt]
        let width = Int(q[q.startIndex + opAt + 1])
        let operand = q.u64(8)
        let expected = q.u64(16)
        let unused = width == 8 ? 0 : ~UInt64(0) << UInt64(8 * min(width, 8))
        guard q.u16(opAt + 2) == 0, byHandle || q.u32(28) == 0, op <= 6, [1, 2, 4, 8].contains(width),
            operand & unused == 0, expected & unused == 0, op != 0 || operand == 0, op == 3 || expected == 0
        else { return self.expectError(reply, einval, "\(name) rule 4") }
        if op != 0 && model.readOnly { return self.expectError(reply, -Errno.EPERM, "read-only connection") }
        let address: Int
        if byHandle {
            guard let cache = model.caches[q.u64(0)] else { return self.expectError(reply, -Errno.ENOENT, "handle") }
            let offset = Int(q.u32(24))
            guard (cache.offset + offset) % width == 0, offset + width <= cache.length else {
                return self.expectError(reply, einval, "GPC_ATOMIC window or alignment")
            }
            guard cache.valid else { return self.expectError(reply, -Errno.ESTALE, "an invalidated GPC") }
            address = cache.page * model.pageSize + cache.offset + offset
        } else {
            let gpa = q.u64(0)
            guard gpa % UInt64(width) == 0 else { return self.expectError(reply, einval, "ATOMIC alignment") }
            guard model.inside(gpa, UInt64(width)) else { return self.expectError(reply, -Errno.EFAULT, "outside") }
            address = Int(gpa)
            self.touch(gpa, width)
        }
        let events = self.expectSuccess(reply, name, payloadCount: 8)
        self.expectNoEvents(events, name)
        guard self.violations.isEmpty else { return }
        let old = model.bytes(at: address, count: width).enumerated().reduce(UInt64(0)) {
            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
        }
        let new: UInt64
        switch op {
        case 0: new = old
        case 1, 2: new = operand
        case 3: new = old == expected ? operand : old
        case 4: new = (old &+ operand) & ~unused
        case 5: new = old | operand
        default: new = old & operand
        }
        let value = reply.payload.u64(0)
        if value != (op == 1 ? 0 : old) { self.violation("\(name) op \(op) returned \(value), the model says \(old)") }
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: new >> (8 * UInt64($0))) }
        self.model.store(bytes[...], at: address)
    }
}
