import Foundation
import GmemFuzzHarness
import Testing

/// Replays every input under Fuzz/regressions (inputs that once broke a check)
/// and Fuzz/corpus (the seed corpus) through the fuzz harness, without
/// libFuzzer: each must pass every check again.
@Suite("Fuzz regressions")
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
