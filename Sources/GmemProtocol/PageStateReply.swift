//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// PageStateReply: per-page refcount and state, the payload of a PAGE_STATE reply.
//
//===----------------------------------------------------------------------===//

/// The state of one page: `{u16 refcount, u8 state, u8 reserved = 0}`.
///
/// `state` bit 0 is PRIVATE, bit 1 ACCESSIBLE; the other six bits are 0 in protocol v1.
public struct PageStateEntry: Sendable, Hashable {
    /// Bytes in one encoded entry.
    public static let size = 4

    /// The `state` bit for ``isPrivate``.
    public static let privateBit: UInt8 = 1 << 0
    /// The `state` bit for ``isAccessible``.
    public static let accessibleBit: UInt8 = 1 << 1

    /// How many mappings hold the page, saturated at `UInt16.max`.
    public var refcount: UInt16
    /// Whether the page has the PRIVATE attribute.
    public var isPrivate: Bool
    /// Whether the page is currently accessible to the host.
    public var isAccessible: Bool

    /// Creates an entry from its fields.
    @inlinable
    public init(refcount: UInt16, isPrivate: Bool, isAccessible: Bool) {
        self.refcount = refcount
        self.isPrivate = isPrivate
        self.isAccessible = isAccessible
    }

    /// Creates an entry, saturating `refcount` to `0 ... UInt16.max` as the wire requires.
    @inlinable
    public init(saturatingRefcount refcount: Int, isPrivate: Bool, isAccessible: Bool) {
        self.init(refcount: UInt16(clamping: refcount), isPrivate: isPrivate, isAccessible: isAccessible)
    }

    /// The `state` byte.
    @inlinable
    public var stateByte: UInt8 {
        (self.isPrivate ? PageStateEntry.privateBit : 0) | (self.isAccessible ? PageStateEntry.accessibleBit : 0)
    }

    /// Appends the 4-byte entry; a server streams entries this way straight into its reply buffer.
    @inlinable
    public func write(to writer: inout some WireWriter) {
        writer.writeInteger(self.refcount)
        writer.writeInteger(self.stateByte)
        writer.writeInteger(UInt8(0))
    }

    /// Reads one entry.
    ///
    /// - Throws: the reader's error if it is short, ``Errno/protocolError`` if an undefined state bit or the
    ///   reserved byte is set.
    public init(from reader: inout WireReader) throws(Errno) {
        let refcount = try reader.readInteger(as: UInt16.self)
        let state = try reader.readInteger(as: UInt8.self)
        let reserved = try reader.readInteger(as: UInt8.self)
        let known = PageStateEntry.privateBit | PageStateEntry.accessibleBit
        guard state & ~known == 0, reserved == 0 else { throw .protocolError }
        self.init(
            refcount: refcount,
            isPrivate: state & PageStateEntry.privateBit != 0,
            isAccessible: state & PageStateEntry.accessibleBit != 0
        )
    }
}

/// The payload of a successful PAGE_STATE reply: `npages` consecutive ``PageStateEntry`` values, the first for the
/// page at the request's `gpa`.
public struct PageStateReply: Sendable, Hashable {
    /// One entry per page, in address order.
    public var entries: [PageStateEntry]

    /// Creates a reply.
    public init(entries: [PageStateEntry]) {
        self.entries = entries
    }

    /// The payload length for `pageCount` pages: `4 × pageCount`.
    ///
    /// A server compares it with `max_payload` (rule 6, `-EMSGSIZE`) before collecting any state.
    @inlinable
    public static func payloadLength(pageCount: UInt32) -> Int {
        Int(clamping: UInt64(pageCount) * UInt64(PageStateEntry.size))
    }
}

extension PageStateReply: WireEncodable, WireDecodable {
    /// `4 × entries.count`.
    public var encodedLength: Int {
        self.entries.count * PageStateEntry.size
    }

    /// Appends every entry in order.
    public func write(to writer: inout some WireWriter) {
        for entry in self.entries {
            entry.write(to: &writer)
        }
    }

    /// Decodes a list of entries; an empty payload is zero pages.
    ///
    /// - Throws: ``Errno/protocolError`` if the payload is not a multiple of 4 bytes or an entry is malformed.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        guard payload.count % PageStateEntry.size == 0 else { throw .protocolError }
        var reader = WireReader(payload, malformedError: .protocolError)
        var entries: [PageStateEntry] = []
        entries.reserveCapacity(payload.count / PageStateEntry.size)
        while !reader.isAtEnd {
            entries.append(try PageStateEntry(from: &reader))
        }
        self.entries = entries
    }
}
