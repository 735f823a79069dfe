//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Device-model commands: readv (one READV of several segments) and atomic (ATOMIC, GPC_ATOMIC's socket twin).
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient
import GmemCommandLine
import GmemProtocol

/// `gmemctl readv GPA:LEN...`.
struct Readv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read several segments of guest memory in one READV; print a hexdump of each.",
        discussion: """
            Each segment is GPA:LEN, e.g. 0x1000:16 4K:8. The daemon restores the pages of all segments at once, \
            so a chain over contiguous private pages costs one restore and one zap. The total must fit max_payload.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The segments, as GPA:LEN.", valueName: "gpa:len"), transform: Readv.parseSegment)
    var segments: [Segment]

    struct Segment {
        var gpa: UInt64
        var length: Int
    }

    static func parseSegment(_ text: String) throws -> Segment {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ValidationError("a segment is GPA:LEN, not '\(text)'") }
        return Segment(gpa: try Number.parse(String(parts[0])), length: try Number.parseLength(String(parts[1])))
    }

    func validate() throws {
        if self.segments.isEmpty { throw ValidationError("give at least one GPA:LEN segment") }
    }

    func run() async throws {
        try await self.global.withClient { client in
            let segments = self.segments.map { (gpa: $0.gpa, count: $0.length) }
            self.global.emit(try await Operations.readv(client, segments: segments))
        }
    }
}

/// `gmemctl atomic OP GPA [OPERAND] [--expected X] [--width N]`.
struct Atomic: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an atomic operation on a naturally aligned value of guest memory; print the old value.",
        discussion: """
            OP is load, store, xchg, cmpxchg, fetch-add, fetch-or or fetch-and. Every OP but load takes an \
            OPERAND; cmpxchg also takes --expected and stores OPERAND only if the value equals it. The value is \
            --width bytes (1, 2, 4 or 8; default 8), little-endian, at a GPA that is a multiple of the width. \
            load prints the value; store prints 0 (it reads nothing); the others print the value before the change.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The operation.", valueName: "op"), transform: Atomic.parseOp)
    var op: AtomicOp

    @Argument(help: "The operand's guest physical address, a multiple of --width.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: "The value to store, add, or, and or exchange.", transform: Number.parse)
    var operand: UInt64?

    @Option(help: "cmpxchg: the value expected in memory.", transform: Number.parse)
    var expected: UInt64?

    @Option(help: "Bytes of the value: 1, 2, 4 or 8.")
    var width = 8

    static let opNames: [(String, AtomicOp)] = [
        ("load", .load), ("store", .store), ("xchg", .exchange), ("cmpxchg", .compareExchange),
        ("fetch-add", .fetchAdd), ("fetch-or", .fetchOr), ("fetch-and", .fetchAnd),
    ]

    static func parseOp(_ text: String) throws -> AtomicOp {
        guard let op = Self.opNames.first(where: { $0.0 == text.lowercased() })?.1 else {
            throw ValidationError(
                "unknown operation '\(text)'; use one of \(Self.opNames.map(\.0).joined(separator: ", "))"
            )
        }
        return op
    }

    func validate() throws {
        guard [1, 2, 4, 8].contains(self.width) else {
            throw ValidationError("--width is 1, 2, 4 or 8, not \(self.width)")
        }
        if self.op == .load && self.operand != nil { throw ValidationError("load takes no OPERAND") }
        if self.op != .load && self.operand == nil { throw ValidationError("\(self.op) needs an OPERAND") }
        if (self.op == .compareExchange) != (self.expected != nil) {
            throw ValidationError(
                self.op == .compareExchange ? "cmpxchg needs --expected" : "only cmpxchg takes --expected"
            )
        }
    }

    func run() async throws {
        try await self.global.withClient { client in
            self.global.emit(
                try await Operations.atomic(
                    client,
                    self.op,
                    width: self.width,
                    gpa: self.gpa,
                    operand: self.operand ?? 0,
                    expected: self.expected ?? 0
                )
            )
        }
    }
}

extension Operations {
    static func readv(_ client: GmemClient, segments: [(gpa: UInt64, count: Int)]) async throws -> Report {
        let results = try await client.readv(segments)
        let text = zip(segments, results).map { segment, bytes in
            bytes.isEmpty ? "\(hexAddress(segment.gpa)): (empty)" : Bytes.hexdump(bytes, base: segment.gpa)
        }
        let json = zip(segments, results).map { segment, bytes in
            JSONValue.object([
                ("gpa", .number(segment.gpa)), ("length", .number(bytes.count)),
                ("hex", .string(Bytes.hexString(bytes))),
            ])
        }
        return Report(text: text.joined(separator: "\n"), json: .object([("segments", .array(json))]))
    }

    static func atomic(
        _ client: GmemClient,
        _ op: AtomicOp,
        width: Int,
        gpa: UInt64,
        operand: UInt64,
        expected: UInt64
    ) async throws -> Report {
        let old = try await client.atomic(op, width: width, at: gpa, operand: operand, expected: expected)
        var text = "\(op) \(width) bytes at \(hexAddress(gpa)): "
        switch op {
        case .load: text += "value \(hexAddress(old)) (\(old))"
        case .store: text += "stored \(hexAddress(operand))"
        case .compareExchange: text += "old \(hexAddress(old)) (\(old)), " + (old == expected ? "stored" : "not stored")
        default: text += "old \(hexAddress(old)) (\(old))"
        }
        var json: [(String, JSONValue)] = [
            ("op", .string(op.description)), ("gpa", .number(gpa)), ("width", .number(width)), ("value", .number(old)),
        ]
        if op == .compareExchange { json.append(("stored", .bool(old == expected))) }
        return Report(text: text, json: .object(json))
    }
}
