//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// `gmemctl pages`: a compact map of per-page state, one character per page.
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient
import GmemCommandLine
import GmemProtocol

/// `gmemctl pages GPA COUNT`.
struct Pages: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Map the state of COUNT pages from GPA, one character per page.",
        discussion: PageMap.legend + "\n\nRows hold 64 pages, in groups of 16, after the address of their first page."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The first guest physical address, page-aligned.", transform: Number.parse)
    var gpa: UInt64

    @Argument(help: "Pages to show.", transform: Number.parseLength)
    var count: Int

    @Flag(help: "Leave out the legend after the map.")
    var noLegend = false

    func run() async throws {
        try await self.global.withClient { client in
            self.global.emit(
                try await Operations.pages(client, gpa: self.gpa, count: self.count, legend: !self.noLegend)
            )
        }
    }
}

extension Operations {
    static func pages(_ client: GmemClient, gpa: UInt64, count: Int, legend: Bool = true) async throws -> Report {
        let entries = try await client.pageStates(at: gpa, count: count)
        let pageSize = UInt64(client.hello.pageSize)
        let map = PageMap(entries: entries)
        var text = map.rows(gpa: gpa, pageSize: pageSize) + [map.summary]
        if legend { text.append(PageMap.legend) }
        var pages: [JSONValue] = []
        pages.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            pages.append(
                .object([
                    ("gpa", .number(gpa &+ UInt64(index) &* pageSize)),
                    ("refcount", .number(entry.refcount)),
                    ("private", .bool(entry.isPrivate)),
                    ("accessible", .bool(entry.isAccessible)),
                ])
            )
        }
        let json = JSONValue.object([
            ("gpa", .number(gpa)),
            ("page_size", .number(pageSize)),
            ("count", .number(entries.count)),
            ("map", .string(String(map.characters))),
            ("private", .number(map.privateCount)),
            ("shared", .number(entries.count - map.privateCount)),
            ("held", .number(map.heldCount)),
            ("accessible", .number(map.accessibleCount)),
            ("pages", .array(pages)),
        ])
        return Report(text: text.joined(separator: "\n"), json: json)
    }
}

/// One character per page, from PAGE_STATE entries.
///
/// | char | page |
/// |------|------|
/// | `.` | private, inaccessible, no references: the resting state of private memory |
/// | `P` | private, accessible, no references (`--direct-map`, or a restore not yet zapped) |
/// | `1`–`9` | private, accessible, held by that many references (accesses in progress, GPCs) |
/// | `+` | private, accessible, held by 10 or more references |
/// | `s` | shared, no references |
/// | `S` | shared, held by at least one reference |
/// | `!` | inconsistent: private, held but inaccessible; or shared but inaccessible |
struct PageMap {
    /// The legend, as printed after the map and in `gmemctl pages --help`.
    static let legend = """
        legend: .  private, inaccessible          P  private, accessible, not held
                1-9  private, held by N refs      +  private, held by 10 or more
                s  shared                         S  shared, held
                !  inconsistent (held but inaccessible, or shared but inaccessible)
        """

    /// Pages per row of the map.
    static let pagesPerRow = 64

    let characters: [Character]
    let privateCount: Int
    let heldCount: Int
    let accessibleCount: Int

    init(entries: [PageStateEntry]) {
        self.characters = entries.map(PageMap.character(for:))
        self.privateCount = entries.count(where: { $0.isPrivate })
        self.heldCount = entries.count(where: { $0.refcount > 0 })
        self.accessibleCount = entries.count(where: { $0.isAccessible })
    }

    /// The character for one page; see the type's table.
    static func character(for entry: PageStateEntry) -> Character {
        switch (entry.isPrivate, entry.isAccessible, entry.refcount) {
        case (true, false, 0): return "."
        case (true, true, 0): return "P"
        case (true, true, 1...9): return Character(String(entry.refcount))
        case (true, true, _): return "+"
        case (false, true, 0): return "s"
        case (false, true, _): return "S"
        default: return "!"
        }
    }

    /// `0x00000000  ................ ................ ................ ................`
    func rows(gpa: UInt64, pageSize: UInt64) -> [String] {
        var rows: [String] = []
        var start = 0
        while start < self.characters.count {
            let row = self.characters[start..<min(start + PageMap.pagesPerRow, self.characters.count)]
            var line = "0x" + hexDigits(gpa &+ UInt64(start) &* pageSize, width: 8) + " "
            for (index, character) in row.enumerated() {
                if index % 16 == 0 { line += " " }
                line.append(character)
            }
            rows.append(line)
            start += PageMap.pagesPerRow
        }
        return rows
    }

    /// `16 pages: 12 private, 4 shared, 1 held, 5 accessible`.
    var summary: String {
        let total = self.characters.count
        return "\(total) pages: \(self.privateCount) private, \(total - self.privateCount) shared, "
            + "\(self.heldCount) held, \(self.accessibleCount) accessible"
    }
}
