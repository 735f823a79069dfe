import Foundation
import GmemProtocol
import Testing

/// One frame of `proto/vectors/frames.txt` (or of a ```frames block in `proto/PROTOCOL.md`).
struct GoldenFrame: Hashable, Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]

    /// `request`, `reply`, `invalid` or `event`.
    var kind: Substring { self.name.prefix { $0 != "." } }

    /// The part after the kind, which pairs `request.x` / `invalid.x` with `reply.x`.
    var suffix: Substring { self.name.drop { $0 != "." }.dropFirst() }

    var testDescription: String { self.name }
}

/// Reads the golden frame format described at the top of `proto/vectors/frames.txt`.
enum GoldenVectors {
    enum ParseError: Error, CustomStringConvertible {
        case malformed(line: Int, reason: String)

        var description: String {
            switch self {
            case .malformed(let line, let reason): return "line \(line): \(reason)"
            }
        }
    }

    /// The repository root, found from this file's path (`Tests/GmemProtocolTests/GoldenVectors.swift`).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    static let framesURL = repositoryRoot.appendingPathComponent("proto/vectors/frames.txt")
    static let protocolURL = repositoryRoot.appendingPathComponent("proto/PROTOCOL.md")

    /// Every frame of `proto/vectors/frames.txt`, in file order. Loading failures surface in `loadingTest`.
    static let all: [GoldenFrame] = (try? load()) ?? []

    static func load() throws -> [GoldenFrame] {
        try parse(String(contentsOf: framesURL, encoding: .utf8))
    }

    static func frame(named name: String) -> GoldenFrame? {
        all.first { $0.name == name }
    }

    static func frames(kind: String) -> [GoldenFrame] {
        all.filter { $0.kind == kind }
    }

    /// Parses the line format: comments, `name:` lines, indented hex lines.
    static func parse(_ text: String) throws -> [GoldenFrame] {
        var frames: [GoldenFrame] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var hexPart = Substring(line)
            if let first = rawLine.first, first != " ", first != "\t" {
                guard let colon = line.firstIndex(of: ":") else {
                    throw ParseError.malformed(line: lineNumber, reason: "expected `name:`")
                }
                let name = String(line[..<colon])
                guard !name.isEmpty, name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" || $0 == "." })
                else {
                    throw ParseError.malformed(line: lineNumber, reason: "bad name `\(name)`")
                }
                guard !frames.contains(where: { $0.name == name }) else {
                    throw ParseError.malformed(line: lineNumber, reason: "duplicate name `\(name)`")
                }
                frames.append(GoldenFrame(name: name, bytes: []))
                hexPart = line[line.index(after: colon)...]
            } else if frames.isEmpty {
                throw ParseError.malformed(line: lineNumber, reason: "hex bytes before the first name")
            }
            for token in hexPart.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                guard token.count == 2, let byte = UInt8(token, radix: 16), token.lowercased() == token else {
                    throw ParseError.malformed(line: lineNumber, reason: "bad hex byte `\(token)`")
                }
                frames[frames.count - 1].bytes.append(byte)
            }
        }
        return frames
    }

    /// The frames of every ```frames block of a Markdown document.
    static func parseMarkdown(_ markdown: String) throws -> [GoldenFrame] {
        var inBlock = false
        var blockText = ""
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                inBlock = !inBlock && line == "```frames"
                continue
            }
            if inBlock { blockText += line + "\n" }
        }
        return try parse(blockText)
    }
}

/// Decodes a request frame with the module's decoder and copies it out of the buffer.
func decodeRequestFrame(_ bytes: [UInt8]) throws(Errno) -> (header: FrameHeader, request: OwnedRequest) {
    let result = bytes.withUnsafeBytes { buffer in
        Result { () throws(Errno) in
            let (header, request) = try Request.decode(frame: buffer)
            return (header, OwnedRequest(request))
        }
    }
    return try result.get()
}

/// An owned, comparable copy of a ``Request``.
enum OwnedRequest: Hashable {
    case hello(version: UInt32, features: UInt32)
    case ping([UInt8])
    case read(gpa: UInt64, length: UInt32)
    case write(gpa: UInt64, data: [UInt8])
    case gpcActivate(gpa: UInt64, length: UInt32)
    case gpcDeactivate(handle: UInt64)
    case gpcRead(handle: UInt64, offset: UInt32, length: UInt32)
    case gpcWrite(handle: UInt64, offset: UInt32, data: [UInt8])
    case gpcRefresh(handle: UInt64, gpa: UInt64, length: UInt32)
    case setAttributes(gpa: UInt64, size: UInt64, attributes: UInt64)
    case discard(gpa: UInt64, size: UInt64)
    case stats
    case pageState(gpa: UInt64, pageCount: UInt32)
    case readv(segments: [WireSegment])
    case writev(segments: [WireSegment], data: [UInt8])
    case atomic(gpa: UInt64, AtomicArguments)
    case gpcAtomic(handle: UInt64, offset: UInt32, AtomicArguments)
    case ringSetup(entries: UInt32, dataSize: UInt64)
    case ringClose(ringID: UInt32)
    case mapRegion

    init(_ request: Request) {
        switch request {
        case .hello(let version, let features): self = .hello(version: version, features: features)
        case .ping(let payload): self = .ping(Array(payload))
        case .read(let gpa, let length): self = .read(gpa: gpa, length: length)
        case .write(let gpa, let data): self = .write(gpa: gpa, data: Array(data))
        case .gpcActivate(let gpa, let length): self = .gpcActivate(gpa: gpa, length: length)
        case .gpcDeactivate(let handle): self = .gpcDeactivate(handle: handle)
        case .gpcRead(let handle, let offset, let length):
            self = .gpcRead(handle: handle, offset: offset, length: length)
        case .gpcWrite(let handle, let offset, let data):
            self = .gpcWrite(handle: handle, offset: offset, data: Array(data))
        case .gpcRefresh(let handle, let gpa, let length): self = .gpcRefresh(handle: handle, gpa: gpa, length: length)
        case .setAttributes(let gpa, let size, let attributes):
            self = .setAttributes(gpa: gpa, size: size, attributes: attributes)
        case .discard(let gpa, let size): self = .discard(gpa: gpa, size: size)
        case .stats: self = .stats
        case .pageState(let gpa, let pageCount): self = .pageState(gpa: gpa, pageCount: pageCount)
        case .readv(let segments): self = .readv(segments: segments)
        case .writev(let segments, let data): self = .writev(segments: segments, data: Array(data))
        case .atomic(let gpa, let arguments): self = .atomic(gpa: gpa, arguments)
        case .gpcAtomic(let handle, let offset, let arguments):
            self = .gpcAtomic(handle: handle, offset: offset, arguments)
        case .ringSetup(let entries, let dataSize): self = .ringSetup(entries: entries, dataSize: dataSize)
        case .ringClose(let ringID): self = .ringClose(ringID: ringID)
        case .mapRegion: self = .mapRegion
        }
    }

    /// Lends the request, with byte payloads pointing into this value's arrays, to `body`.
    func withRequest<R>(_ body: (Request) throws -> R) rethrows -> R {
        switch self {
        case .hello(let version, let features): return try body(.hello(version: version, features: features))
        case .ping(let payload): return try payload.withUnsafeBytes { try body(.ping($0)) }
        case .read(let gpa, let length): return try body(.read(gpa: gpa, length: length))
        case .write(let gpa, let data): return try data.withUnsafeBytes { try body(.write(gpa: gpa, data: $0)) }
        case .gpcActivate(let gpa, let length): return try body(.gpcActivate(gpa: gpa, length: length))
        case .gpcDeactivate(let handle): return try body(.gpcDeactivate(handle: handle))
        case .gpcRead(let handle, let offset, let length):
            return try body(.gpcRead(handle: handle, offset: offset, length: length))
        case .gpcWrite(let handle, let offset, let data):
            return try data.withUnsafeBytes { try body(.gpcWrite(handle: handle, offset: offset, data: $0)) }
        case .gpcRefresh(let handle, let gpa, let length):
            return try body(.gpcRefresh(handle: handle, gpa: gpa, length: length))
        case .setAttributes(let gpa, let size, let attributes):
            return try body(.setAttributes(gpa: gpa, size: size, attributes: attributes))
        case .discard(let gpa, let size): return try body(.discard(gpa: gpa, size: size))
        case .stats: return try body(.stats)
        case .pageState(let gpa, let pageCount): return try body(.pageState(gpa: gpa, pageCount: pageCount))
        case .readv(let segments): return try body(.readv(segments: segments))
        case .writev(let segments, let data):
            return try data.withUnsafeBytes { try body(.writev(segments: segments, data: $0)) }
        case .atomic(let gpa, let arguments): return try body(.atomic(gpa: gpa, arguments))
        case .gpcAtomic(let handle, let offset, let arguments):
            return try body(.gpcAtomic(handle: handle, offset: offset, arguments))
        case .ringSetup(let entries, let dataSize):
            return try body(.ringSetup(entries: entries, dataSize: dataSize))
        case .ringClose(let ringID):
            return try body(.ringClose(ringID: ringID))
        case .mapRegion:
            return try body(.mapRegion)
        }
    }

    /// The complete frame the module's encoder produces.
    func encoded(id: UInt32) throws -> [UInt8] {
        try self.withRequest { request in try request.encoded(id: id) }
    }
}

/// The header at the start of `bytes`, if there are 16 bytes.
func headerOf(_ bytes: [UInt8]) -> FrameHeader? {
    bytes.withUnsafeBytes { FrameHeader(decoding: $0) }
}

/// `bytes` as the lower-case, space-separated hex of the vectors file, for readable failure messages.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined(separator: " ")
}
