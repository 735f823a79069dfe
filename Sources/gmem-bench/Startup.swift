import ArgumentParser
import GmemCore

/// `gmem-bench startup`: how long creating a large region takes and how much
/// resident memory it costs, before and after touching a few pages.
struct Startup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a GuestMemory (memfd, no direct map) and report start-up time and VmRSS."
    )

    @Option(help: "Region size: a byte count with an optional K, M, G or T suffix.")
    var size = ByteSize(bytes: 1 << 40)

    @Option(help: "Folio size (default: the system page size).")
    var folioSize: ByteSize?

    @Option(help: "How many pages to touch (write, then read back), spread over the region.")
    var touch = 8

    func validate() throws {
        guard self.touch >= 0 else { throw ValidationError("--touch must not be negative") }
    }

    func run() throws {
        warnIfDebug(allow: true)
        let clock = ContinuousClock()
        let configuration = GuestMemory.Configuration(
            size: self.size.bytes,
            folioSize: self.folioSize.map { Int($0.bytes) },
            backing: .memfd,
            directMap: false
        )
        let baseline = ProcessMemory.residentBytes()

        let start = clock.now
        let memory = try GuestMemory(configuration)
        let created = clock.now - start
        let afterCreate = ProcessMemory.residentBytes()

        let pageSize = UInt64(memory.geometry.pageSize)
        let pageCount = memory.geometry.regionSize / pageSize
        let touches = UInt64(min(self.touch, Int(clamping: pageCount)))
        let touchStart = clock.now
        var payload: [UInt8] = Array("gmem-bench".utf8)
        var readBack = [UInt8](repeating: 0, count: payload.count)
        for index in 0..<touches {
            // Spread evenly, landing in different 2 MiB chunks of metadata.
            let address = GuestPhysicalAddress((pageCount * index / max(touches, 1)) * pageSize + 64)
            payload[0] = UInt8(truncatingIfNeeded: index)
            try payload.withUnsafeBytes { try memory.write(at: address, from: $0) }
            try readBack.withUnsafeMutableBytes { try memory.read(at: address, into: $0) }
            guard readBack == payload else { throw ValidationError("page \(index) read back wrong data") }
        }
        let touched = clock.now - touchStart
        let afterTouch = ProcessMemory.residentBytes()
        let statistics = memory.statistics

        func rss(_ value: UInt64, since: UInt64) -> String {
            "VmRSS \(ByteSize.format(Double(value))) (+\(ByteSize.format(Double(value) - Double(since))))"
        }
        print(
            "gmem-bench startup: \(self.size) region, \(pageCount) pages, folio \(ByteSize(bytes: UInt64(memory.geometry.folioSize))), memfd, no direct map"
        )
        print("  before:           VmRSS \(ByteSize.format(Double(baseline)))")
        print("  create:           \(fixed(created.milliseconds, 3)) ms, \(rss(afterCreate, since: baseline))")
        print(
            "  touch:            \(touches) pages in \(fixed(touched.milliseconds, 3)) ms, \(rss(afterTouch, since: afterCreate))"
        )
        print(
            "  protection calls: \(statistics.protectCalls) (\(statistics.restores) restores, \(statistics.zaps) zaps)"
        )
        print("  total growth:     \(ByteSize.format(Double(afterTouch) - Double(baseline)))")
    }
}
