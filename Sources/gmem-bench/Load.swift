import ArgumentParser
import GmemProtocol
import GmemTesting
import Histogram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What each request of a run does.
enum Operation: String, ExpressibleByArgument, CaseIterable, Sendable {
    case ping, read, write
    case gpcRead = "gpc-read"
    case gpcWrite = "gpc-write"
    /// 40% READ, 20% WRITE, 20% GPC_READ, 10% GPC_WRITE, 10% PING.
    case mixed

    var usesCaches: Bool { self == .gpcRead || self == .gpcWrite || self == .mixed }
}

/// Which pages the requests touch.
enum AccessPattern: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Always the same page (the range starting at page 16).
    case hot
    /// A uniformly random page of the region per request.
    case random
    /// Page after page through the region, wrapping; each connection starts at its own offset.
    case sequential
}

/// The shape of one measurement.
struct LoadSpec: Sendable {
    var label: String
    var socketPath: String
    var operation: Operation = .ping
    var payload: Int = 8
    var connections: Int = 1
    var depth: Int = 1
    var pattern: AccessPattern = .hot
    var warmup: Double = 0.5
    var duration: Double = 5
    /// The first page of `hot` ranges (and of the GPC windows of `hot`).
    var hotPage: UInt64 = 16
    var progress = false
    /// Read the daemon's STATS at the start and end of the measured window.
    var readsStats = true

    var shape: String { "\(self.connections)x\(self.depth)" }
}

/// What one measurement found. Latencies are in nanoseconds.
struct LoadResult: Sendable {
    var spec: LoadSpec
    var ops: UInt64
    var bytes: UInt64
    var errors: UInt64
    var firstError: String?
    var seconds: Double
    var histogram: Histogram<UInt64>
    /// STATS after minus STATS before the measured window, if read.
    var counters: DaemonCounters?
    /// Whether the first page the run touches is private (PAGE_STATE), if known.
    var pagePrivate: Bool?
    var regionFlags: HelloReply.RegionFlags = []

    var opsPerSecond: Double { self.seconds > 0 ? Double(self.ops) / self.seconds : 0 }
    var bytesPerSecond: Double { self.seconds > 0 ? Double(self.bytes) / self.seconds : 0 }
    func percentile(_ value: Double) -> Double { Double(self.histogram.valueAtPercentile(value)) }
    var p50: Double { self.percentile(50) }
    var p90: Double { self.percentile(90) }
    var p99: Double { self.percentile(99) }
    var p999: Double { self.percentile(99.9) }
    var maxLatency: Double { Double(self.histogram.max) }

    /// Requests the daemon counted as memory operations in the window (READ/WRITE/GPC_*), else the client's count.
    var daemonOps: UInt64 {
        guard let counters else { return self.ops }
        let memoryOps = counters["reads"] &+ counters["writes"]
        return memoryOps > 0 ? memoryOps : self.ops
    }

    /// Protection-change system calls per request, from STATS.
    var protectCallsPerOp: Double? {
        guard let counters, self.daemonOps > 0 else { return nil }
        return Double(counters["protect_calls"]) / Double(self.daemonOps)
    }
}

// MARK: Workers

/// Latencies in nanoseconds, 1 ns to 60 s, three significant digits.
enum LatencyHistogram {
    static func make() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: 60_000_000_000,
            numberOfSignificantValueDigits: .three
        )
    }
}

/// The measuring window, written by the driver before the start barrier and read by the workers after it.
final class Timeline: @unchecked Sendable {
    var measureStart: UInt64 = 0
    var measureEnd: UInt64 = 0
    var aborted = false
}

/// One connection's thread and what it measured.
final class Worker: @unchecked Sendable {
    let index: Int
    let completed = Atomic<UInt64>(0)
    var histogram = LatencyHistogram.make()
    var ops: UInt64 = 0
    var bytes: UInt64 = 0
    var errors: UInt64 = 0
    var firstError: String?
    var failure: String?
    var pagePrivate: Bool?
    var regionFlags: HelloReply.RegionFlags = []
    var connection: PipelinedConnection?

    init(index: Int) { self.index = index }

    func run(spec: LoadSpec, timeline: Timeline, ready: Barrier, go: Barrier) {
        var connection: PipelinedConnection?
        var plan: RequestPlan?
        do {
            let receiveCapacity = max(256 << 10, 2 * (FrameHeader.size + spec.payload) + 4096)
            let opened = try PipelinedConnection(path: spec.socketPath, receiveCapacity: receiveCapacity)
            connection = opened
            self.regionFlags = opened.hello.regionFlags
            plan = try RequestPlan(spec: spec, index: self.index, connection: opened)
            if self.index == 0 && spec.operation != .ping && opened.hello.regionSize > 0 {
                self.pagePrivate = try? opened.pageIsPrivate(
                    gpa: spec.pattern == .hot ? spec.hotPage * UInt64(opened.hello.pageSize) : 0
                )
            }
        } catch {
            self.failure = "connection \(self.index): \(error)"
        }
        ready.wait()
        go.wait()
        // The driver closes the connection after its last STATS: closing deactivates GPCs, which zaps pages.
        self.connection = connection
        guard let connection, var plan, self.failure == nil, !timeline.aborted else { return }
        do {
            try self.measure(connection: connection, plan: &plan, depth: spec.depth, timeline: timeline)
        } catch {
            self.failure = "connection \(self.index): \(error)"
        }
    }

    /// Keeps `depth` requests in flight until the window ends, then drains.
    private func measure(
        connection: PipelinedConnection,
        plan: inout RequestPlan,
        depth: Int,
        timeline: Timeline
    ) throws {
        let start = timeline.measureStart
        let end = timeline.measureEnd
        // In-flight requests, oldest first: replies come in request order.
        var ids = [UInt32](repeating: 0, count: depth)
        var sentAt = [UInt64](repeating: 0, count: depth)
        var sizes = [Int](repeating: 0, count: depth)
        var head = 0
        var inFlight = 0
        var out: [UInt8] = []
        out.reserveCapacity(depth * (FrameHeader.size + 16 + plan.payload) + 64)

        for slot in 0..<depth {
            ids[slot] = connection.takeID()
            sizes[slot] = try plan.encodeNext(id: ids[slot], into: &out)
        }
        let primed = monotonicNanos()
        for slot in 0..<depth { sentAt[slot] = primed }
        inFlight = depth
        try connection.send(out)

        var completed: UInt64 = 0
        while inFlight > 0 {
            let (header, _) = try connection.readFrame()
            let now = monotonicNanos()
            if header.flags == .event { continue }
            guard header.id == ids[head] else {
                throw BenchError("reply id \(header.id) while expecting \(ids[head]) (replies out of order?)")
            }
            let sent = sentAt[head]
            if header.status != 0 {
                self.errors += 1
                if self.firstError == nil {
                    self.firstError =
                        "\(header.opcode): \(Errno(wireStatus: header.status).map { "\($0)" } ?? "status \(header.status)")"
                }
            } else if sent >= start && now <= end {
                self.histogram.record(now - sent)
                self.ops += 1
                self.bytes += UInt64(sizes[head])
            }
            completed += 1
            self.completed.store(completed, ordering: .relaxed)
            if now < end {
                // Reuse the slot just freed for the next request.
                out.removeAll(keepingCapacity: true)
                let id = connection.takeID()
                ids[head] = id
                sizes[head] = try plan.encodeNext(id: id, into: &out)
                sentAt[head] = monotonicNanos()
                try connection.send(out)
            } else {
                inFlight -= 1
            }
            head = head + 1 == depth ? 0 : head + 1
        }
    }
}

// MARK: Driver

enum LoadDriver {
    /// Runs one measurement: a thread per connection, warm-up, then the measured window.
    static func run(_ spec: LoadSpec) throws -> LoadResult {
        guard spec.connections >= 1, spec.depth >= 1 else {
            throw BenchError("--connections and --depth must be at least 1")
        }
        let control = try (spec.readsStats ? PipelinedConnection(path: spec.socketPath) : nil)
        defer { control?.close() }

        let workers = (0..<spec.connections).map { Worker(index: $0) }
        let timeline = Timeline()
        let ready = Barrier(count: spec.connections + 1)
        let go = Barrier(count: spec.connections + 1)
        var threads: [PosixThread] = []
        for worker in workers {
            threads.append(
                try PosixThread(stackSize: 1 << 20) { worker.run(spec: spec, timeline: timeline, ready: ready, go: go) }
            )
        }
        ready.wait()
        let failures = workers.compactMap(\.failure)
        let begin = monotonicNanos()
        timeline.measureStart = begin + UInt64(spec.warmup * 1e9)
        timeline.measureEnd = timeline.measureStart + UInt64(spec.duration * 1e9)
        timeline.aborted = !failures.isEmpty
        go.wait()
        if !failures.isEmpty {
            for thread in threads { thread.join() }
            for worker in workers { worker.connection?.close() }
            throw BenchError(failures.joined(separator: "; "))
        }

        sleepUntil(timeline.measureStart)
        let before = try control.map { DaemonCounters(try $0.stats()) }
        var lastCount: UInt64 = 0
        var lastTime = timeline.measureStart
        while true {
            let now = monotonicNanos()
            guard now < timeline.measureEnd else { break }
            sleepUntil(min(now + (spec.progress ? 500_000_000 : 100_000_000), timeline.measureEnd))
            if spec.progress {
                let time = monotonicNanos()
                let count = workers.reduce(0) { $0 + $1.completed.load(ordering: .relaxed) }
                let rate = Double(count - lastCount) / (Double(time - lastTime) / 1e9)
                let elapsed = Double(time - timeline.measureStart) / 1e9
                emit(
                    "\r\u{1B}[K  \(spec.label): \(fixed(elapsed, 1))/\(fixed(spec.duration, 1)) s  \(grouped(rate)) ops/s",
                    terminator: ""
                )
                lastCount = count
                lastTime = time
            }
        }
        let after = try control.map { DaemonCounters(try $0.stats()) }
        if spec.progress { emit("\r\u{1B}[K", terminator: "") }
        for thread in threads { thread.join() }
        for worker in workers { worker.connection?.close() }

        let lateFailures = workers.compactMap(\.failure)
        guard lateFailures.isEmpty else { throw BenchError(lateFailures.joined(separator: "; ")) }
        var histogram = workers[0].histogram
        for worker in workers.dropFirst() { histogram.add(worker.histogram) }
        var counters: DaemonCounters?
        if let before, let after { counters = after - before }
        return LoadResult(
            spec: spec,
            ops: workers.reduce(0) { $0 + $1.ops },
            bytes: workers.reduce(0) { $0 + $1.bytes },
            errors: workers.reduce(0) { $0 + $1.errors },
            firstError: workers.compactMap(\.firstError).first,
            seconds: spec.duration,
            histogram: histogram,
            counters: counters,
            pagePrivate: workers[0].pagePrivate,
            regionFlags: workers[0].regionFlags
        )
    }
}
