//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// gmemctl as a user runs it: the real binary against a real gmemd.
//
//===----------------------------------------------------------------------===//

import Foundation
import GmemProtocol
import Testing

@Suite("gmemctl", .timeLimit(.minutes(1)))
struct GmemctlTests {
    /// Standard output parsed as one JSON object.
    private func jsonObject(_ result: ProcessResult) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: result.standardOutput)
        return try #require(object as? [String: Any], "not a JSON object: \(result.output)")
    }

    @Test("info prints the HELLO fields, as text and as JSON")
    func info() async throws {
        try await withDaemon(size: "4M") { daemon in
            let text = try await daemon.gmemctl(["info"])
            #expect(text.status == 0, "\(text.standardError)")
            #expect(text.output.contains("region_size   4194304 (4M)"))
            #expect(text.output.contains("page_size     4096 (4K)"))
            #expect(text.output.contains("region_flags  NO_DIRECT_MAP"))
            #expect(text.output.range(of: #"region_id     0x[0-9a-f]{16}\n"#, options: .regularExpression) != nil)

            // --json before the subcommand works as well as after it.
            let json = try jsonObject(
                try await runProcess(
                    try TestBinaries.path(of: "gmemctl"),
                    ["--json", "--socket", daemon.socketPath, "info"]
                )
            )
            #expect(json["region_size"] as? Int == 4 << 20)
            #expect(json["max_payload"] as? Int == 1 << 20)
            #expect(json["region_flags"] as? [String] == ["NO_DIRECT_MAP"])
            #expect(json["read_only"] as? Bool == false)
            #expect((json["region_id"] as? String)?.hasPrefix("0x") == true)
        }
    }

    @Test("ping prints one round-trip time per ping")
    func ping() async throws {
        try await withDaemon { daemon in
            let result = try await daemon.gmemctl(["ping", "--count", "3", "--size", "100"])
            #expect(result.status == 0, "\(result.standardError)")
            let times = result.output.split(separator: "\n").filter { $0.hasPrefix("seq=") }
            #expect(times.count == 3)
            #expect(times.allSatisfy { $0.hasSuffix(" ms") && $0.contains("time=") })
            #expect(result.output.contains("--- 3 pings: min/avg/max = "))
        }
    }

    @Test("write --hex, then read prints an xxd-style hexdump; --raw prints the bytes")
    func writeThenRead() async throws {
        try await withDaemon { daemon in
            let write = try await daemon.gmemctl(["write", "0x1000", "--hex", "48656c6c6f2c20776f726c64210a"])
            #expect(write.status == 0, "\(write.standardError)")
            #expect(write.output == "wrote 14 bytes at 0x1000\n")

            let read = try await daemon.gmemctl(["read", "4K", "20"])
            #expect(read.status == 0, "\(read.standardError)")
            #expect(
                read.output == """
                    00001000: 4865 6c6c 6f2c 2077 6f72 6c64 210a 0000  Hello, world!...
                    00001010: 0000 0000                                ....

                    """
            )

            let raw = try await daemon.gmemctl(["read", "0x1000", "14", "--raw"])
            #expect(raw.status == 0)
            #expect(raw.standardOutput == Data("Hello, world!\n".utf8))

            let json = try jsonObject(try await daemon.gmemctl(["read", "0x1000", "5", "--json"]))
            #expect(json["hex"] as? String == "48656c6c6f")
        }
    }

    @Test("write from standard input (-) and from --file")
    func writeFromInputs() async throws {
        try await withDaemon { daemon in
            let piped = try await daemon.gmemctl(["write", "0x2000", "-"], input: Data([1, 2, 3, 4, 5]))
            #expect(piped.status == 0, "\(piped.standardError)")
            let file = daemon.directory + "/data.bin"
            _ = FileManager.default.createFile(atPath: file, contents: Data([0xaa, 0xbb]))
            let fromFile = try await daemon.gmemctl(["write", "0x2005", "--file", file])
            #expect(fromFile.status == 0, "\(fromFile.standardError)")
            let raw = try await daemon.gmemctl(["read", "0x2000", "7", "--raw"])
            #expect(raw.standardOutput == Data([1, 2, 3, 4, 5, 0xaa, 0xbb]))
        }
    }

    @Test("convert, then pages shows the map and its legend")
    func convertAndPages() async throws {
        try await withDaemon { daemon in
            let convert = try await daemon.gmemctl(["convert", "0x4000", "8K", "--shared"])
            #expect(convert.status == 0, "\(convert.standardError)")
            #expect(convert.output == "converted 8K at 0x4000 to shared\n")

            let pages = try await daemon.gmemctl(["pages", "0", "8"])
            #expect(pages.status == 0, "\(pages.standardError)")
            let lines = pages.output.split(separator: "\n")
            #expect(lines.first == "0x00000000  ....ss..")
            #expect(lines.contains("8 pages: 6 private, 2 shared, 0 held, 2 accessible"))
            #expect(pages.output.contains("legend: ."))

            let json = try jsonObject(try await daemon.gmemctl(["pages", "0", "8", "--json"]))
            #expect(json["map"] as? String == "....ss..")
            #expect((json["pages"] as? [Any])?.count == 8)
        }
    }

    @Test("stats --json parses and names every required counter")
    func statsJSON() async throws {
        try await withDaemon { daemon in
            let result = try await daemon.gmemctl(["stats", "--json"])
            #expect(result.status == 0, "\(result.standardError)")
            let json = try jsonObject(result)
            for name in StatsReply.requiredNames {
                #expect(json[name] is Int, "\(name) missing from \(result.output)")
            }
            let watch = try await daemon.gmemctl(["stats", "--json", "--watch", "--interval", "0.05", "--count", "2"])
            #expect(watch.status == 0)
            #expect(watch.output.split(separator: "\n").count == 2)
        }
    }

    @Test("errors: gmemd's errno and sentence, exit 1; usage errors exit 2; no daemon: a clear message")
    func errors() async throws {
        try await withDaemon(size: "1M") { daemon in
            let fault = try await daemon.gmemctl(["read", "1M", "16"])
            #expect(fault.status == 1)
            #expect(fault.standardError == "gmemctl: EFAULT: the range lies outside guest memory\n")
            #expect(fault.output.isEmpty)

            let misaligned = try await daemon.gmemctl(["discard", "0x10", "4K"])
            #expect(misaligned.status == 1)
            #expect(misaligned.standardError.hasPrefix("gmemctl: EINVAL: "))

            let jsonFault = try await daemon.gmemctl(["read", "1M", "16", "--json"])
            #expect(jsonFault.status == 1)
            let error = try #require(try jsonObject(jsonFault)["error"] as? [String: Any])
            #expect(error["name"] as? String == "EFAULT")
            #expect(error["errno"] as? Int == 14)

            let badNumber = try await daemon.gmemctl(["read", "0xzz", "16"])
            #expect(badNumber.status == 2)
            #expect(badNumber.standardError.contains("'0xzz' is not a number"))
            let missing = try await daemon.gmemctl(["convert", "0", "4K"])
            #expect(missing.status == 2)
        }
        let directory = try makeTemporaryDirectory(prefix: "gmem-none")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/gmemd.sock"
        let result = try await runProcess(try TestBinaries.path(of: "gmemctl"), ["info", "--socket", socket])
        #expect(result.status == 1)
        #expect(result.standardError == "gmemctl: cannot connect to gmemd at \(socket): No such file or directory\n")
    }

    @Test("readv prints a hexdump per segment; atomic prints the old value; both refuse bad arguments")
    func deviceOps() async throws {
        try await withDaemon { daemon in
            let write = try await daemon.gmemctl(["write", "0x1000", "--hex", "0102030405060708"])
            #expect(write.status == 0, "\(write.standardError)")
            let readv = try await daemon.gmemctl(["readv", "0x1004:4", "4K:2", "0x2000:0"])
            #expect(readv.status == 0, "\(readv.standardError)")
            #expect(
                readv.output == """
                    00001004: 0506 0708                                ....
                    00001000: 0102                                     ..
                    0x2000: (empty)

                    """
            )
            let json = try jsonObject(try await daemon.gmemctl(["readv", "0x1000:3", "--json"]))
            let segments = try #require(json["segments"] as? [[String: Any]])
            #expect(segments.first?["hex"] as? String == "010203")

            let add = try await daemon.gmemctl(["atomic", "fetch-add", "0x1000", "0x10"])
            #expect(add.status == 0, "\(add.standardError)")
            #expect(add.output == "FETCH_ADD 8 bytes at 0x1000: old 0x807060504030201 (578437695752307201)\n")
            let cmpxchg = try await daemon.gmemctl([
                "atomic", "cmpxchg", "0x1000", "7", "--expected", "0x11", "--width", "1",
            ])
            #expect(cmpxchg.output == "CMPXCHG 1 bytes at 0x1000: old 0x11 (17), stored\n")
            let load = try jsonObject(try await daemon.gmemctl(["atomic", "load", "0x1000", "--width", "2", "--json"]))
            #expect(load["value"] as? Int == 0x0207)

            let misaligned = try await daemon.gmemctl(["atomic", "load", "0x1001"])
            #expect(misaligned.status == 1)
            #expect(misaligned.standardError.hasPrefix("gmemctl: EINVAL: "), "\(misaligned.standardError)")
            let outside = try await daemon.gmemctl(["readv", "0x1000:4", "64M:4"])
            #expect(outside.status == 1)
            #expect(outside.standardError.hasPrefix("gmemctl: EFAULT: "), "\(outside.standardError)")
            for usage in [
                ["atomic", "frobnicate", "0"], ["atomic", "load", "0", "5"], ["atomic", "fetch-add", "0"],
                ["atomic", "store", "0", "1", "--expected", "2"], ["atomic", "load", "0", "--width", "3"],
                ["readv"], ["readv", "0x1000"],
            ] {
                let result = try await daemon.gmemctl(usage)
                #expect(result.status == 2, "\(usage): \(result.standardError)")
            }
        }
    }
}
