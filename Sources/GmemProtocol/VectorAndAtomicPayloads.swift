//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The fields of READV, WRITEV, ATOMIC and GPC_ATOMIC, and their replies.
//
//===----------------------------------------------------------------------===//

/// One entry of a READV or WRITEV segment table: `{u64 gpa, u32 len, u32 reserved = 0}`, 16 bytes.
public struct WireSegment: Hashable, Sendable {
    /// Bytes of one encoded entry.
    public static let size = 16

    public var gpa: UInt64
    public var length: UInt32

    @inlinable
    public init(gpa: UInt64, length: UInt32) {
        self.gpa = gpa
        self.length = length
    }
}

/// The `op` field of ATOMIC and GPC_ATOMIC.
public enum AtomicOp: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Acquire load; the reply's value is the memory's.
    case load = 0
    /// Release store of `operand`; the reply's value is 0.
    case store = 1
    /// Stores `operand`; replies the old value.
    case exchange = 2
    /// Stores `operand` if the value equals `expected`; replies the old value.
    case compareExchange = 3
    /// Wrapping addition; replies the old value.
    case fetchAdd = 4
    case fetchOr = 5
    case fetchAnd = 6

    /// Every operation but LOAD may change memory: a read-only connection gets `-EPERM` (rule 5).
    @inlinable
    public var isModifying: Bool { self != .load }

    /// The protocol name, e.g. `FETCH_ADD`.
    public var description: String {
        switch self {
        case .load: return "LOAD"
        case .store: return "STORE"
        case .exchange: return "XCHG"
        case .compareExchange: return "CMPXCHG"
        case .fetchAdd: return "FETCH_ADD"
        case .fetchOr: return "FETCH_OR"
        case .fetchAnd: return "FETCH_AND"
        }
    }
}

/// What ATOMIC and GPC_ATOMIC share: the operation, the operand's width and the two values.
///
/// A decoded value obeys rule 4: `width` is 1, 2, 4 or 8; `operand` and `expected` have no bit above `width`
/// bytes; `operand` is 0 for LOAD and `expected` is 0 for every operation but CMPXCHG.
public struct AtomicArguments: Hashable, Sendable {
    public var op: AtomicOp
    /// Bytes of the operand: 1, 2, 4 or 8.
    public var width: UInt8
    public var operand: UInt64
    public var expected: UInt64

    @inlinable
    public init(op: AtomicOp, width: UInt8, operand: UInt64 = 0, expected: UInt64 = 0) {
        self.op = op
        self.width = width
        self.operand = operand
        self.expected = expected
    }

    /// Whether the fields obey rule 4.
    public var isWellFormed: Bool {
        guard [1, 2, 4, 8].contains(self.width) else { return false }
        let unused = self.width == 8 ? 0 : ~UInt64(0) << (UInt64(self.width) * 8)
        guard self.operand & unused == 0, self.expected & unused == 0 else { return false }
        if self.op == .load && self.operand != 0 { return false }
        return self.op == .compareExchange || self.expected == 0
    }
}

/// The success reply of ATOMIC and GPC_ATOMIC: `{u64 value}`, the old value zero-extended (the loaded value for
/// LOAD, 0 for STORE).
public struct AtomicReply: Hashable, Sendable, WireEncodable, WireDecodable {
    public static let size = 8

    public var value: UInt64

    public init(value: UInt64) {
        self.value = value
    }

    public var encodedLength: Int { AtomicReply.size }

    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.value)
    }

    /// - Throws: ``Errno/protocolError`` for any size but 8.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(AtomicReply.size)
        self.value = try reader.readInteger()
    }
}

/// The payload of an error reply to a READV or WRITEV that failed after partial progress:
/// `{u64 bytes_completed, u32 segment, u32 segment_bytes}`. Segments before `segment` were transferred whole, then
/// `segment_bytes` bytes of `segment`; `bytes_completed` is the total, as WRITE's rule counts it.
public struct VectorProgressPayload: Hashable, Sendable, WireEncodable, WireDecodable {
    public static let size = 16

    public var bytesCompleted: UInt64
    public var segment: UInt32
    public var segmentBytes: UInt32

    public init(bytesCompleted: UInt64, segment: UInt32, segmentBytes: UInt32) {
        self.bytesCompleted = bytesCompleted
        self.segment = segment
        self.segmentBytes = segmentBytes
    }

    public var encodedLength: Int { VectorProgressPayload.size }

    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.bytesCompleted)
        writer.writeInteger(self.segment)
        writer.writeInteger(self.segmentBytes)
    }

    /// - Throws: ``Errno/protocolError`` for any size but 16.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        try reader.expectReadableBytes(VectorProgressPayload.size)
        self.bytesCompleted = try reader.readInteger()
        self.segment = try reader.readInteger()
        self.segmentBytes = try reader.readInteger()
    }
}
