/// Journal field names for swift-log metadata keys.
///
/// journald keeps only fields named with upper-case letters, digits and
/// underscores, not starting with an underscore (those are trusted fields)
/// or a digit, at most 64 bytes long; anything else is silently dropped. So
/// every key gets the `GMEM_` prefix, camel-case humps and every other
/// character become underscores, and letters are upper-cased:
/// `connection` → `GMEM_CONNECTION`, `peer uid` → `GMEM_PEER_UID`,
/// `gpa` → `GMEM_GPA`, `readOnly` → `GMEM_READ_ONLY`.
public enum JournalFieldName {
    public static let prefix = "GMEM_"
    public static let maximumLength = 64

    /// The journal field name for a metadata key.
    public static func forMetadataKey(_ key: String) -> String {
        var name = Self.prefix
        var previous: UInt8 = UInt8(ascii: "_")
        var previousWasLower = false
        for byte in key.utf8 {
            let mapped: UInt8
            var isLower = false
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"):
                mapped = byte - 32
                isLower = true
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                // A hump (`readOnly`) starts a new word.
                if previousWasLower { Self.append(UInt8(ascii: "_"), to: &name, after: &previous) }
                mapped = byte
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                mapped = byte
            default:
                mapped = UInt8(ascii: "_")
            }
            Self.append(mapped, to: &name, after: &previous)
            previousWasLower = isLower
        }
        // No trailing separators, and never just the prefix.
        while name.utf8.count > Self.prefix.count, name.hasSuffix("_") { name.removeLast() }
        if name == Self.prefix { name += "FIELD" }
        if name.utf8.count > Self.maximumLength { name = String(name.utf8.prefix(Self.maximumLength))! }
        return name
    }

    /// Appends `byte`, folding runs of underscores into one.
    private static func append(_ byte: UInt8, to name: inout String, after previous: inout UInt8) {
        if byte == UInt8(ascii: "_") && previous == byte { return }
        name.unicodeScalars.append(Unicode.Scalar(byte))
        previous = byte
    }

    /// Whether journald would keep a field of this name.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, first != UInt8(ascii: "_"),
            !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
            name.utf8.count <= Self.maximumLength
        else { return false }
        return name.utf8.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }
}
