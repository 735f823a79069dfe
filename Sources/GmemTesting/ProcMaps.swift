//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// ProcMaps: per-page protections of the guest memory mapping, from /proc/PID/maps.
//
//===----------------------------------------------------------------------===//

import GmemErrno

#if canImport(Glibc)
import Glibc
#endif

/// The protection of one page of a mapping as `/proc/PID/maps` shows it, e.g. `rw-s` or `---s`.
///
/// This is the kernel's view, independent of what the daemon *reports*: comparing it with PAGE_STATE's ACCESSIBLE
/// bit checks that the daemon's bookkeeping matches the real page tables.
public struct MappedProtection: Hashable, Sendable, CustomStringConvertible {
    public var read: Bool
    public var write: Bool
    public var execute: Bool
    /// `s` (shared) rather than `p` (private copy-on-write).
    public var shared: Bool

    public init(read: Bool, write: Bool, execute: Bool, shared: Bool) {
        self.read = read
        self.write = write
        self.execute = execute
        self.shared = shared
    }

    /// Parses the four-character permission field, e.g. `rw-s`.
    public init?(permissions: Substring) {
        let characters = Array(permissions)
        guard characters.count == 4 else { return nil }
        self.init(
            read: characters[0] == "r",
            write: characters[1] == "w",
            execute: characters[2] == "x",
            shared: characters[3] == "s"
        )
    }

    /// Whether the daemon can touch the page at all (`r` or `w`); `---` means PROT_NONE.
    public var isAccessible: Bool {
        self.read || self.write
    }

    /// `rw-s`, `---s`.
    public var description: String {
        (self.read ? "r" : "-") + (self.write ? "w" : "-") + (self.execute ? "x" : "-") + (self.shared ? "s" : "p")
    }

    /// `rw-s`.
    public static let readWriteShared = MappedProtection(read: true, write: true, execute: false, shared: true)
    /// `---s`.
    public static let noneShared = MappedProtection(read: false, write: false, execute: false, shared: true)
}

/// Parsing of `/proc/PID/maps`.
public enum ProcMaps {
    /// The name gmemd gives its memfd; the mapping shows as `/memfd:gmemd-guest (deleted)`.
    public static let guestMappingPrefix = "/memfd:gmemd-guest"

    /// The protections of `pages` (page indexes into the file, i.e. guest page numbers) of the one mapping whose
    /// path starts with `mappingPrefix`, from the text of a maps file.
    ///
    /// A page's index is `file offset / pageSize`, so the result does not depend on where the mapping starts or
    /// on how `mprotect` has split it into VMAs.
    ///
    /// - Throws: ``GmemTestingError/mappingNotFound(_:)`` if no such mapping covers a requested page, or two
    ///   different files match the prefix.
    public static func protections(
        mapsText: String,
        pages: Range<Int>,
        pageSize: Int,
        mappingPrefix: String = guestMappingPrefix
    ) throws -> [MappedProtection] {
        // Parsed as bytes: a maps file has hundreds of lines and tests read it after every step.
        let prefix = Array(mappingPrefix.utf8)
        var found = [MappedProtection?](repeating: nil, count: pages.count)
        var file: ArraySlice<UInt8>? = nil
        for line in mapsText.utf8.split(separator: UInt8(ascii: "\n")) {
            // start-end perms offset dev inode [path]
            let fields = Array(line).split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { continue }
            let path = fields[5].drop(while: { $0 == UInt8(ascii: " ") })
            guard path.starts(with: prefix) else { continue }
            let identity = fields[3] + [UInt8(ascii: ":")] + fields[4]
            if let file, file != identity {
                let names = [file, identity].map { String(decoding: $0, as: UTF8.self) }
                throw GmemTestingError.mappingNotFound("two files named \(mappingPrefix): \(names[0]) and \(names[1])")
            }
            file = identity
            let bounds = fields[0].split(separator: UInt8(ascii: "-"))
            guard bounds.count == 2, let start = hexValue(bounds[0]), let end = hexValue(bounds[1]),
                let offset = hexValue(fields[2]),
                let protection = MappedProtection(permissions: Substring(decoding: fields[1], as: UTF8.self))
            else { continue }
            let firstPage = Int(offset / UInt64(pageSize))
            let pageCount = Int((end - start) / UInt64(pageSize))
            for page in pages.clamped(to: firstPage..<(firstPage + pageCount)) {
                found[page - pages.lowerBound] = protection
            }
        }
        return try pages.map { page in
            guard let protection = found[page - pages.lowerBound] else {
                throw GmemTestingError.mappingNotFound("page \(page) of \(mappingPrefix)")
            }
            return protection
        }
    }

    /// A hexadecimal number without prefix, or `nil`.
    private static func hexValue(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt64(digit - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt64(digit - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = value << 4 | UInt64(digit - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
        return value
    }

    /// The text of `/proc/<pid>/maps`.
    public static func read(pid: pid_t) throws -> String {
        try readFile("/proc/\(pid)/maps")
    }

    /// The whole contents of a (small, text) file.
    public static func readFile(_ path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw GmemTestingError.systemCall("open(\(path))", errno: errno) }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = SystemCall.retryingOnInterrupt {
                chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            }
            if count < 0 { throw GmemTestingError.systemCall("read(\(path))", errno: errno) }
            if count == 0 { break }
            contents.append(contentsOf: chunk[..<count])
        }
        return String(decoding: contents, as: UTF8.self)
    }
}
