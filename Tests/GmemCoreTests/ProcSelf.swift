import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says about this process: /proc/self/maps, smaps, status,
/// and the memfd's allocated blocks. The tests compare the core's own page
/// states against these, so a bookkeeping error cannot hide behind itself.
enum ProcSelf {
    struct Mapping {
        var start: UInt
        var end: UInt
        var permissions: String
        var path: String
        var vmFlags: [String] = []

        var isReadWrite: Bool { self.permissions.hasPrefix("rw") }
        var isNoAccess: Bool { self.permissions.hasPrefix("---") }
    }

    /// The whole text of a /proc file (they report size 0, so read to EOF).
    static func contents(of path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: data, as: UTF8.self)
    }

    private static func parseHeader(_ line: Substring) -> Mapping? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else {
            return nil
        }
        let path = fields.count > 5 ? String(fields[5]).trimmingSpaces() : ""
        return Mapping(start: start, end: end, permissions: String(fields[1]), path: path)
    }

    /// Every VMA of the process.
    static func maps() -> [Mapping] {
        self.contents(of: "/proc/self/maps").split(separator: "\n").compactMap(self.parseHeader)
    }

    /// The VMAs overlapping `[start, end)`, with their VmFlags from smaps.
    static func smaps(overlapping start: UInt, _ end: UInt) -> [Mapping] {
        var result: [Mapping] = []
        var current: Mapping? = nil
        for line in self.contents(of: "/proc/self/smaps").split(separator: "\n") {
            if let header = self.parseHeader(line), line.first?.isHexDigit == true, line.contains("-") {
                if let mapping = current { result.append(mapping) }
                current = header.end > start && header.start < end ? header : nil
            } else if line.hasPrefix("VmFlags:"), current != nil {
                current!.vmFlags = line.dropFirst("VmFlags:".count).split(separator: " ").map(String.init)
            }
        }
        if let mapping = current { result.append(mapping) }
        return result
    }

    /// VmRSS in bytes.
    static func residentBytes() -> Int {
        for line in self.contents(of: "/proc/self/status").split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let number = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return number * 1024
        }
        return 0
    }

    /// Bytes the file behind `fd` really occupies (st_blocks is in 512-byte units).
    static func allocatedBytes(fd: Int32) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return -1 }
        return Int(info.st_blocks) * 512
    }
}

extension String {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}

extension GuestMemory {
    /// The mapping's address range.
    var mappingRange: (start: UInt, end: UInt) {
        let start = UInt(bitPattern: self.region.base)
        return (start, start + UInt(self.geometry.regionSize))
    }

    /// What the kernel says of each page in `pages`: true for rw, false for
    /// no access. Fails the test on any other protection or a hole.
    func kernelAccessibility(_ pages: Range<Int>, sourceLocation: SourceLocation = #_sourceLocation) -> [Bool] {
        let base = self.mappingRange.start
        let vmas = ProcSelf.maps().filter {
            $0.end > base + UInt(pages.lowerBound * pageSize) && $0.start < base + UInt(pages.upperBound * pageSize)
        }
        var result: [Bool] = []
        var index = 0
        for page in pages {
            let address = base + UInt(page * pageSize)
            while index < vmas.count && vmas[index].end <= address { index += 1 }
            guard index < vmas.count, vmas[index].start <= address else {
                Issue.record("page \(page) is not mapped", sourceLocation: sourceLocation)
                result.append(false)
                continue
            }
            let vma = vmas[index]
            #expect(
                vma.isReadWrite || vma.isNoAccess,
                "unexpected protection \(vma.permissions) for page \(page)",
                sourceLocation: sourceLocation
            )
            #expect(
                vma.path.contains(Region.memfdName) || self.region.backing == .secretmem,
                "page \(page) in \(vma.path)",
                sourceLocation: sourceLocation
            )
            result.append(vma.isReadWrite)
        }
        return result
    }

    /// Expects the kernel's view of `pages` (default: all) to agree with pageStates.
    func expectKernelAgrees(
        _ pages: Range<Int>? = nil,
        _ comment: Comment? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let pages = pages ?? 0..<self.geometry.pageCount
        let states = try self.states(pages)
        let kernel = self.kernelAccessibility(pages, sourceLocation: sourceLocation)
        let mismatches = zip(pages, zip(states, kernel)).filter { $0.1.0.isAccessible != $0.1.1 }
        #expect(
            mismatches.isEmpty,
            "\(comment.map { "\($0): " } ?? "")core and kernel disagree on pages \(mismatches.map { "\($0.0): core \($0.1.0), kernel \($0.1.1 ? "rw" : "---")" })",
            sourceLocation: sourceLocation
        )
    }
}
