//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// `gmemctl session`: scripts on one connection, GPC handles across lines.
//
//===----------------------------------------------------------------------===//

import Foundation
import Testing

@Suite("gmemctl session", .timeLimit(.minutes(1)))
struct GmemctlSessionTests {
    @Test("activate, gpc-write, gpc-read and deactivate across lines of standard input")
    func gpcAcrossLines() async throws {
        try await withDaemon { daemon in
            let script = """
                # GPC handles live across lines of one session
                activate 0x3000 64
                gpc-write 1 4 de ad be ef   # trailing comment
                gpc-read 1 0 8

                read 0x3004 4
                deactivate 1
                """
            let result = try await daemon.gmemctl(["session"], input: Data(script.utf8))
            #expect(result.status == 0, "\(result.standardError)")
            #expect(
                result.output == """
                    handle 1
                    wrote 4 bytes to GPC 1 at offset 4
                    00003000: 0000 0000 dead beef                      ........
                    00003004: dead beef                                ....
                    deactivated GPC 1

                    """
            )
            #expect(result.standardError.isEmpty)
        }
    }

    @Test("a failing line is reported with its number, the session goes on, the exit status is 1")
    func failuresContinue() async throws {
        try await withDaemon { daemon in
            let file = daemon.directory + "/script.gmem"
            let script = """
                activate 0x5000 16
                convert 0x5000 4K shared
                gpc-read 1 0 4
                refresh 1
                gpc-read 1 0 4
                read 64M 1
                frobnicate
                deactivate 1
                gpc-read 1 0 4
                """
            _ = FileManager.default.createFile(atPath: file, contents: Data(script.utf8))
            let result = try await daemon.gmemctl(["session", file])
            #expect(result.status == 1)
            let errors = result.standardError.split(separator: "\n").map(String.init)
            #expect(
                errors == [
                    "gmemctl: line 3: ESTALE: the guest page cache was invalidated; refresh it before use",
                    "gmemctl: line 6: EFAULT: the range lies outside guest memory",
                    "gmemctl: line 7: unknown command 'frobnicate'; try 'help'",
                    "gmemctl: line 9: ENOENT: no guest page cache with this handle is active on the connection",
                    "gmemctl: 4 session lines failed",
                ]
            )
            #expect(result.output.contains("refreshed GPC 1 [0x5000, +16)"))
            #expect(result.output.contains("event: GPC_INVALIDATED handle=1 reason=attributes_changed"))
            #expect(result.output.contains("deactivated GPC 1"))
        }
    }

    @Test("--json prints one object per line")
    func json() async throws {
        try await withDaemon { daemon in
            let script = "activate 0x1000 8\ngpc-write 1 0 0102\ngpc-read 1 0 2\nread 16M 1\n"
            let result = try await daemon.gmemctl(["session", "--json"], input: Data(script.utf8))
            #expect(result.status == 1)
            let objects = try result.output.split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            #expect(objects.count == 4)
            #expect((objects[0]["result"] as? [String: Any])?["handle"] as? Int == 1)
            #expect((objects[2]["result"] as? [String: Any])?["hex"] as? String == "0102")
            #expect((objects[3]["error"] as? [String: Any])?["name"] as? String == "EFAULT")
            #expect(objects[3]["line"] as? Int == 4)
        }
    }
}
