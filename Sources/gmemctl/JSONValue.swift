//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// JSONValue: the machine-readable output of --json, without Foundation.
//
//===----------------------------------------------------------------------===//

/// A JSON value whose objects keep their keys in the order they were built, so `--json` output is stable.
///
/// Integers are kept exact (`UInt64` and `Int64`), never rounded through `Double`; 64-bit identifiers that
/// JavaScript consumers could not hold exactly (`region_id`) are emitted as hex strings by the commands instead.
enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        lhs.serialized == rhs.serialized
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.serialized)
    }

    /// Compact JSON text on one line.
    var serialized: String {
        var text = ""
        self.append(to: &text)
        return text
    }

    private func append(to text: inout String) {
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
            text += "["
            for (index, value) in values.enumerated() {
                if index > 0 { text += "," }
                value.append(to: &text)
            }
            text += "]"
        case .object(let members):
            text += "{"
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { text += "," }
                JSONValue.appendQuoted(key, to: &text)
                text += ":"
                value.append(to: &text)
            }
            text += "}"
        }
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
    /// An unsigned integer member value.
    static func number<T: BinaryInteger>(_ value: T) -> JSONValue {
        if let exact = UInt64(exactly: value) { return .unsigned(exact) }
        return .signed(Int64(clamping: value))
    }

    /// `"0x…"` for a 64-bit identifier.
    static func hex(_ value: UInt64) -> JSONValue {
        .string("0x" + hexDigits(value, width: 1))
    }
}

/// Lower-case hex of `value`, zero-padded to at least `width` digits.
func hexDigits(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// `0x1000`.
func hexAddress(_ value: UInt64) -> String {
    "0x" + hexDigits(value, width: 1)
}
