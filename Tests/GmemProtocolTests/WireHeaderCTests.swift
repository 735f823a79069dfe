import Foundation
import GmemProtocol
import Testing

/// `proto/gmem_wire.h` must compile cleanly and satisfy every `_Static_assert` of `proto/wire_check.c`.
@Suite("C header")
struct WireHeaderCTests {
    /// The first executable `cc` on `PATH`, or `nil`.
    static func findCompiler() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("cc")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        return nil
    }

    @Test("cc -std=c11 -Wall -Werror -fsyntax-only proto/wire_check.c succeeds")
    func wireCheckCompiles() throws {
        guard let compiler = Self.findCompiler() else {
            Issue.record(
                """
                `cc` was not found on PATH, so proto/gmem_wire.h could not be checked. Install a C compiler \
                (e.g. `apt-get install gcc`) or put one on PATH as `cc`; this test does not skip.
                """
            )
            return
        }
        let process = Process()
        process.executableURL = compiler
        process.arguments = ["-std=c11", "-Wall", "-Werror", "-fsyntax-only", "proto/wire_check.c"]
        process.currentDirectoryURL = GoldenVectors.repositoryRoot
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let diagnostics = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(
            process.terminationStatus == 0,
            "\(compiler.path) -std=c11 -Wall -Werror -fsyntax-only proto/wire_check.c failed:\n\(diagnostics)"
        )
    }

    @Test("the header defines every opcode and errno the Swift module knows")
    func headerConstants() throws {
        let header = try String(
            contentsOf: GoldenVectors.repositoryRoot.appendingPathComponent("proto/gmem_wire.h"),
            encoding: .utf8
        )
        for opcode in Opcode.allRequests {
            #expect(header.contains("#define GMEM_OP_\(opcode) \(opcode.rawValue)u"), "GMEM_OP_\(opcode)")
        }
        #expect(header.contains("#define GMEM_EV_GPC_INVALIDATED 0x80u"))
        for errno in Errno.allKnown {
            #expect(header.contains("#define GMEM_\(errno.name) \(errno.rawValue)\n"), "GMEM_\(errno.name)")
        }
    }
}
