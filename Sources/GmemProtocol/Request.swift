//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Request: a decoded client request, borrowing its byte payloads from the frame.
//
//===----------------------------------------------------------------------===//

/// A request of protocol v1, with every field the client sent except the header's.
///
/// Byte payloads (the PING payload, WRITE and GPC_WRITE data) are `UnsafeRawBufferPointer` slices **into the frame**
/// that was decoded: no copy is made, and they are valid only while the caller's buffer is. A `Request` is therefore
/// not `Sendable`; copy the bytes out before handing a request to another isolation domain.
///
/// ``decode(header:payload:)`` has already enforced precedence rules 3 and 4 (known opcode, zero flags and status,
/// exact payload size, zero reserved fields, known attribute bits). Rules that need connection or region state
/// (HELLO first, read-only clients, alignment, zero sizes, bounds, handles) are the server's.
public enum Request {
    /// HELLO `{u32 version, u32 features}`. Any `version` decodes; the server answers a version other than
    /// ``WireProtocol/version`` with `-EPROTONOSUPPORT`. Unknown feature bits are not an error: they are not granted.
    case hello(version: UInt32, features: UInt32)

    /// PING with any payload, echoed back unchanged.
    case ping(UnsafeRawBufferPointer)

    /// READ `{u64 gpa, u32 len, u32 flags = 0}`.
    case read(gpa: UInt64, length: UInt32)

    /// WRITE `{u64 gpa, u32 len, u32 flags = 0, bytes[len]}`; `data.count` is `len`.
    case write(gpa: UInt64, data: UnsafeRawBufferPointer)

    /// GPC_ACTIVATE `{u64 gpa, u32 len, u32 flags = 0}`.
    case gpcActivate(gpa: UInt64, length: UInt32)

    /// GPC_DEACTIVATE `{u64 handle}`.
    case gpcDeactivate(handle: UInt64)

    /// GPC_READ `{u64 handle, u32 offset, u32 len}`.
    case gpcRead(handle: UInt64, offset: UInt32, length: UInt32)

    /// GPC_WRITE `{u64 handle, u32 offset, u32 len, bytes[len]}`; `data.count` is `len`.
    case gpcWrite(handle: UInt64, offset: UInt32, data: UnsafeRawBufferPointer)

    /// GPC_REFRESH `{u64 handle, u64 gpa, u32 len, u32 flags = 0}`.
    case gpcRefresh(handle: UInt64, gpa: UInt64, length: UInt32)

    /// SET_ATTRIBUTES `{u64 gpa, u64 size, u64 attributes}`; `attributes` has no bit but
    /// ``WireProtocol/attributePrivate``.
    case setAttributes(gpa: UInt64, size: UInt64, attributes: UInt64)

    /// DISCARD `{u64 gpa, u64 size}`.
    case discard(gpa: UInt64, size: UInt64)

    /// STATS with an empty payload.
    case stats

    /// PAGE_STATE `{u64 gpa, u32 npages, u32 flags = 0}`.
    case pageState(gpa: UInt64, pageCount: UInt32)

    /// READV `{u32 nsegs, u32 flags = 0, nsegs × {u64 gpa, u32 len, u32 reserved = 0}}`.
    case readv(segments: [WireSegment])

    /// WRITEV: READV's fields, then the segments' bytes back to back; `data.count` is the sum of their lengths.
    case writev(segments: [WireSegment], data: UnsafeRawBufferPointer)

    /// ATOMIC `{u64 gpa, u64 operand, u64 expected, u8 op, u8 width, u16 flags = 0, u32 reserved = 0}`.
    case atomic(gpa: UInt64, AtomicArguments)

    /// GPC_ATOMIC `{u64 handle, u64 operand, u64 expected, u32 offset, u8 op, u8 width, u16 flags = 0}`.
    case gpcAtomic(handle: UInt64, offset: UInt32, AtomicArguments)
    /// RING_SETUP `{u32 entries, u32 flags = 0, u64 data_size}`. The entry and size rules are the server's
    /// (``RingLayout/init(entries:dataSize:)``).
    case ringSetup(entries: UInt32, dataSize: UInt64)
    /// RING_CLOSE `{u32 ring_id, u32 flags = 0}`.
    case ringClose(ringID: UInt32)
    /// MAP_REGION `{u32 flags = 0, u32 reserved = 0}`.
    case mapRegion
}

/// A `Request` may borrow the caller's frame buffer, so it must not cross isolation domains.
@available(*, unavailable)
extension Request: Sendable {}

extension Request {
    /// The opcode this request is sent with.
    @inlinable
    public var opcode: Opcode {
        switch self {
        case .hello: return .hello
        case .ping: return .ping
        case .read: return .read
        case .write: return .write
        case .gpcActivate: return .gpcActivate
        case .gpcDeactivate: return .gpcDeactivate
        case .gpcRead: return .gpcRead
        case .gpcWrite: return .gpcWrite
        case .gpcRefresh: return .gpcRefresh
        case .setAttributes: return .setAttributes
        case .discard: return .discard
        case .stats: return .stats
        case .pageState: return .pageState
        case .readv: return .readv
        case .writev: return .writev
        case .atomic: return .atomic
        case .gpcAtomic: return .gpcAtomic
        case .ringSetup: return .ringSetup
        case .ringClose: return .ringClose
        case .mapRegion: return .mapRegion
        }
    }

    /// Bytes of payload after the header when this request is encoded.
    @inlinable
    public var payloadLength: Int {
        switch self {
        case .ping(let payload): return payload.count
        case .write(_, let data): return 16 + data.count
        case .gpcWrite(_, _, let data): return 16 + data.count
        case .readv(let segments): return 8 + WireSegment.size * segments.count
        case .writev(let segments, let data): return 8 + WireSegment.size * segments.count + data.count
        default: return Request.fixedPayloadLength(of: self.opcode) ?? 0
        }
    }

    /// Whether this request changes guest memory or its attributes (WRITE, GPC_WRITE, SET_ATTRIBUTES, DISCARD,
    /// WRITEV, and ATOMIC or GPC_ATOMIC with any operation but LOAD).
    ///
    /// A read-only client sending one gets `-EPERM` (precedence rule 5).
    @inlinable
    public var isModifying: Bool {
        switch self {
        case .atomic(_, let arguments), .gpcAtomic(_, _, let arguments): return arguments.op.isModifying
        default: return self.opcode.isModifying
        }
    }

    /// The payload size of a fixed-size request opcode, or `nil` for PING, WRITE, GPC_WRITE, READV, WRITEV and
    /// unknown opcodes.
    ///
    /// `proto/gmem_wire.h` mirrors these sizes for C and Rust clients.
    @inlinable
    public static func fixedPayloadLength(of opcode: Opcode) -> Int? {
        switch opcode {
        case .hello: return 8
        case .read: return 16
        case .gpcActivate: return 16
        case .gpcDeactivate: return 8
        case .gpcRead: return 16
        case .gpcRefresh: return 24
        case .setAttributes: return 24
        case .discard: return 16
        case .stats: return 0
        case .pageState: return 16
        case .atomic: return 32
        case .gpcAtomic: return 32
        case .ringSetup: return 16
        case .ringClose: return 8
        case .mapRegion: return 8
        default: return nil
        }
    }
}

extension Request: CustomStringConvertible {
    /// For logs, e.g. `READ gpa=0x1000 len=16`. Byte payloads are summarised by their length.
    public var description: String {
        switch self {
        case .hello(let version, let features):
            return "HELLO version=\(version) features=0x\(hex(features, digits: 8))"
        case .ping(let payload):
            return "PING bytes=\(payload.count)"
        case .read(let gpa, let length):
            return "READ gpa=0x\(hex(gpa, digits: 1)) len=\(length)"
        case .write(let gpa, let data):
            return "WRITE gpa=0x\(hex(gpa, digits: 1)) len=\(data.count)"
        case .gpcActivate(let gpa, let length):
            return "GPC_ACTIVATE gpa=0x\(hex(gpa, digits: 1)) len=\(length)"
        case .gpcDeactivate(let handle):
            return "GPC_DEACTIVATE handle=\(handle)"
        case .gpcRead(let handle, let offset, let length):
            return "GPC_READ handle=\(handle) offset=\(offset) len=\(length)"
        case .gpcWrite(let handle, let offset, let data):
            return "GPC_WRITE handle=\(handle) offset=\(offset) len=\(data.count)"
        case .gpcRefresh(let handle, let gpa, let length):
            return "GPC_REFRESH handle=\(handle) gpa=0x\(hex(gpa, digits: 1)) len=\(length)"
        case .setAttributes(let gpa, let size, let attributes):
            return "SET_ATTRIBUTES gpa=0x\(hex(gpa, digits: 1)) size=0x\(hex(size, digits: 1)) "
                + "attributes=0x\(hex(attributes, digits: 1))"
        case .discard(let gpa, let size):
            return "DISCARD gpa=0x\(hex(gpa, digits: 1)) size=0x\(hex(size, digits: 1))"
        case .stats:
            return "STATS"
        case .pageState(let gpa, let pageCount):
            return "PAGE_STATE gpa=0x\(hex(gpa, digits: 1)) npages=\(pageCount)"
        case .readv(let segments):
            return "READV nsegs=\(segments.count)"
        case .writev(let segments, let data):
            return "WRITEV nsegs=\(segments.count) len=\(data.count)"
        case .atomic(let gpa, let arguments):
            return "ATOMIC \(arguments.op) width=\(arguments.width) gpa=0x\(hex(gpa, digits: 1))"
        case .gpcAtomic(let handle, let offset, let arguments):
            return "GPC_ATOMIC \(arguments.op) width=\(arguments.width) handle=\(handle) offset=\(offset)"
        case .ringSetup(let entries, let dataSize):
            return "RING_SETUP entries=\(entries) data_size=\(dataSize)"
        case .ringClose(let ringID):
            return "RING_CLOSE ring_id=\(ringID)"
        case .mapRegion:
            return "MAP_REGION"
        }
    }
}
