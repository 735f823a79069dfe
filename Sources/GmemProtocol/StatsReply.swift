//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// StatsReply: the list of named counters a STATS request returns.
//
//===----------------------------------------------------------------------===//

/// The payload of a successful STATS reply: a list of `{u8 name_len, name, u64 value}` entries.
///
/// Names are 1 to 255 bytes of printable ASCII without spaces (`0x21 ... 0x7e`) and appear at most once. The
/// order is the server's; clients look counters up by name and ignore names they do not know.
public struct StatsReply: Sendable, Hashable {
    /// One named counter.
    public struct Entry: Sendable, Hashable {
        /// The counter's name, e.g. `bytes_read`; printable ASCII, 1 to 255 bytes.
        public let name: String
        /// The counter's value.
        public var value: UInt64

        /// Creates an entry.
        ///
        /// - Throws: ``Errno/invalidArgument`` if `name` is empty, longer than 255 bytes or not printable ASCII.
        public init(name: String, value: UInt64) throws(Errno) {
            guard StatsReply.isValidName(name.utf8) else { throw .invalidArgument }
            self.name = name
            self.value = value
        }
    }

    /// The names every gmemd server reports, at least.
    public static let requiredNames: [String] = [
        "reads", "writes", "bytes_read", "bytes_written", "restores", "zaps", "protect_calls", "protect_failures",
        "gpc_activations", "gpc_active", "gpc_invalidations", "connections", "connections_total", "errors",
    ]

    /// The entries, in wire order.
    public private(set) var entries: [Entry]

    /// Creates a reply from validated entries.
    ///
    /// - Throws: ``Errno/invalidArgument`` if a name appears twice.
    public init(entries: [Entry]) throws(Errno) {
        var seen = Set<String>()
        for entry in entries {
            guard seen.insert(entry.name).inserted else { throw .invalidArgument }
        }
        self.entries = entries
    }

    /// Creates a reply from name and value pairs, e.g. `["reads": 3, "writes": 1]`, keeping their order.
    ///
    /// - Throws: ``Errno/invalidArgument`` if a name is invalid or appears twice.
    public init(_ pairs: KeyValuePairs<String, UInt64>) throws(Errno) {
        var entries: [Entry] = []
        entries.reserveCapacity(pairs.count)
        for (name, value) in pairs {
            entries.append(try Entry(name: name, value: value))
        }
        try self.init(entries: entries)
    }

    /// Creates a reply from `(name, value)` pairs, keeping their order.
    ///
    /// - Throws: ``Errno/invalidArgument`` if a name is invalid or appears twice.
    public init(_ pairs: [(name: String, value: UInt64)]) throws(Errno) {
        var entries: [Entry] = []
        entries.reserveCapacity(pairs.count)
        for pair in pairs {
            entries.append(try Entry(name: pair.name, value: pair.value))
        }
        try self.init(entries: entries)
    }

    /// The entries as `(name, value)` pairs, in wire order.
    public var pairs: [(name: String, value: UInt64)] {
        self.entries.map { ($0.name, $0.value) }
    }

    /// The value of the counter called `name`, or `nil` if the server did not report it.
    public subscript(name: String) -> UInt64? {
        self.entries.first { $0.name == name }?.value
    }

    /// Whether `name` is 1 to 255 bytes of printable, non-space ASCII.
    static func isValidName<Bytes: Collection<UInt8>>(_ name: Bytes) -> Bool {
        let count = name.count
        return count >= 1 && count <= Int(UInt8.max) && name.allSatisfy { $0 >= 0x21 && $0 <= 0x7e }
    }
}

extension StatsReply: WireEncodable, WireDecodable {
    /// `Σ (1 + name bytes + 8)` over the entries.
    public var encodedLength: Int {
        self.entries.reduce(0) { $0 + 1 + $1.name.utf8.count + 8 }
    }

    /// Appends every entry in order.
    public func write(to writer: inout some WireWriter) {
        for entry in self.entries {
            // Entry.init checked: 1 ... 255 ASCII bytes.
            writer.writeInteger(UInt8(truncatingIfNeeded: entry.name.utf8.count))
            var name = entry.name
            name.withUTF8 { writer.writeBytes(UnsafeRawBufferPointer($0)) }
            writer.writeInteger(entry.value)
        }
    }

    /// Decodes a list of entries; an empty payload is an empty list.
    ///
    /// - Throws: ``Errno/protocolError`` if an entry is truncated, a name is empty, not printable ASCII, or
    ///   appears twice.
    public init(decoding payload: UnsafeRawBufferPointer) throws(Errno) {
        var reader = WireReader(payload, malformedError: .protocolError)
        var entries: [Entry] = []
        var seen = Set<String>()
        while !reader.isAtEnd {
            let nameLength = try reader.readInteger(as: UInt8.self)
            let nameBytes = try reader.readBytes(count: Int(nameLength))
            let value = try reader.readInteger(as: UInt64.self)
            guard StatsReply.isValidName(nameBytes) else { throw .protocolError }
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard seen.insert(name).inserted else { throw .protocolError }
            entries.append(Entry(validatedName: name, value: value))
        }
        self.entries = entries
    }
}

extension StatsReply.Entry {
    /// Creates an entry whose name the caller has validated.
    fileprivate init(validatedName name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}
