import ArgumentParser
import GmemCommandLine
import GmemCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The cost of one restore+zap pair as the daemon makes it: mprotect(PROT_READ|PROT_WRITE) on one page of a
/// PROT_NONE shared memfd mapping, touch the page, mprotect(PROT_NONE).
struct ProtectPairMeasurement: Sendable {
    var nanosPerPair: Double
    var minimumNanosPerPair: Double
    var batches: Int
    var pairsPerBatch: Int
    var regionSize: UInt64
    var pages: Int

    static func measure(
        regionSize: UInt64 = 64 << 20,
        pages: Int = 1,
        batches: Int = 31,
        pairsPerBatch: Int = 10_000,
        writes: Bool = false,
        sibling: Bool = false
    ) throws -> ProtectPairMeasurement {
        let pageSize = GuestMemory.systemPageSize
        // A second thread of this process that keeps waking up on the other core, as the daemon's other event
        // loop does: the kernel then has to flush that core's TLB too (an IPI) on every protection change.
        let stop = SiblingFlag()
        let siblingThread = sibling ? try PosixThread(stackSize: 64 << 10) { stop.spinUntilStopped() } : nil
        defer {
            stop.stop()
            siblingThread?.join()
        }
        // GmemCore's own Region makes the memfd (sealed, like the daemon's); the mapping is ours, PROT_NONE.
        let geometry = try RegionGeometry(regionSize: regionSize, pageSize: pageSize, folioSize: pageSize)
        let region = try Region(geometry: geometry, backing: .memfd, initiallyAccessible: false)
        let length = Int(regionSize)
        guard let base = mmap(nil, length, PROT_NONE, MAP_SHARED | MAP_NORESERVE, region.fileDescriptor, 0),
            base != MAP_FAILED
        else {
            throw GmemError.systemCall("mmap of the memfd", errno: errno)
        }
        defer { munmap(base, length) }
        // A range in the middle, so each restore splits the mapping in three and each zap merges it back.
        guard pages >= 1, pages * pageSize < length / 2 else {
            throw BenchError("--pages must lie in 1 ..< half the mapping")
        }
        let page = base + (length / 2 / pageSize) * pageSize
        let span = pages * pageSize
        var sink: UInt8 = 0
        func pair() throws {
            guard mprotect(page, span, PROT_READ | PROT_WRITE) == 0 else {
                throw GmemError.systemCall("mprotect(RW)", errno: errno)
            }
            for offset in stride(from: 64, to: span, by: pageSize) {
                if writes { page.storeBytes(of: sink &+ 1, toByteOffset: offset, as: UInt8.self) }
                sink &+= page.load(fromByteOffset: offset, as: UInt8.self)
            }
            guard mprotect(page, span, PROT_NONE) == 0 else {
                throw GmemError.systemCall("mprotect(NONE)", errno: errno)
            }
        }
        // Warm-up: fault the page in and settle the caches.
        for _ in 0..<min(pairsPerBatch, 2_000) { try pair() }
        var perPair: [Double] = []
        for _ in 0..<batches {
            let start = monotonicNanos()
            for _ in 0..<pairsPerBatch { try pair() }
            perPair.append(Double(monotonicNanos() - start) / Double(pairsPerBatch))
        }
        withExtendedLifetime(sink) {}
        perPair.sort()
        return ProtectPairMeasurement(
            nanosPerPair: perPair[perPair.count / 2],
            minimumNanosPerPair: perPair[0],
            batches: batches,
            pairsPerBatch: pairsPerBatch,
            regionSize: regionSize,
            pages: pages
        )
    }
}

/// Tells the sibling thread of ``ProtectPairMeasurement/measure`` to end.
final class SiblingFlag: @unchecked Sendable {
    private let flag = Atomic<Bool>(false)
    func stop() { self.flag.store(true, ordering: .relaxed) }
    /// Sleeps 20 µs at a time (so the core keeps switching back into this mm) until stopped.
    func spinUntilStopped() {
        while !self.flag.load(ordering: .relaxed) { sleepNanos(20_000) }
    }
}

/// `gmem-bench protect-pair`.
struct ProtectPairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protect-pair",
        abstract:
            "Measure one restore+zap pair (mprotect RW, touch, mprotect NONE) on a shared memfd mapping, in-process."
    )

    @Option(help: "Size of the memfd mapping.")
    var size = ByteSize(bytes: 64 << 20)

    @Option(help: "Pages per protection call (a 64 KiB READ changes 16 at once).")
    var pages = 1

    @Option(help: "Batches; the median batch is reported.")
    var batches = 31

    @Option(help: "Pairs per batch.")
    var pairs = 10_000

    @Flag(help: "Keep a second thread of this process waking up every 20 us, as a multi-threaded daemon has.")
    var sibling = false

    @Flag(help: "Touch the page by writing a byte (default: reading).")
    var write = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard self.batches >= 1, self.pairs >= 1 else {
            throw ValidationError("--batches and --pairs must be at least 1")
        }
    }

    func run() throws {
        warnIfDebug(allow: true)
        let result = try ProtectPairMeasurement.measure(
            regionSize: self.size.bytes,
            pages: self.pages,
            batches: self.batches,
            pairsPerBatch: self.pairs,
            writes: self.write,
            sibling: self.sibling
        )
        if self.json {
            var object = JSONObject()
            object["ns_per_pair"] = .measurement(result.nanosPerPair)
            object["min_ns_per_pair"] = .measurement(result.minimumNanosPerPair)
            object["batches"] = .signed(Int64(result.batches))
            object["pairs_per_batch"] = .signed(Int64(result.pairsPerBatch))
            object["region_bytes"] = .signed(Int64(result.regionSize))
            object["pages"] = .signed(Int64(result.pages))
            object["sibling_thread"] = .bool(self.sibling)
            object["debug_build"] = .bool(isDebugBuild)
            print(object.value.prettyPrinted)
        } else {
            print(
                "gmem-bench protect-pair: \(ByteSize(bytes: result.regionSize)) shared memfd mapping, \(self.pages) page(s) in the middle, \(self.write ? "write" : "read") touch\(self.sibling ? ", sibling thread waking every 20 us" : "")"
            )
            print(
                "  restore+zap pair: \(fixed(result.nanosPerPair, 0)) ns (median of \(result.batches) batches of \(result.pairsPerBatch); best batch \(fixed(result.minimumNanosPerPair, 0)) ns)"
            )
        }
    }
}
