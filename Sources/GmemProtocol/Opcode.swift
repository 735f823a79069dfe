//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Opcode: the u16 at offset 4 of every frame header.
//
//===----------------------------------------------------------------------===//

/// The operation a frame carries.
///
/// This is a struct rather than an enum so that any `u16` read off the wire can be represented: an unknown opcode is
/// not a decoding failure of the header, it is answered with `-EOPNOTSUPP` by ``Request/decode(header:payload:)``.
/// Replies carry the opcode of the request they answer; event frames carry an event opcode (`0x80` and up).
public struct Opcode: RawRepresentable, Hashable, Sendable {
    /// The wire value.
    public var rawValue: UInt16

    /// Wraps any wire value, known or not.
    @inlinable
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }
}

extension Opcode {
    /// 1: version and feature negotiation; must be the first request on a connection.
    public static let hello = Opcode(rawValue: 1)
    /// 2: echo the payload.
    public static let ping = Opcode(rawValue: 2)
    /// 3: read guest memory.
    public static let read = Opcode(rawValue: 3)
    /// 4: write guest memory.
    public static let write = Opcode(rawValue: 4)
    /// 5: create a guest page cache (GPC) over a range that does not cross a page.
    public static let gpcActivate = Opcode(rawValue: 5)
    /// 6: destroy a guest page cache.
    public static let gpcDeactivate = Opcode(rawValue: 6)
    /// 7: read through a guest page cache.
    public static let gpcRead = Opcode(rawValue: 7)
    /// 8: write through a guest page cache.
    public static let gpcWrite = Opcode(rawValue: 8)
    /// 9: re-point and revalidate a guest page cache.
    public static let gpcRefresh = Opcode(rawValue: 9)
    /// 10: set memory attributes (only PRIVATE exists) on a page-aligned range.
    public static let setAttributes = Opcode(rawValue: 10)
    /// 11: discard the contents of a page-aligned range.
    public static let discard = Opcode(rawValue: 11)
    /// 12: daemon counters.
    public static let stats = Opcode(rawValue: 12)
    /// 13: per-page refcount and state.
    public static let pageState = Opcode(rawValue: 13)
    /// 14: read several segments of guest memory in one request.
    public static let readv = Opcode(rawValue: 14)
    /// 15: write several segments of guest memory in one request.
    public static let writev = Opcode(rawValue: 15)
    /// 16: an atomic operation on a naturally aligned value of guest memory.
    public static let atomic = Opcode(rawValue: 16)
    /// 17: an atomic operation through a guest page cache.
    public static let gpcAtomic = Opcode(rawValue: 17)
    /// 18: create a shared-memory ring; the reply carries its memfd and two doorbells.
    public static let ringSetup = Opcode(rawValue: 18)
    /// 19: stop serving a ring.
    public static let ringClose = Opcode(rawValue: 19)
    /// 20: hand the guest memfd itself to a trusted peer (the vCPU process); the reply carries it.
    public static let mapRegion = Opcode(rawValue: 20)

    /// 0x80: event frame sent when a guest page cache loses its mapping.
    public static let gpcInvalidated = Opcode(rawValue: 0x80)
    /// 0x81: event frame sent when the server stops a ring whose indices are corrupt, before it closes.
    public static let ringFailed = Opcode(rawValue: 0x81)

    /// Every request opcode of protocol v1, in numeric order.
    public static let allRequests: [Opcode] = [
        .hello, .ping, .read, .write, .gpcActivate, .gpcDeactivate, .gpcRead, .gpcWrite, .gpcRefresh,
        .setAttributes, .discard, .stats, .pageState, .readv, .writev, .atomic, .gpcAtomic, .ringSetup, .ringClose,
        .mapRegion,
    ]

    /// Every event opcode of protocol v1.
    public static let allEvents: [Opcode] = [.gpcInvalidated, .ringFailed]

    /// Whether a client may send this opcode in a request (1 through 20).
    @inlinable
    public var isKnownRequest: Bool {
        self.rawValue >= Opcode.hello.rawValue && self.rawValue <= Opcode.mapRegion.rawValue
    }

    /// Whether this opcode is one of the event opcodes of protocol v1.
    @inlinable
    public var isKnownEvent: Bool {
        self == .gpcInvalidated || self == .ringFailed
    }

    /// Whether a request with this opcode changes guest memory or its attributes, or (MAP_REGION) hands out the
    /// means to.
    ///
    /// A read-only client sending one of these gets `-EPERM` (precedence rule 5). ATOMIC and GPC_ATOMIC modify
    /// unless their operation is LOAD, which only ``Request/isModifying`` can tell.
    @inlinable
    public var isModifying: Bool {
        self == .write || self == .gpcWrite || self == .setAttributes || self == .discard || self == .writev
            || self == .mapRegion
    }
}

extension Opcode: CustomStringConvertible {
    /// The protocol name, e.g. `GPC_ACTIVATE`, or `OPCODE(0x00ff)` for a value the protocol does not define.
    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .ping: return "PING"
        case .read: return "READ"
        case .write: return "WRITE"
        case .gpcActivate: return "GPC_ACTIVATE"
        case .gpcDeactivate: return "GPC_DEACTIVATE"
        case .gpcRead: return "GPC_READ"
        case .gpcWrite: return "GPC_WRITE"
        case .gpcRefresh: return "GPC_REFRESH"
        case .setAttributes: return "SET_ATTRIBUTES"
        case .discard: return "DISCARD"
        case .stats: return "STATS"
        case .pageState: return "PAGE_STATE"
        case .readv: return "READV"
        case .writev: return "WRITEV"
        case .atomic: return "ATOMIC"
        case .gpcAtomic: return "GPC_ATOMIC"
        case .ringSetup: return "RING_SETUP"
        case .ringClose: return "RING_CLOSE"
        case .mapRegion: return "MAP_REGION"
        case .gpcInvalidated: return "GPC_INVALIDATED"
        case .ringFailed: return "RING_FAILED"
        default: return "OPCODE(0x\(hex(self.rawValue, digits: 4)))"
        }
    }
}

/// Lower-case hexadecimal with leading zeros, without Foundation.
func hex<T: BinaryInteger>(_ value: T, digits: Int) -> String {
    let text = String(value, radix: 16)
    guard text.count < digits else { return text }
    return String(repeating: "0", count: digits - text.count) + text
}
