//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Byte formatting and parsing: xxd-style hexdumps, hex strings, files and standard streams.
//
//===----------------------------------------------------------------------===//

import GmemErrno

#if canImport(Glibc)
import GmemCommandLine
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Formatting and parsing of byte strings for the command line.
///
/// Everything here is total: malformed input returns `nil` or throws ``CommandFailure``, never traps.
enum Bytes {
    /// An `xxd`-style dump: 16 bytes per line as `ADDRESS: 8 groups of 2 bytes  ASCII`, addresses counted from
    /// `base` with at least 8 hex digits; non-printable bytes show as `.` in the ASCII column.
    ///
    /// ```
    /// 00001000: 4865 6c6c 6f00 0000 0000 0000 0000 0000  Hello...........
    /// ```
    static func hexdump(_ bytes: [UInt8], base: UInt64) -> String {
        var lines: [String] = []
        lines.reserveCapacity(bytes.count / 16 + 1)
        var offset = 0
        while offset < bytes.count {
            let row = bytes[offset..<min(offset + 16, bytes.count)]
            var line = hexDigits(base &+ UInt64(offset), width: 8) + ":"
            for (index, byte) in row.enumerated() {
                if index % 2 == 0 { line += " " }
                line += hexDigits(UInt64(byte), width: 2)
            }
            // Pad a short last row so the ASCII column lines up: 2 digits per byte, a space per pair.
            line += String(repeating: " ", count: 40 - (row.count * 2 + (row.count + 1) / 2))
            line += "  "
            for byte in row {
                line.unicodeScalars.append(Unicode.Scalar((0x20..<0x7f).contains(byte) ? byte : UInt8(ascii: ".")))
            }
            lines.append(line)
            offset += 16
        }
        return lines.joined(separator: "\n")
    }

    /// Continuous lower-case hex, as in `--json` output: `48656c6c6f`.
    static func hexString(_ bytes: [UInt8]) -> String {
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes { text += hexDigits(UInt64(byte), width: 2) }
        return text
    }

    /// Parses hex digits, e.g. `48656c6c6f`, `0x4865 6c6c 6f` or `48:65:6c`; spaces, `:` and `_` separate freely
    /// and one leading `0x` is allowed. Returns `nil` for any other character or an odd number of digits.
    static func parseHex(_ text: String) -> [UInt8]? {
        var body = Substring(text)
        while body.first == " " { body = body.dropFirst() }
        if body.hasPrefix("0x") || body.hasPrefix("0X") { body = body.dropFirst(2) }
        var bytes: [UInt8] = []
        var high: UInt8?
        for character in body.unicodeScalars {
            if character == " " || character == ":" || character == "_" || character == "\t" { continue }
            guard character.isASCII, let nibble = UInt8(String(character), radix: 16) else { return nil }
            if let pending = high {
                bytes.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil ? bytes : nil
    }

    /// Everything readable from `descriptor` until end of file.
    static func readAll(descriptor: Int32) throws(CommandFailure) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = SystemCall.retryingOnInterrupt {
                chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            }
            if count == 0 { return bytes }
            if count < 0 { throw CommandFailure(message: "cannot read input: \(Self.systemError())") }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// The contents of the file at `path`.
    static func readFile(_ path: String) throws(CommandFailure) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CommandFailure(message: "cannot open \(path): \(Self.systemError())") }
        defer { close(descriptor) }
        do {
            return try Self.readAll(descriptor: descriptor)
        } catch {
            throw CommandFailure(message: "cannot read \(path): \(Self.systemError())")
        }
    }

    /// Writes `bytes` to standard output unchanged, e.g. for `read --raw`.
    static func writeToStandardOutput(_ bytes: [UInt8]) throws(CommandFailure) {
        flushStandardOutput()
        guard Self.writeAll(bytes, descriptor: 1) else {
            throw CommandFailure(message: "cannot write to standard output: \(Self.systemError())")
        }
    }

    /// Writes all of `bytes` to `descriptor`, retrying short writes; false on an error.
    static func writeAll(_ bytes: [UInt8], descriptor: Int32) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = SystemCall.retryingOnInterrupt {
                    write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                }
                if written < 0 { return false }
                offset += written
            }
            return true
        }
    }

    /// `strerror(errno)`.
    static func systemError() -> String {
        String(cString: strerror(errno))
    }
}

/// Writes `line` and a newline to standard error.
func printError(_ line: String) {
    flushStandardOutput()
    _ = Bytes.writeAll(Array((line + "\n").utf8), descriptor: 2)
}

/// Pushes buffered standard output out, before other output or for output that arrives over time.
func flushStandardOutput() {
    // fflush(NULL) flushes every output stream without naming the global `stdout`, which Swift 6 rejects.
    fflush(nil)
}
