//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The shared conformance table (proto/conformance/cases.txt), parsed as its header describes.
//
//===----------------------------------------------------------------------===//

import Foundation

/// One line of `proto/conformance/cases.txt`: `name | op key=value ... | expect`.
struct ConformanceCase: Sendable {
    var name: String
    var op: String
    var arguments: [String: String]
    /// `ok` with its checks, `errno NAME` or `none`.
    var expectation: [String]
    var line: Int

    /// The table, in file order.
    static func load() throws -> [ConformanceCase] {
        let text = try String(contentsOfFile: Self.path, encoding: .utf8)
        var cases: [ConformanceCase] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard fields.count == 3 else { throw ConformanceError("line \(index + 1): \(fields.count) fields") }
            let words = fields[1].split(separator: " ").map(String.init)
            var arguments: [String: String] = [:]
            for word in words.dropFirst() {
                let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                arguments[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
            }
            cases.append(
                ConformanceCase(
                    name: fields[0],
                    op: words.first ?? "",
                    arguments: arguments,
                    expectation: fields[2].split(separator: " ").map(String.init),
                    line: index + 1
                )
            )
        }
        return cases
    }

    /// `proto/conformance/cases.txt` of this checkout.
    static var path: String {
        var directory = URL(fileURLWithPath: #filePath)
        while directory.path != "/" {
            directory.deleteLastPathComponent()
            let candidate = directory.appendingPathComponent("proto/conformance/cases.txt")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
        }
        return "proto/conformance/cases.txt"
    }

    /// A number: decimal or 0x-prefixed hex.
    static func number(_ text: String) throws -> UInt64 {
        let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let value else { throw ConformanceError("not a number: \(text)") }
        return value
    }

    /// HEX: two digits per byte, memory order.
    static func bytes(_ hex: String) throws -> [UInt8] {
        guard hex.count % 2 == 0 else { throw ConformanceError("odd hex: \(hex)") }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { throw ConformanceError("bad hex: \(hex)") }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// SEGS: `GPA:LEN[*COUNT],...`.
    static func segments(_ text: String) throws -> [(gpa: UInt64, length: UInt32)] {
        var segments: [(gpa: UInt64, length: UInt32)] = []
        for item in text.split(separator: ",") {
            let repeated = item.split(separator: "*")
            let parts = repeated[0].split(separator: ":")
            guard parts.count == 2 else { throw ConformanceError("bad segment: \(item)") }
            let count = repeated.count == 2 ? Int(try number(String(repeated[1]))) : 1
            let segment = (try number(String(parts[0])), UInt32(truncatingIfNeeded: try number(String(parts[1]))))
            segments += Array(repeating: segment, count: count)
        }
        return segments
    }
}

struct ConformanceError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
