/// A size or address as operators type it: decimal or `0x` hex, with an
/// optional binary suffix K, M, G or T (powers of 1024), as in `64M`,
/// `0x1000` or `1T`.
public struct ByteCount: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `text`, or returns nil for anything malformed or overflowing.
    public init?(parsing text: String) {
        var digits = Substring(text.trimmingSpaces())
        guard !digits.isEmpty else { return nil }
        var shift: UInt64 = 0
        switch digits.last?.uppercased() {
        case "K": shift = 10
        case "M": shift = 20
        case "G": shift = 30
        case "T": shift = 40
        default: break
        }
        if shift > 0 {
            digits = digits.dropLast()
            // "64MiB" and "64MB" would be ambiguous; only the bare suffix is accepted.
        }
        let radix: Int
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            digits = digits.dropFirst(2)
            radix = 16
        } else {
            radix = 10
        }
        guard !digits.isEmpty, let base = UInt64(digits.filter { $0 != "_" }, radix: radix) else { return nil }
        let (scaled, overflow) = base.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { return nil }
        self.value = scaled
    }

    /// The shortest exact form: `64M`, `4K`, `12345`.
    public var description: String {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] as [(String, UInt64)]
        where self.value != 0 && self.value & ((1 << shift) - 1) == 0 {
            return "\(self.value >> shift)\(suffix)"
        }
        return "\(self.value)"
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
