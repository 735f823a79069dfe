import GmemCommandLine
import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// Targets 1-6 (PING, READ, 64 KiB READ and GPC_READ against the raw baselines), for ``SuiteRun``.
extension SuiteRun {
    mutating func runCoreTargets(pairNanos: Double) {
        self.log(
            "\n[1-6] raw baseline (in-process) and gmemd \(Self.baseArguments.joined(separator: " ")), interleaved"
        )
        do {
            let directory = try makeTemporaryDirectory(prefix: "gmem-bench-raw")
            defer { rmdir(directory) }
            let raw = try RawServer(socketPath: directory + "/raw.sock", size: 64 << 20)
            try raw.start()
            defer { raw.stop() }
            let rawEpoll = try RawServer(socketPath: directory + "/raw-epoll.sock", size: 64 << 20, mode: .epoll)
            try rawEpoll.start()
            defer { rawEpoll.stop() }
            let e = rawEpoll.socketPath
            let rawNIO = try RawServer(socketPath: directory + "/raw-nio.sock", size: 64 << 20, mode: .nio)
            try rawNIO.start()
            defer { rawNIO.stop() }
            let n = rawNIO.socketPath
            let (daemon, _) = try self.spawn(Self.baseArguments)
            defer { daemon.stop() }
            let r = raw.socketPath
            let g = daemon.socketPath

            let results = try self.measureRounds([
                (self.spec("raw PING 1x1", r, .ping), .latency),
                (self.spec("raw-epoll PING 1x1 (diagnostic)", e, .ping), .latency),
                (self.spec("gmemd PING 1x1", g, .ping), .latency),
                (self.spec("raw PING 2x16", r, .ping, connections: 2, depth: 16), .throughput),
                (self.spec("gmemd PING 2x16", g, .ping, connections: 2, depth: 16), .throughput),
                (self.spec("gmemd READ 1x1 hot", g, .read), .latency),
                (self.spec("gmemd READ 2x16 hot", g, .read, connections: 2, depth: 16), .throughput),
                (self.spec("raw READ 64K 1x1", r, .read, payload: 64 << 10), .latency),
                (self.spec("gmemd READ 64K 1x1 hot", g, .read, payload: 64 << 10), .latency),
                (self.spec("gmemd GPC_READ 1x1 hot", g, .gpcRead), .latency),
                (self.spec("raw READ 1x1", r, .read), .latency),
                (self.spec("raw-nio PING 1x1 (diagnostic)", n, .ping), .latency),
                (self.spec("raw-nio READ 64K 1x1 (diagnostic)", n, .read, payload: 64 << 10), .latency),
            ])
            let rawPing = results[0]
            let ping = results[2]
            let rawPingThroughput = results[3]
            let pingThroughput = results[4]
            let read = results[5]
            let readThroughput = results[6]
            let rawRead64K = results[7]
            let read64K = results[8]
            let gpcRead = results[9]
            let rawEpollPing = results[1]
            let nioPing = results[11]
            let nioRead64K = results[12]
            if daemon.status() == nil { throw BenchError("gmemd died: \(daemon.logTail())") }
            if read.pagePrivate == false {
                self.log("WARNING: the hot page is not private; targets 3-6 are about private pages")
            }

            self.addRatio(
                "1",
                "PING p50, 1 conn, depth 1",
                ping.p50,
                rawPing.p50,
                baselineText: "raw",
                limit: 1.15,
                atMost: true,
                latency: true
            )
            self.addRatio(
                "2",
                "PING throughput, 2 conns x depth 16",
                pingThroughput.opsPerSecond,
                rawPingThroughput.opsPerSecond,
                baselineText: "raw",
                limit: 0.8,
                atMost: false,
                latency: false
            )
            // 3: the overhead of READ over PING in units of one restore+zap pair.
            let overhead = (read.p50 - ping.p50) / pairNanos
            var row3 = TargetRow(
                number: "3",
                measure: "READ p50, 1 conn, depth 1",
                value: "\(micros(read.p50)) us",
                baseline: "PING \(micros(ping.p50)) + pair \(micros(pairNanos)) us",
                ratio: "\(fixed(overhead, 2)) pairs",
                target: "<= PING + 1.2 pairs",
                met: read.p50 <= ping.p50 + 1.2 * pairNanos
            )
            row3.json["value_ns"] = .measurement(read.p50)
            row3.json["ping_p50_ns"] = .measurement(ping.p50)
            row3.json["pair_ns"] = .measurement(pairNanos)
            row3.json["overhead_pairs"] = .measurement(overhead)
            row3.json["pair_with_sibling_thread_ns"] = .measurement(self.pairWithSibling)
            self.rows.append(row3)
            self.addRatio(
                "4",
                "READ throughput, 2x16, one hot page",
                readThroughput.opsPerSecond,
                pingThroughput.opsPerSecond,
                baselineText: "gmemd PING 2x16",
                limit: 0.7,
                atMost: false,
                latency: false
            )
            // What the transport alone costs: the same answers from a hand-written epoll loop and from the
            // smallest SwiftNIO server. Rows 1 and 5b cannot beat the second.
            self.log(
                "diagnostic floors (p50 / raw): epoll loop PING \(fixed(rawEpollPing.p50 / rawPing.p50, 3)), "
                    + "minimal SwiftNIO server PING \(fixed(nioPing.p50 / rawPing.p50, 3)) and READ 64K "
                    + "\(fixed(nioRead64K.p50 / rawRead64K.p50, 3)); gmemd over that NIO floor: PING "
                    + "\(fixed(ping.p50 / nioPing.p50, 3)), READ 64K \(fixed(read64K.p50 / nioRead64K.p50, 3))"
            )
            let calls64K = read64K.protectCallsPerOp ?? .nan
            self.addAbsolute(
                "5a",
                "READ 64 KiB: protection calls per request",
                calls64K,
                text: fixed(calls64K, 2),
                target: "<= 2",
                met: calls64K <= 2
            )
            self.addRatio(
                "5b",
                "READ 64 KiB p50, 1 conn, depth 1",
                read64K.p50,
                rawRead64K.p50,
                baselineText: "raw 64K",
                limit: 1.3,
                atMost: true,
                latency: true
            )
            self.addRatio(
                "6a",
                "GPC_READ p50, 1 conn, depth 1",
                gpcRead.p50,
                ping.p50,
                baselineText: "gmemd PING",
                limit: 1.05,
                atMost: true,
                latency: true
            )
            let gpcCalls = gpcRead.counters?["protect_calls"] ?? UInt64.max
            self.addAbsolute(
                "6b",
                "GPC_READ: protection calls in the window",
                Double(gpcCalls),
                text: "\(gpcCalls)",
                target: "= 0",
                met: gpcCalls == 0
            )
        } catch {
            self.log("targets 1-6 failed: \(error)")
            self.addFailed(
                [
                    ("1", "PING p50"), ("2", "PING throughput"), ("3", "READ p50"), ("4", "READ throughput"),
                    ("5", "READ 64 KiB"), ("6", "GPC_READ p50"),
                ],
                error
            )
        }
    }
}
