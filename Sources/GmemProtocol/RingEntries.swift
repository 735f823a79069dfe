//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RingSubmission and RingCompletion: the 64- and 32-byte entries of a ring (PROTOCOL.md 10.2, 10.3).
//
//===----------------------------------------------------------------------===//

/// A submission entry, as the client wrote it.
public struct RingSubmission: Hashable, Sendable {
    public var cookie: UInt64
    public var opcode: Opcode
    public var flags: UInt16 = 0
    /// Bytes, or segments for READV and WRITEV.
    public var length: UInt32 = 0
    /// The gpa, or the GPC handle of GPC_READ, GPC_WRITE and GPC_ATOMIC.
    public var address: UInt64 = 0
    /// Offset in the data area of the bytes read or written.
    public var dataOffset: UInt64 = 0
    /// READV, WRITEV: offset of the segment table in the data area; GPC_*: the offset in the GPC's window.
    public var auxiliary: UInt64 = 0
    public var operand: UInt64 = 0
    public var expected: UInt64 = 0
    public var op: UInt8 = 0
    public var width: UInt8 = 0
    /// The six reserved bytes, as one value: 0 in a well-formed entry.
    public var reserved: UInt64 = 0

    public init(cookie: UInt64, opcode: Opcode) {
        self.cookie = cookie
        self.opcode = opcode
    }

    /// Copies the 64 bytes at `slot` once into private memory, then reads the fields from the copy: the client
    /// may rewrite the slot meanwhile, and no field is fetched twice (PROTOCOL.md 10.6).
    public init(copying slot: UnsafeRawPointer) {
        var copy: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &copy) { $0.copyMemory(from: UnsafeRawBufferPointer(start: slot, count: 64)) }
        self.init(fields: copy)
    }

    private init(fields w: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
        self.cookie = UInt64(littleEndian: w.0)
        let word1 = UInt64(littleEndian: w.1)
        self.opcode = Opcode(rawValue: UInt16(truncatingIfNeeded: word1))
        self.flags = UInt16(truncatingIfNeeded: word1 >> 16)
        self.length = UInt32(truncatingIfNeeded: word1 >> 32)
        self.address = UInt64(littleEndian: w.2)
        self.dataOffset = UInt64(littleEndian: w.3)
        self.auxiliary = UInt64(littleEndian: w.4)
        self.operand = UInt64(littleEndian: w.5)
        self.expected = UInt64(littleEndian: w.6)
        let word7 = UInt64(littleEndian: w.7)
        self.op = UInt8(truncatingIfNeeded: word7)
        self.width = UInt8(truncatingIfNeeded: word7 >> 8)
        self.reserved = word7 >> 16
    }

    /// Writes the entry into `slot` (a client's side).
    public func store(to slot: UnsafeMutableRawPointer) {
        let word1 = UInt64(self.opcode.rawValue) | UInt64(self.flags) << 16 | UInt64(self.length) << 32
        let word7 = UInt64(self.op) | UInt64(self.width) << 8 | self.reserved << 16
        let words = [
            self.cookie, word1, self.address, self.dataOffset, self.auxiliary, self.operand, self.expected, word7,
        ]
        for (index, word) in words.enumerated() {
            slot.storeBytes(of: word.littleEndian, toByteOffset: index * 8, as: UInt64.self)
        }
    }
}

/// A completion entry.
public struct RingCompletion: Hashable, Sendable {
    public var cookie: UInt64
    /// 0 or a negative errno.
    public var status: Int32
    /// Bytes transferred on success.
    public var length: UInt32 = 0
    /// Atomics: the old value; a partial failure: the bytes completed.
    public var value: UInt64 = 0
    public var segment: UInt32 = 0
    public var segmentBytes: UInt32 = 0

    public init(cookie: UInt64, status: Int32, length: UInt32 = 0, value: UInt64 = 0) {
        self.cookie = cookie
        self.status = status
        self.length = length
        self.value = value
    }

    /// Writes the 32 bytes into `slot` (the server's side).
    @inlinable
    public func store(to slot: UnsafeMutableRawPointer) {
        slot.storeBytes(of: self.cookie.littleEndian, toByteOffset: 0, as: UInt64.self)
        slot.storeBytes(of: self.status.littleEndian, toByteOffset: 8, as: Int32.self)
        slot.storeBytes(of: self.length.littleEndian, toByteOffset: 12, as: UInt32.self)
        slot.storeBytes(of: self.value.littleEndian, toByteOffset: 16, as: UInt64.self)
        slot.storeBytes(of: self.segment.littleEndian, toByteOffset: 24, as: UInt32.self)
        slot.storeBytes(of: self.segmentBytes.littleEndian, toByteOffset: 28, as: UInt32.self)
    }

    /// Reads the 32 bytes at `slot` (a client's side).
    public init(loading slot: UnsafeRawPointer) {
        self.cookie = UInt64(littleEndian: slot.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        self.status = Int32(littleEndian: slot.loadUnaligned(fromByteOffset: 8, as: Int32.self))
        self.length = UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        self.value = UInt64(littleEndian: slot.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        self.segment = UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        self.segmentBytes = UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 28, as: UInt32.self))
    }
}
