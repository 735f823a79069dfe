//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Well-formed ring entries, one builder per opcode (PROTOCOL.md 10.2).
//
//===----------------------------------------------------------------------===//

import GmemProtocol

extension RingSubmission {
    public static func ping(cookie: UInt64) -> RingSubmission {
        RingSubmission(cookie: cookie, opcode: .ping)
    }

    /// READ of `length` bytes at `gpa` into the data area at `data`.
    public static func read(cookie: UInt64, gpa: UInt64, length: UInt32, data: UInt64) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .read)
        (entry.address, entry.length, entry.dataOffset) = (gpa, length, data)
        return entry
    }

    /// WRITE of `length` bytes from the data area at `data` to `gpa`.
    public static func write(cookie: UInt64, gpa: UInt64, length: UInt32, data: UInt64) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .write)
        (entry.address, entry.length, entry.dataOffset) = (gpa, length, data)
        return entry
    }

    public static func gpcRead(
        cookie: UInt64,
        handle: UInt64,
        offset: UInt32,
        length: UInt32,
        data: UInt64
    ) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .gpcRead)
        (entry.address, entry.auxiliary, entry.length, entry.dataOffset) = (handle, UInt64(offset), length, data)
        return entry
    }

    public static func gpcWrite(
        cookie: UInt64,
        handle: UInt64,
        offset: UInt32,
        length: UInt32,
        data: UInt64
    ) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .gpcWrite)
        (entry.address, entry.auxiliary, entry.length, entry.dataOffset) = (handle, UInt64(offset), length, data)
        return entry
    }

    /// READV (or WRITEV) of `segments` segments whose table is at `table` in the data area, the bytes at `data`.
    public static func vector(
        _ opcode: Opcode,
        cookie: UInt64,
        segments: UInt32,
        table: UInt64,
        data: UInt64
    ) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: opcode)
        (entry.length, entry.auxiliary, entry.dataOffset) = (segments, table, data)
        return entry
    }

    public static func atomic(cookie: UInt64, gpa: UInt64, _ arguments: AtomicArguments) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .atomic)
        entry.address = gpa
        entry.setAtomic(arguments)
        return entry
    }

    public static func gpcAtomic(
        cookie: UInt64,
        handle: UInt64,
        offset: UInt32,
        _ arguments: AtomicArguments
    ) -> RingSubmission {
        var entry = RingSubmission(cookie: cookie, opcode: .gpcAtomic)
        (entry.address, entry.auxiliary) = (handle, UInt64(offset))
        entry.setAtomic(arguments)
        return entry
    }

    private mutating func setAtomic(_ arguments: AtomicArguments) {
        (self.op, self.width) = (arguments.op.rawValue, arguments.width)
        (self.operand, self.expected) = (arguments.operand, arguments.expected)
    }
}

extension RawRing {
    /// Writes a segment table (`{u64 gpa, u32 len, u32 reserved}` each) into the data area at `offset`.
    public func storeSegmentTable(_ segments: [WireSegment], at offset: Int) {
        for (index, segment) in segments.enumerated() {
            let entry = self.data.baseAddress! + offset + index * WireSegment.size
            entry.storeBytes(of: segment.gpa.littleEndian, as: UInt64.self)
            entry.storeBytes(of: segment.length.littleEndian, toByteOffset: 8, as: UInt32.self)
            entry.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        }
    }

    /// Copies `bytes` into the data area at `offset`.
    public func storeData(_ bytes: [UInt8], at offset: Int) {
        bytes.withUnsafeBytes {
            self.data.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
    }

    /// `count` bytes of the data area at `offset`.
    public func loadData(at offset: Int, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: self.data[offset..<(offset + count)]))
    }
}
