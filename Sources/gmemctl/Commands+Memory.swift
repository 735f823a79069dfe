//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Memory commands: read, write, discard, convert.
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient

/// `gmemctl read GPA LEN`.
struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read guest memory; print it as an xxd-style hexdump, or raw with --raw.",
        discussion: "Reads over max_payload are split into pipelined READs."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The first guest physical address.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: "Bytes to read.", transform: Number.parseLength)
    var length: Int

    @Flag(help: "Write the bytes to standard output unchanged.")
    var raw = false

    func validate() throws {
        if self.raw && self.global.json { throw ValidationError("--raw and --json exclude each other") }
    }

    func run() async throws {
        try await self.global.withClient { client in
            if self.raw {
                try Bytes.writeToStandardOutput(try await client.read(at: self.gpa, count: self.length))
            } else {
                self.global.emit(try await Operations.read(client, gpa: self.gpa, count: self.length))
            }
        }
    }
}

/// `gmemctl write GPA (--hex HEX | --file F | -)`.
struct Write: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write guest memory from hex digits, a file, or standard input (-).",
        discussion: """
            Hex digits may be separated by spaces, ':' or '_' and start with 0x: --hex 'de ad be ef'. \
            Writes over max_payload - 16 bytes are split into pipelined WRITEs.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The first guest physical address.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: ArgumentHelp("'-' to read the data from standard input.", valueName: "-"))
    var source: String?

    @Option(help: ArgumentHelp("The bytes, as hex digits.", valueName: "hex"))
    var hex: String?

    @Option(help: ArgumentHelp("Write the contents of this file.", valueName: "path"))
    var file: String?

    func validate() throws {
        if let source = self.source, source != "-" {
            throw ValidationError("the data comes from --hex, --file or '-' (standard input), not '\(source)'")
        }
        let sources = [self.source != nil, self.hex != nil, self.file != nil].filter { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --hex HEX, --file PATH or '-'") }
        if let hex = self.hex, Bytes.parseHex(hex) == nil {
            throw ValidationError("--hex needs an even number of hex digits, not '\(hex)'")
        }
    }

    func run() async throws {
        let bytes: [UInt8]
        do {
            if let hex = self.hex {
                bytes = Bytes.parseHex(hex) ?? []
            } else if let file = self.file {
                bytes = try Bytes.readFile(file)
            } else {
                bytes = try Bytes.readAll(descriptor: 0)
            }
        } catch {
            self.global.report(error)
            throw ExitCode.failure
        }
        try await self.global.withClient { client in
            self.global.emit(try await Operations.write(client, gpa: self.gpa, bytes: bytes))
        }
    }
}

/// `gmemctl discard GPA SIZE`.
struct Discard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discard the contents of page-aligned guest memory; it reads as zeros afterwards.",
        discussion: "Guest page caches covering a discarded page are invalidated."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The first guest physical address, page-aligned.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: "Bytes to discard, a multiple of the page size.", transform: Number.parse)
    var size: UInt64

    func run() async throws {
        try await self.global.withClient { client in
            self.global.emit(try await Operations.discard(client, gpa: self.gpa, size: self.size))
        }
    }
}

/// `gmemctl convert GPA SIZE --private|--shared`.
struct Convert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make page-aligned guest memory private or shared (SET_ATTRIBUTES).",
        discussion: "Guest page caches covering a converted page are invalidated."
    )

    /// The attribute to set.
    enum Attribute: String, EnumerableFlag {
        case `private`
        case shared

        static func help(for value: Attribute) -> ArgumentHelp? {
            switch value {
            case .private: return "Make the pages private to the guest."
            case .shared: return "Make the pages shared with the host."
            }
        }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The first guest physical address, page-aligned.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: "Bytes to convert, a multiple of the page size.", transform: Number.parse)
    var size: UInt64

    @Flag(exclusivity: .exclusive)
    var attribute: Attribute

    func run() async throws {
        try await self.global.withClient { client in
            self.global.emit(
                try await Operations.convert(
                    client,
                    gpa: self.gpa,
                    size: self.size,
                    toPrivate: self.attribute == .private
                )
            )
        }
    }
}
