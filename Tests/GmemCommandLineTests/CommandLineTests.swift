import GmemCommandLine
import Testing

@Suite("Sizes, the default socket path and the JSON writer the tools share")
struct CommandLineTests {
    @Test("sizes take decimal or 0x hex with a bare binary suffix, and nothing ambiguous")
    func byteCountParsing() {
        let accepted: [(String, UInt64)] = [
            ("4096", 4096), ("64K", 64 << 10), ("64M", 64 << 20), ("2g", 2 << 30), ("1T", 1 << 40),
            ("0x1000", 0x1000), ("0X10M", 16 << 20), (" 8K ", 8 << 10), ("1_000", 1000),
        ]
        for (text, value) in accepted { #expect(ByteCount(parsing: text)?.value == value, "\(text)") }
        // "64MiB" and "64MB" are refused everywhere (gmem-bench once accepted them, gmemd never did).
        for text in ["", "M", "64MiB", "64MB", "-1", "0x", "1.5G", "16777216T", "99999999999999999999"] {
            #expect(ByteCount(parsing: text) == nil, "\(text)")
        }
    }

    @Test("a size prints in its shortest exact form")
    func byteCountDescription() {
        #expect(ByteCount(64 << 20).description == "64M")
        #expect(ByteCount(1 << 40).description == "1T")
        #expect(ByteCount(4096 + 1).description == "4097")
        #expect(ByteCount(0).description == "0")
    }

    @Test("the default socket is GMEMD_SOCKET, then XDG_RUNTIME_DIR, then by uid")
    func defaultSocketPath() {
        #expect(SocketPath.resolveDefault(environment: ["GMEMD_SOCKET": "/a.sock"], uid: 0) == "/a.sock")
        #expect(
            SocketPath.resolveDefault(environment: ["GMEMD_SOCKET": "", "XDG_RUNTIME_DIR": "/run/user/7"], uid: 7)
                == "/run/user/7/gmemd.sock"
        )
        #expect(SocketPath.resolveDefault(environment: [:], uid: 0) == "/run/gmemd/gmemd.sock")
        #expect(SocketPath.resolveDefault(environment: [:], uid: 1000) == "./gmemd.sock")
    }

    @Test("compact JSON keeps key order, exact integers and escapes")
    func compactJSON() {
        let value = JSONValue.object([
            ("z", .number(UInt64.max)), ("a", .number(-3)), ("text", .string("q\"\\\n\u{1}")),
            ("list", .array([.bool(true), .null, .double(0.5)])), ("id", .hex(0xbeef)), ("empty", .object([])),
        ])
        #expect(
            value.serialized
                == #"{"z":18446744073709551615,"a":-3,"text":"q\"\\\n\u0001","list":[true,null,0.5],"id":"0xbeef","empty":{}}"#
        )
    }

    @Test("pretty JSON indents two spaces a level; measurements print integers as integers")
    func prettyJSON() {
        var latency = JSONObject()
        latency["p50"] = .measurement(1234.0)
        latency["mean"] = .measurement(12.5)
        latency["gone"] = .measurement(Double.nan)
        latency["gone"] = nil
        var object: JSONObject = ["label": .string("raw PING"), "runs": .array([])]
        object["latency_ns"] = latency.value
        object["ratio"] = .measurement(nil as Double?)
        object["label"] = .string("gmemd PING")
        let expected = """
            {
              "label": "gmemd PING",
              "runs": [],
              "latency_ns": {
                "p50": 1234,
                "mean": 12.5
              },
              "ratio": null
            }
            """
        #expect(object.value.prettyPrinted == expected)
        #expect(JSONValue.measurement(Double.infinity).serialized == "null")
    }
}
