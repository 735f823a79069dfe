//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// SessionInterpreter: one `gmemctl session` line, parsed and run on the session's connection.
//
//===----------------------------------------------------------------------===//

import GmemClient
import GmemCommandLine
import GmemProtocol

/// Runs session lines on one connection and keeps the GPC handles they activate.
///
/// Handles stay known after `deactivate`, so that later uses get gmemd's own `ENOENT`; a handle this session never
/// activated fails locally with the same error. Not `Sendable`: used by the session's one task.
final class SessionInterpreter {
    /// The commands, as shown by `help` and `gmemctl session --help`.
    static let help = """
        Commands (numbers as on the command line: 4096, 0x1000, 4K):
          activate GPA LEN          activate a GPC; prints its handle H
          gpc-read H OFF LEN        read LEN bytes at offset OFF of GPC H
          gpc-write H OFF HEX       write hex bytes at offset OFF of GPC H
          refresh H [GPA LEN]       revalidate GPC H (and move it to GPA LEN)
          deactivate H              deactivate GPC H
          read GPA LEN              read guest memory (hexdump)
          write GPA HEX             write hex bytes to guest memory
          convert GPA SIZE private|shared
          discard GPA SIZE
          pages GPA COUNT           page map, as 'gmemctl pages' without the legend
          stats | info | ping [SIZE] | help
        """

    let client: GmemClient
    private var caches: [UInt64: GuestPageCacheHandle] = [:]

    init(client: GmemClient) {
        self.client = client
    }

    /// The words of `line`, without a `#` comment.
    static func words(of line: String) -> [String] {
        var words: [String] = []
        for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) {
            if word.hasPrefix("#") { break }
            words.append(String(word))
        }
        return words
    }

    /// Runs one non-empty line; returns what to print.
    ///
    /// - Throws: ``GmemClientError`` from gmemd, ``CommandFailure`` for an unknown command, a malformed argument
    ///   or an unknown handle.
    func execute(_ words: [String]) async throws -> Report? {
        guard let command = words.first else { return nil }
        let arguments = Array(words.dropFirst())
        switch command {
        case "activate":
            let (gpa, length) = try Self.expect(arguments, "activate GPA LEN") {
                try (parseNumber($0[0]), parseLength($0[1]))
            }
            let cache = try await self.client.activateCache(at: gpa, length: length)
            self.caches[cache.handle] = cache
            return Report(
                text: "handle \(cache.handle)",
                json: .object([("handle", .number(cache.handle)), ("gpa", .number(gpa)), ("length", .number(length))])
            )

        case "gpc-read":
            let (cache, offset, count) = try Self.expect(arguments, "gpc-read H OFF LEN") {
                try (self.cache($0[0]), parseLength($0[1]), parseLength($0[2]))
            }
            let bytes = try await cache.read(offset: offset, count: count)
            return Report(
                text: Bytes.hexdump(bytes, base: cache.gpa &+ UInt64(offset)),
                json: .object([
                    ("handle", .number(cache.handle)), ("offset", .number(offset)), ("length", .number(bytes.count)),
                    ("hex", .string(Bytes.hexString(bytes))),
                ])
            )

        case "gpc-write":
            let (cache, offset, bytes) = try Self.expect(arguments, "gpc-write H OFF HEX", minimum: 3) {
                try (self.cache($0[0]), parseLength($0[1]), parseHex($0[2...]))
            }
            try await cache.write(offset: offset, bytes: bytes)
            return Report(
                text: "wrote \(bytes.count) bytes to GPC \(cache.handle) at offset \(offset)",
                json: .object([
                    ("handle", .number(cache.handle)), ("offset", .number(offset)), ("written", .number(bytes.count)),
                ])
            )

        case "refresh":
            if arguments.count == 1 {
                let cache = try self.cache(arguments[0])
                try await cache.refresh()
                return Self.refreshed(cache)
            }
            let (cache, gpa, length) = try Self.expect(arguments, "refresh H [GPA LEN]") {
                try (self.cache($0[0]), parseNumber($0[1]), parseLength($0[2]))
            }
            try await cache.refresh(at: gpa, length: length)
            return Self.refreshed(cache)

        case "deactivate":
            let cache = try Self.expect(arguments, "deactivate H") { try self.cache($0[0]) }
            try await cache.deactivate()
            return Report(
                text: "deactivated GPC \(cache.handle)",
                json: .object([("handle", .number(cache.handle)), ("deactivated", .bool(true))])
            )

        case "read":
            let (gpa, count) = try Self.expect(arguments, "read GPA LEN") {
                try (parseNumber($0[0]), parseLength($0[1]))
            }
            return try await Operations.read(self.client, gpa: gpa, count: count)

        case "write":
            let (gpa, bytes) = try Self.expect(arguments, "write GPA HEX", minimum: 2) {
                try (parseNumber($0[0]), parseHex($0[1...]))
            }
            return try await Operations.write(self.client, gpa: gpa, bytes: bytes)

        case "convert":
            let (gpa, size, toPrivate) = try Self.expect(arguments, "convert GPA SIZE private|shared") {
                try (parseNumber($0[0]), parseNumber($0[1]), parseAttribute($0[2]))
            }
            return try await Operations.convert(self.client, gpa: gpa, size: size, toPrivate: toPrivate)

        case "discard":
            let (gpa, size) = try Self.expect(arguments, "discard GPA SIZE") {
                try (parseNumber($0[0]), parseNumber($0[1]))
            }
            return try await Operations.discard(self.client, gpa: gpa, size: size)

        case "pages":
            let (gpa, count) = try Self.expect(arguments, "pages GPA COUNT") {
                try (parseNumber($0[0]), parseLength($0[1]))
            }
            return try await Operations.pages(self.client, gpa: gpa, count: count, legend: false)

        case "stats":
            try Self.expect(arguments, "stats") { _ in }
            return Operations.stats(try await self.client.stats())

        case "info":
            try Self.expect(arguments, "info") { _ in }
            return Operations.info(self.client)

        case "ping":
            let size = try Self.expect(arguments, "ping [SIZE]", minimum: 0, maximum: 1) {
                try $0.first.map(parseLength) ?? 0
            }
            try Operations.checkPingSize(size, client: self.client)
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                try await self.client.ping((0..<size).map { UInt8(truncatingIfNeeded: $0) })
            }
            return Report(
                text: "pong \(size) bytes in \(formatFixed(elapsed.milliseconds, digits: 3)) ms",
                json: .object([("bytes", .number(size)), ("rtt_ms", .double(elapsed.milliseconds))])
            )

        case "help":
            return Report(text: Self.help, json: .object([("help", .string(Self.help))]))

        default:
            throw CommandFailure(message: "unknown command '\(command)'; try 'help'")
        }
    }

    // MARK: Arguments

    private static func refreshed(_ cache: GuestPageCacheHandle) -> Report {
        Report(
            text: "refreshed \(cache)",
            json: .object([
                ("handle", .number(cache.handle)), ("gpa", .number(cache.gpa)), ("length", .number(cache.length)),
            ])
        )
    }

    /// Checks the argument count (exactly the usage's unless `minimum`/`maximum` say otherwise), then parses.
    @discardableResult
    private static func expect<T>(
        _ arguments: [String],
        _ usage: String,
        minimum: Int? = nil,
        maximum: Int? = nil,
        _ parse: ([String]) throws -> T
    ) throws -> T {
        let exact = usage.split(separator: " ").count - 1
        let low = minimum ?? exact
        let high = maximum ?? (minimum == nil ? exact : Int.max)
        guard (low...high).contains(arguments.count) else {
            throw CommandFailure(message: "usage: \(usage)")
        }
        return try parse(arguments)
    }

    private func cache(_ word: String) throws -> GuestPageCacheHandle {
        let handle = try parseNumber(word)
        guard let cache = self.caches[handle] else {
            throw CommandFailure(message: "GPC \(handle) was not activated in this session", errno: .noSuchEntry)
        }
        return cache
    }
}

private func parseNumber(_ word: String) throws -> UInt64 {
    guard let value = ByteCount(parsing: word) else {
        throw CommandFailure(message: "'\(word)' is not a number", errno: .invalidArgument)
    }
    return value.value
}

private func parseLength(_ word: String) throws -> Int {
    guard let value = Int(exactly: try parseNumber(word)) else {
        throw CommandFailure(message: "'\(word)' is too large", errno: .invalidArgument)
    }
    return value
}

private func parseHex(_ words: ArraySlice<String>) throws -> [UInt8] {
    let text = words.joined(separator: " ")
    guard let bytes = Bytes.parseHex(text) else {
        throw CommandFailure(message: "'\(text)' is not an even number of hex digits", errno: .invalidArgument)
    }
    return bytes
}

private func parseAttribute(_ word: String) throws -> Bool {
    switch word {
    case "private", "--private": return true
    case "shared", "--shared": return false
    default: throw CommandFailure(message: "'\(word)' is neither private nor shared", errno: .invalidArgument)
    }
}
