//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// JSONValue: the one JSON writer of gmemctl's --json and gmem-bench's reports, without Foundation.
//
//===----------------------------------------------------------------------===//

/// A JSON value whose objects keep their keys in the order they were built, so `--json` output is stable.
///
/// Integers are kept exact (`UInt64` and `Int64`), never rounded through `Double`; 64-bit identifiers that
/// JavaScript consumers could not hold exactly (`region_id`) are emitted as hex strings by the commands instead.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        lhs.serialized == rhs.serialized
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.serialized)
    }

    /// Compact JSON text on one line.
    public var serialized: String {
        var text = ""
        self.append(to: &text, indent: nil)
        return text
    }

    /// Indented JSON text, two spaces a level, `"key": value` members one a line (gmem-bench's reports).
    public var prettyPrinted: String {
        var text = ""
        self.append(to: &text, indent: 0)
        return text
    }

    /// Appends the value; `indent` is the current nesting level when pretty-printing, nil for compact text.
    private func append(to text: inout String, indent: Int?) {
        switch self {
        case .null:
            text += "null"
        case .bool(let value):
            text += value ? "true" : "false"
        case .unsigned(let value):
            text += String(value)
        case .signed(let value):
            text += String(value)
        case .double(let value):
            text += value.isFinite ? String(value) : "null"
        case .string(let value):
            JSONValue.appendQuoted(value, to: &text)
        case .array(let values):
            JSONValue.appendContainer("[", "]", values, to: &text, indent: indent) { value, text, inner in
                value.append(to: &text, indent: inner)
            }
        case .object(let members):
            JSONValue.appendContainer("{", "}", members, to: &text, indent: indent) { member, text, inner in
                JSONValue.appendQuoted(member.0, to: &text)
                text += inner == nil ? ":" : ": "
                member.1.append(to: &text, indent: inner)
            }
        }
    }

    /// Brackets around comma-separated elements: on one line, or (pretty) one element a line, indented one level.
    private static func appendContainer<Element>(
        _ open: String,
        _ close: String,
        _ elements: [Element],
        to text: inout String,
        indent: Int?,
        appendElement: (Element, inout String, Int?) -> Void
    ) {
        text += open
        let inner = indent.map { $0 + 1 }
        for (index, element) in elements.enumerated() {
            if index > 0 { text += "," }
            if let inner { text += "\n" + String(repeating: "  ", count: inner) }
            appendElement(element, &text, inner)
        }
        if let indent, !elements.isEmpty { text += "\n" + String(repeating: "  ", count: indent) }
        text += close
    }

    private static func appendQuoted(_ string: String, to text: inout String) {
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                text += "\\u00" + hexDigits(UInt64(scalar.value), width: 2)
            default:
                text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

extension JSONValue {
    /// An integer member value, exact.
    public static func number<T: BinaryInteger>(_ value: T) -> JSONValue {
        if let exact = UInt64(exactly: value) { return .unsigned(exact) }
        return .signed(Int64(clamping: value))
    }

    /// A measured quantity: printed as an integer when it is one (`1234`, not `1234.0`), else as a decimal;
    /// `null` when not finite.
    public static func measurement(_ value: Double) -> JSONValue {
        if value == value.rounded() && abs(value) < 1e15 { return .signed(Int64(value)) }
        return .double(value)
    }

    /// ``measurement(_:)``, or `null` for nil.
    public static func measurement(_ value: Double?) -> JSONValue {
        value.map { .measurement($0) } ?? .null
    }

    /// `"0x…"` for a 64-bit identifier.
    public static func hex(_ value: UInt64) -> JSONValue {
        .string("0x" + hexDigits(value, width: 1))
    }
}

/// Lower-case hex of `value`, zero-padded to at least `width` digits.
public func hexDigits(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// `0x1000`.
public func hexAddress(_ value: UInt64) -> String {
    "0x" + hexDigits(value, width: 1)
}
