//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Operations: what each command does on a connection, shared by the subcommands and `session`.
//
//===----------------------------------------------------------------------===//

import GmemClient
import GmemCommandLine
import GmemProtocol

/// The operations of gmemctl, each run on an open connection and returning what to print.
///
/// Subcommands and `session` lines call the same functions, so both print the same text and JSON.
enum Operations {
    // MARK: info

    static func info(_ client: GmemClient) -> Report {
        let hello = client.hello
        let features = featureNames(hello.features)
        let flags = regionFlagNames(hello.regionFlags)
        var rows: [(String, String)] = [
            ("socket", client.socketPath),
            ("version", "\(hello.version)"),
            ("features", features.isEmpty ? "none" : features.joined(separator: "|")),
            ("page_size", Number.describe(UInt64(hello.pageSize))),
            ("folio_size", Number.describe(UInt64(hello.folioSize))),
            ("region_size", Number.describe(hello.regionSize)),
            ("region_id", HelloReply.formatted(regionID: hello.regionID)),
            ("max_payload", Number.describe(UInt64(hello.maxPayload))),
            ("max_gpcs", "\(hello.maxGpcs)"),
            ("region_flags", flags.isEmpty ? "none" : flags.joined(separator: "|")),
        ]
        // max_segments means something only with DEVICE_OPS granted (it is the reserved field otherwise).
        let deviceOps = hello.features.contains(.deviceOps)
        if deviceOps { rows.insert(("max_segments", "\(hello.maxSegments)"), at: 9) }
        var json: [(String, JSONValue)] = [
            ("socket", .string(client.socketPath)),
            ("version", .number(hello.version)),
            ("features", .array(features.map { .string($0) })),
            ("page_size", .number(hello.pageSize)),
            ("folio_size", .number(hello.folioSize)),
            ("region_size", .number(hello.regionSize)),
            ("region_id", .string(HelloReply.formatted(regionID: hello.regionID))),
            ("max_payload", .number(hello.maxPayload)),
            ("max_gpcs", .number(hello.maxGpcs)),
            ("region_flags", .array(flags.map { .string($0) })),
            ("read_only", .bool(hello.regionFlags.contains(.readOnly))),
            ("recovered", .bool(hello.regionFlags.contains(.recovered))),
        ]
        if deviceOps { json.append(("max_segments", .number(hello.maxSegments))) }
        return Report(text: table(rows), json: .object(json))
    }

    /// `EVENTS`, `DEVICE_OPS`, or `BIT(n)` for bits protocol v1 does not define.
    static func featureNames(_ features: HelloReply.Features) -> [String] {
        names(
            features.rawValue,
            known: [
                (HelloReply.Features.events.rawValue, "EVENTS"), (HelloReply.Features.deviceOps.rawValue, "DEVICE_OPS"),
            ]
        )
    }

    /// `NO_DIRECT_MAP`, `SECRETMEM`, `READ_ONLY`, `RECOVERED`, or `BIT(n)`.
    static func regionFlagNames(_ flags: HelloReply.RegionFlags) -> [String] {
        names(
            flags.rawValue,
            known: [
                (HelloReply.RegionFlags.noDirectMap.rawValue, "NO_DIRECT_MAP"),
                (HelloReply.RegionFlags.secretmem.rawValue, "SECRETMEM"),
                (HelloReply.RegionFlags.readOnly.rawValue, "READ_ONLY"),
                (HelloReply.RegionFlags.recovered.rawValue, "RECOVERED"),
            ]
        )
    }

    private static func names(_ bits: UInt32, known: [(UInt32, String)]) -> [String] {
        var result: [String] = []
        for bit in 0..<32 where bits & (1 << bit) != 0 {
            result.append(known.first { $0.0 == 1 << bit }?.1 ?? "BIT(\(bit))")
        }
        return result
    }

    // MARK: memory

    static func read(_ client: GmemClient, gpa: UInt64, count: Int) async throws -> Report {
        let bytes = try await client.read(at: gpa, count: count)
        return Report(
            text: Bytes.hexdump(bytes, base: gpa),
            json: .object([
                ("gpa", .number(gpa)), ("length", .number(bytes.count)), ("hex", .string(Bytes.hexString(bytes))),
            ])
        )
    }

    static func write(_ client: GmemClient, gpa: UInt64, bytes: [UInt8]) async throws -> Report {
        try await client.write(at: gpa, bytes: bytes)
        return Report(
            text: "wrote \(bytes.count) bytes at \(hexAddress(gpa))",
            json: .object([("gpa", .number(gpa)), ("written", .number(bytes.count))])
        )
    }

    static func discard(_ client: GmemClient, gpa: UInt64, size: UInt64) async throws -> Report {
        try await client.discard(at: gpa, size: size)
        return Report(
            text: "discarded \(ByteCount(size)) at \(hexAddress(gpa))",
            json: .object([("gpa", .number(gpa)), ("size", .number(size)), ("discarded", .bool(true))])
        )
    }

    static func convert(_ client: GmemClient, gpa: UInt64, size: UInt64, toPrivate: Bool) async throws -> Report {
        try await client.setAttributes(at: gpa, size: size, private: toPrivate)
        let attribute = toPrivate ? "private" : "shared"
        return Report(
            text: "converted \(ByteCount(size)) at \(hexAddress(gpa)) to \(attribute)",
            json: .object([("gpa", .number(gpa)), ("size", .number(size)), ("attribute", .string(attribute))])
        )
    }

    // MARK: stats

    /// The counters as `name value` rows; with `previous`, a third column of changes since then.
    static func stats(_ stats: StatsReply, previous: StatsReply? = nil) -> Report {
        let rows = stats.pairs.map { pair -> (String, String) in
            var value = String(pair.value)
            if let previous, let before = previous[pair.name] {
                let delta = Int64(clamping: pair.value) &- Int64(clamping: before)
                value = value.padding(to: 14) + (delta >= 0 ? "+\(delta)" : "\(delta)")
            }
            return (pair.name, value)
        }
        return Report(text: table(rows), json: .object(stats.pairs.map { ($0.name, .number($0.value)) }))
    }

    // MARK: helpers

    /// Refuses a PING payload over `max_payload` before allocating it.
    static func checkPingSize(_ size: Int, client: GmemClient) throws {
        guard size <= Int(client.hello.maxPayload) else {
            throw CommandFailure(
                message: "a PING payload of \(size) bytes exceeds max_payload (\(client.hello.maxPayload))",
                errno: .messageTooLong
            )
        }
    }

    /// Two aligned columns.
    static func table(_ rows: [(String, String)]) -> String {
        let width = (rows.map(\.0.count).max() ?? 0) + 2
        return rows.map { $0.0.padding(to: width) + $0.1 }.joined(separator: "\n")
    }
}

extension String {
    /// The string followed by spaces up to `width` characters.
    func padding(to width: Int) -> String {
        self.count >= width ? self : self + String(repeating: " ", count: width - self.count)
    }
}
