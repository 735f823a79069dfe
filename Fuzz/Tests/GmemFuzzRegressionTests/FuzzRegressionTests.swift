import Foundation
import GmemFuzzHarness
import Testing

/// Replays every input under Fuzz/regressions (inputs that once broke a check)
/// and Fuzz/corpus (the seed corpus) through the fuzz harness, without
/// libFuzzer: each must pass every check again. Serialized: the inputs of one
/// memory configuration share one GuestMemory (FuzzHarness.setups), and an
/// input's check after close must not see another input's references.
@Suite("Fuzz regressions", .serialized)
struct FuzzRegressionTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    static func inputs(in folder: String) -> [String] {
        let directory = Self.fuzzDirectory.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().map { "\(folder)/\($0)" }
    }

    static let regressions = Self.inputs(in: "regressions")

    @Test("saved findings pass", arguments: Self.regressions)
    func regression(_ path: String) throws {
        let bytes = try [UInt8](Data(contentsOf: Self.fuzzDirectory.appendingPathComponent(path)))
        let violations = FuzzHarness.run(bytes)
        #expect(violations.isEmpty, "\(path): \(violations.joined(separator: "\n"))")
    }

    /// The first finding: with `--max-payload 64` the STATS reply (313 bytes)
    /// outgrew max_payload. The server now raises max_payload to its floor
    /// (4 KiB); HELLO must report that and every reply must fit it.
    @Test("a max_payload below the floor is raised, and STATS fits it", arguments: [16, 64, 300, 4095])
    func maxPayloadFloor(_ requested: Int) throws {
        let bytes = try [UInt8](
            Data(contentsOf: Self.fuzzDirectory.appendingPathComponent("regressions/stats-reply-exceeds-max-payload"))
        )
        var input = FuzzInput(bytes.withUnsafeBytes { $0 })
        input.maxPayload = requested
        let violations = FuzzHarness.run(input)
        #expect(violations.isEmpty, "max_payload \(requested): \(violations.joined(separator: "\n"))")
    }

    @Test("the seed corpus passes")
    func corpus() throws {
        let paths = Self.inputs(in: "corpus")
        #expect(paths.count >= 20, "Fuzz/corpus holds \(paths.count) inputs; run Fuzz/make-corpus.py")
        for path in paths {
            let bytes = try [UInt8](Data(contentsOf: Self.fuzzDirectory.appendingPathComponent(path)))
            let violations = FuzzHarness.run(bytes)
            #expect(violations.isEmpty, "\(path): \(violations.joined(separator: "\n"))")
        }
    }
}
