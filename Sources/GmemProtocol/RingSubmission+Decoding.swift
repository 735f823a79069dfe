//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Checking a ring entry: PROTOCOL.md 10.4 rules 1 to 3, the entry's own shape.
//
//===----------------------------------------------------------------------===//

extension RingSubmission {
    /// Opcodes a ring carries; every other is control, sent on the socket.
    public static func isRingOpcode(_ opcode: Opcode) -> Bool {
        switch opcode {
        case .ping, .read, .write, .gpcRead, .gpcWrite, .readv, .writev, .atomic, .gpcAtomic: return true
        default: return false
        }
    }

    /// The request this entry carries, and the bytes of the data area its result fills (empty when none).
    ///
    /// Checks, first failure wins: the opcode is one a ring carries (``Errno/operationNotSupported``); flags,
    /// reserved bytes and every field the opcode does not use are 0, and an atomic's op and width are well formed
    /// (``Errno/invalidArgument``); READV's and WRITEV's segment count is 1 to `maxSegments` and each table entry's
    /// reserved word is 0 (``Errno/invalidArgument``); every data-area range lies inside the data area
    /// (``Errno/invalidArgument``). The server then applies the socket's rules to the request.
    ///
    /// Byte payloads of the result point into `dataArea`, which the client may rewrite at any moment: the server
    /// copies them once, into guest memory. The segment table is copied into the result, each entry read once.
    public func decode(
        dataArea: UnsafeMutableRawBufferPointer,
        maxSegments: Int
    ) throws(Errno) -> (request: Request, output: UnsafeMutableRawBufferPointer) {
        let none = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        guard Self.isRingOpcode(self.opcode) else { throw .operationNotSupported }
        guard self.flags == 0, self.reserved == 0 else { throw .invalidArgument }
        switch self.opcode {
        case .ping:
            try self.requireZero(length: true, address: true, data: true, auxiliary: true, atomic: true)
            return (.ping(UnsafeRawBufferPointer(start: nil, count: 0)), none)

        case .read, .gpcRead:
            try self.requireZero(auxiliary: self.opcode == .read, atomic: true)
            let output = try Self.range(dataArea, self.dataOffset, UInt64(self.length))
            if self.opcode == .read { return (.read(gpa: self.address, length: self.length), output) }
            let offset = try self.windowOffset()
            return (.gpcRead(handle: self.address, offset: offset, length: self.length), output)

        case .write, .gpcWrite:
            try self.requireZero(auxiliary: self.opcode == .write, atomic: true)
            let input = UnsafeRawBufferPointer(try Self.range(dataArea, self.dataOffset, UInt64(self.length)))
            if self.opcode == .write { return (.write(gpa: self.address, data: input), none) }
            return (.gpcWrite(handle: self.address, offset: try self.windowOffset(), data: input), none)

        case .readv, .writev:
            try self.requireZero(address: true, atomic: true)
            guard self.length >= 1, self.length <= maxSegments else { throw .invalidArgument }
            let (segments, total) = try self.copySegmentTable(from: dataArea)
            let bytes = try Self.range(dataArea, self.dataOffset, total)
            if self.opcode == .readv { return (.readv(segments: segments), bytes) }
            return (.writev(segments: segments, data: UnsafeRawBufferPointer(bytes)), none)

        default:  // .atomic, .gpcAtomic
            try self.requireZero(length: true, data: true, auxiliary: self.opcode == .atomic)
            guard let op = AtomicOp(rawValue: self.op) else { throw .invalidArgument }
            let arguments = AtomicArguments(op: op, width: self.width, operand: self.operand, expected: self.expected)
            guard arguments.isWellFormed else { throw .invalidArgument }
            if self.opcode == .atomic { return (.atomic(gpa: self.address, arguments), none) }
            return (.gpcAtomic(handle: self.address, offset: try self.windowOffset(), arguments), none)
        }
    }

    /// Rule 2: the fields the opcode does not use are 0.
    private func requireZero(
        length: Bool = false,
        address: Bool = false,
        data: Bool = false,
        auxiliary: Bool = false,
        atomic: Bool = false
    ) throws(Errno) {
        if length && self.length != 0 { throw .invalidArgument }
        if address && self.address != 0 { throw .invalidArgument }
        if data && self.dataOffset != 0 { throw .invalidArgument }
        if auxiliary && self.auxiliary != 0 { throw .invalidArgument }
        if atomic && (self.operand != 0 || self.expected != 0 || self.op != 0 || self.width != 0) {
            throw .invalidArgument
        }
    }

    /// A GPC's window offset travels in `aux`; it is a u32 on the socket.
    private func windowOffset() throws(Errno) -> UInt32 {
        guard let offset = UInt32(exactly: self.auxiliary) else { throw .invalidArgument }
        return offset
    }

    /// Rule 3: `count` bytes from `offset` inside the data area.
    private static func range(
        _ area: UnsafeMutableRawBufferPointer,
        _ offset: UInt64,
        _ count: UInt64
    ) throws(Errno) -> UnsafeMutableRawBufferPointer {
        let size = UInt64(area.count)
        guard offset <= size, count <= size - offset else { throw .invalidArgument }
        guard count > 0, let start = area.baseAddress else {
            return UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeMutableRawBufferPointer(start: start + Int(offset), count: Int(count))
    }

    /// Copies the segment table at `aux` into private memory, each 16-byte entry read once.
    private func copySegmentTable(
        from area: UnsafeMutableRawBufferPointer
    ) throws(Errno) -> (segments: [WireSegment], total: UInt64) {
        let table = try Self.range(area, self.auxiliary, UInt64(self.length) * UInt64(WireSegment.size))
        var segments: [WireSegment] = []
        segments.reserveCapacity(Int(self.length))
        var total: UInt64 = 0
        for index in 0..<Int(self.length) {
            let entry = table.baseAddress! + index * WireSegment.size
            let gpa = UInt64(littleEndian: entry.loadUnaligned(as: UInt64.self))
            let lengthAndReserved = UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            guard lengthAndReserved >> 32 == 0 else { throw .invalidArgument }
            let length = UInt32(truncatingIfNeeded: lengthAndReserved)
            segments.append(WireSegment(gpa: gpa, length: length))
            total += UInt64(length)
        }
        return (segments, total)
    }
}
