import GmemProtocol
import GmemTesting
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// What a ring measurement submits: one entry shape, always on the hot page.
enum RingOperation: String, Sendable {
    case ping
    /// READ of the payload on the hot page.
    case read
    /// GPC_READ of the payload through a GPC on the hot page.
    case gpcRead = "gpc-read"
    /// An 8-byte CMPXCHG through a GPC on the hot page (it alternates the word between two values).
    case gpcCompareExchange = "gpc-cmpxchg"
    /// READV of 16 segments of 128 bytes, one on each of 16 contiguous pages from the hot page.
    case readv16
}

/// One ring measurement: a connection, one ring, `depth` entries in flight, on this thread.
struct RingLoadSpec: Sendable {
    var label: String
    var socketPath: String
    var operation: RingOperation
    var payload = 8
    var depth = 1
    var warmup = 0.5
    var duration = 1.5
    var hotPage: UInt64 = 16
    /// Polls of `cq_tail` before the client sleeps on the completion doorbell: a polling client, or (0) a
    /// client that sleeps at once, as a doorbell-only one does.
    var spin = 1_000_000
    /// Microseconds the client waits (busy) after each completion before it submits again: a device model's think
    /// time, which decides whether the server's poller is still polling when the next entry comes.
    var gapMicroseconds = 0
}

enum RingLoadDriver {
    /// Runs one measurement and reports it as a ``LoadResult`` (its `spec` describes the ring run).
    static func run(_ spec: RingLoadSpec) throws -> LoadResult {
        let connection = try RawConnection.connect(spec.socketPath)
        defer { connection.close() }
        let hello = try connection.hello(features: [.rings])
        let pageSize = UInt64(hello.pageSize)
        let hot = spec.hotPage * pageSize
        var entries: UInt32 = 1
        while entries < spec.depth { entries <<= 1 }
        let ring = try connection.ring(entries: entries, dataSize: 1 << 20)
        defer { ring.close() }
        let handle =
            [.gpcRead, .gpcCompareExchange].contains(spec.operation)
            ? try connection.activateGpc(gpa: hot, length: UInt32(pageSize)) : 0
        if spec.operation == .readv16 {
            ring.storeSegmentTable((0..<16).map { WireSegment(gpa: hot + UInt64($0) * pageSize, length: 128) }, at: 0)
        }
        let pagePrivate = try? connection.pageState(at: hot).isPrivate
        // Every slot has its own data bytes; the table (readv16) sits in the first 4 KiB.
        let stride = UInt64(max(spec.payload, 16 * 128))
        var exchanged: UInt64 = 0
        func entry(_ slot: Int) -> RingSubmission {
            let data = 4096 + UInt64(slot) * stride
            let cookie = UInt64(slot)
            switch spec.operation {
            case .ping: return .ping(cookie: cookie)
            case .read: return .read(cookie: cookie, gpa: hot, length: UInt32(spec.payload), data: data)
            case .gpcRead:
                return .gpcRead(cookie: cookie, handle: handle, offset: 0, length: UInt32(spec.payload), data: data)
            case .gpcCompareExchange:
                defer { exchanged &+= 1 }
                let arguments = AtomicArguments(
                    op: .compareExchange,
                    width: 8,
                    operand: (exchanged &+ 1) & 1,
                    expected: exchanged & 1
                )
                return .gpcAtomic(cookie: cookie, handle: handle, offset: 0, arguments)
            case .readv16: return .vector(.readv, cookie: cookie, segments: 16, table: 0, data: data)
            }
        }
        let moved = spec.operation == .readv16 ? 16 * 128 : (spec.operation == .gpcCompareExchange ? 8 : spec.payload)

        var histogram = LatencyHistogram.make()
        var ops: UInt64 = 0
        var errors: UInt64 = 0
        var firstError: String?
        let begin = monotonicNanos()
        let start = begin + UInt64(spec.warmup * 1e9)
        let end = start + UInt64(spec.duration * 1e9)
        var sentAt = [UInt64](repeating: 0, count: spec.depth)
        var before: DaemonCounters?

        ring.submit((0..<spec.depth).map { entry($0) })
        for slot in 0..<spec.depth { sentAt[slot] = begin }
        var inFlight = spec.depth
        var resubmit: [RingSubmission] = []
        resubmit.reserveCapacity(spec.depth)
        while inFlight > 0 {
            if before == nil, monotonicNanos() >= start {
                // STATS on the socket while the ring runs: the window's protection calls.
                before = DaemonCounters(try connection.statistics())
            }
            let completions = try ring.completeAvailable(spin: spec.spin)
            let now = monotonicNanos()
            resubmit.removeAll(keepingCapacity: true)
            for completion in completions {
                let slot = Int(completion.cookie)
                if completion.status != 0 {
                    errors += 1
                    if firstError == nil { firstError = "\(spec.operation): status \(completion.status)" }
                } else if sentAt[slot] >= start && now <= end {
                    histogram.record(now - sentAt[slot])
                    ops += 1
                }
                if now < end {
                    if spec.gapMicroseconds > 0 {
                        let until = monotonicNanos() + UInt64(spec.gapMicroseconds) * 1000
                        while monotonicNanos() < until {}
                    }
                    sentAt[slot] = monotonicNanos()
                    resubmit.append(entry(slot))
                } else {
                    inFlight -= 1
                }
            }
            if !resubmit.isEmpty { ring.submit(resubmit) }
        }
        let after = DaemonCounters(try connection.statistics())
        var load = LoadSpec(label: spec.label, socketPath: spec.socketPath)
        (load.payload, load.depth, load.warmup, load.duration) = (moved, spec.depth, spec.warmup, spec.duration)
        return LoadResult(
            spec: load,
            ops: ops,
            bytes: ops * UInt64(moved),
            errors: errors,
            firstError: firstError,
            seconds: spec.duration,
            histogram: histogram,
            counters: before.map { after - $0 },
            pagePrivate: pagePrivate,
            regionFlags: hello.regionFlags
        )
    }
}
