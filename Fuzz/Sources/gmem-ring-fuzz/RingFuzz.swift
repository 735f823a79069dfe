//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// gmem-ring-fuzz: random entries and random scribbling on live rings of the real gmemd.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// The ring target of the fuzzer (Fuzz/README.md). A ring is shared memory the client may write at any instant, so
/// it cannot go through libFuzzer's in-process harness: this drives the real gmemd. Seeded actions submit random
/// entries (often well-formed, often not), scribble on index words, flag words, submission slots and the data area
/// while entries are in flight, ring doorbells, consume, close and reopen. Every so often a bystander client checks
/// that its own ring and the socket still answer; at the end gmemd must be alive, have finished every ring, and
/// hold no page reference.
///
/// Usage: gmem-ring-fuzz [SECONDS] [SEED]. Exit status 1 on a finding, with the seed to replay it.
@main
struct RingFuzz {
    static func main() throws {
        let arguments = CommandLine.arguments
        let seconds = arguments.count > 1 ? Double(arguments[1]) ?? 20 : 20
        let seed = arguments.count > 2 ? UInt64(arguments[2]) ?? 1 : UInt64(UInt32(truncatingIfNeeded: time(nil)))
        say("gmem-ring-fuzz: \(seconds) s, seed \(seed) (replay: gmem-ring-fuzz \(seconds) \(seed))")
        var fuzzer = try RingFuzzer(seed: seed)
        do {
            try fuzzer.run(seconds: seconds)
        } catch {
            say("gmem-ring-fuzz: FINDING (seed \(seed)) after \(fuzzer.actions) actions: \(error)")
            say(String(fuzzer.daemon.stderr.suffix(3000)))
            exit(1)
        }
        say(
            "gmem-ring-fuzz: \(fuzzer.actions) actions, \(fuzzer.entries) entries, \(fuzzer.scribbles) scribbles, "
                + "\(fuzzer.reconnects) reconnects (\(fuzzer.ringFailures) after RING_FAILED); gmemd intact"
        )
    }
}

struct RingFuzzer {
    let daemon: DaemonProcess
    var random: SplitMix
    var connection: RawConnection
    var rings: [RawRing] = []
    let bystander: RawConnection
    let bystanderRing: RawRing
    var actions = 0
    var entries = 0
    var scribbles = 0
    var reconnects = 0
    var ringFailures = 0
    /// Whether an index word gmemd reads (sq_tail, cq_head) was overwritten since the last connect: only then may
    /// gmemd close the connection (RING_FAILED); any other close is a finding.
    var indexCorrupted = false
    let regionSize: UInt64 = 16 << 20

    init(seed: UInt64) throws {
        self.daemon = try DaemonProcess.start(arguments: ["--max-rings", "4", "--ring-poll-us", "20"], size: "16M")
        self.random = SplitMix(state: seed)
        self.connection = try self.daemon.connectWithHello(features: [.events, .rings])
        self.bystander = try self.daemon.connectWithHello()
        self.bystanderRing = try self.bystander.ring(entries: 4, dataSize: 4096)
    }

    mutating func run(seconds: Double) throws {
        let deadline = Deadline(after: .milliseconds(Int64(seconds * 1000)))
        while !deadline.hasPassed {
            self.actions += 1
            try self.step()
            if self.actions % 200 == 0 { try self.checkBystander() }
        }
        try self.finish()
    }

    /// One random action on the fuzzed connection and its rings.
    mutating func step() throws {
        if self.rings.isEmpty || self.random.below(40) == 0 {
            guard self.rings.count < 4 else { return self.closeOneRing() }
            let entries = UInt32(1) << self.random.below(7)
            let size = UInt64(4096) << self.random.below(5)
            guard let reply = try self.onConnection({ try $0.ringSetupReply(entries: entries, dataSize: size) }) else {
                return
            }
            if reply.isSuccess {
                let payload = try reply.decodePayload(as: RingSetupReply.self)
                let fds = Array(self.connection.receivedDescriptors.prefix(3))
                self.connection.receivedDescriptors.removeFirst(fds.count)
                self.rings.append(try RawRing(reply: payload, descriptors: fds))
            }
            return
        }
        let ring = self.rings[Int(self.random.below(UInt64(self.rings.count)))]
        switch self.random.below(100) {
        case 0..<55:
            // Never more in flight than the queue holds, unless a scribble says otherwise.
            let room = Int(ring.layout.entries) - ring.inFlight
            guard room > 0 else { return self.consume(ring) }
            let count = 1 + Int(self.random.below(UInt64(room)))
            ring.submit((0..<count).map { _ in self.randomEntry(ring) })
            self.entries += count
        case 55..<70:
            self.consume(ring)
        case 70..<80:
            // Bytes anywhere in the submission queue or the data area, entries in flight included.
            let inQueue = self.random.below(2) == 0
            let base = inQueue ? ring.layout.submissionQueueOffset : ring.layout.dataOffset
            let span = inQueue ? Int(ring.layout.entries) * RingLayout.submissionSize : ring.layout.dataSize
            for _ in 0..<(1 + self.random.below(16)) {
                let offset = base + Int(self.random.below(UInt64(span)))
                ring.shared.base.storeBytes(
                    of: UInt8(truncatingIfNeeded: self.random.next()),
                    toByteOffset: offset,
                    as: UInt8.self
                )
            }
            self.scribbles += 1
        case 80..<86:
            // The flag words and, rarely, the indices: a corrupt index ends the connection with RING_FAILED.
            let words = [
                RingLayout.Offset.serverFlags, RingLayout.Offset.clientFlags, RingLayout.Offset.submissionHead,
                RingLayout.Offset.completionTail,
            ]
            var offset = words[Int(self.random.below(UInt64(words.count)))]
            if self.random.below(8) == 0 {
                offset = self.random.below(2) == 0 ? RingLayout.Offset.submissionTail : RingLayout.Offset.completionHead
                self.indexCorrupted = true
            }
            ring.shared.storeRelease(UInt32(truncatingIfNeeded: self.random.next()), at: offset)
            var one: UInt64 = 1
            _ = write(ring.submitDoorbell, &one, 8)
            self.scribbles += 1
        case 86..<92:
            var one: UInt64 = 1
            _ = write(ring.submitDoorbell, &one, 8)
        case 92..<96:
            // A socket request between ring traffic.
            _ = try self.onConnection { try $0.requirePing() }
        default:
            self.closeOneRing()
        }
        if !self.connectionIsOpen() { try self.reconnect() }
    }

    /// An entry: one of the ring's opcodes (or any u16), fields biased towards the valid ranges.
    mutating func randomEntry(_ ring: RawRing) -> RingSubmission {
        let opcodes: [Opcode] = [.ping, .read, .write, .gpcRead, .gpcWrite, .readv, .writev, .atomic, .gpcAtomic]
        let opcode =
            self.random.below(20) == 0
            ? Opcode(rawValue: UInt16(truncatingIfNeeded: self.random.next()))
            : opcodes[Int(self.random.below(UInt64(opcodes.count)))]
        var entry = RingSubmission(cookie: self.random.next(), opcode: opcode)
        let data = UInt64(ring.layout.dataSize)
        entry.length = UInt32(self.random.below(self.random.below(4) == 0 ? 1 << 20 : 512))
        entry.address = self.random.below(4) == 0 ? self.random.next() : self.random.below(self.regionSize)
        if opcode == .readv || opcode == .writev { entry.length = UInt32(self.random.below(20)) }
        entry.dataOffset = self.random.below(8) == 0 ? self.random.next() : self.random.below(data)
        if [.readv, .writev, .gpcRead, .gpcWrite, .gpcAtomic].contains(opcode) {
            entry.auxiliary = self.random.below(data)
        }
        if opcode == .atomic || opcode == .gpcAtomic {
            entry.length = 0
            entry.op = UInt8(self.random.below(8))
            entry.width = [1, 2, 4, 8, 3][Int(self.random.below(5))]
            entry.address &= ~UInt64(7)
        }
        if self.random.below(16) == 0 { entry.reserved = self.random.next() >> 16 }
        return entry
    }

    /// Consumes what completed; a ring whose server-owned words were scribbled on is given up.
    mutating func consume(_ ring: RawRing) {
        do {
            _ = try ring.completeAvailable(timeout: .milliseconds(50), spin: 100)
        } catch let error as GmemTestingError where error.code == .protocolViolation {
            if let index = self.rings.firstIndex(where: { $0 === ring }) { self.rings.remove(at: index) }
            _ = try? self.connection.ringClose(ring.ringID)
            ring.close()
        } catch {
            // Nothing completed within 50 ms: the entries may wait behind a scribbled index.
        }
    }

    mutating func closeOneRing() {
        guard !self.rings.isEmpty else { return }
        let ring = self.rings.remove(at: Int(self.random.below(UInt64(self.rings.count))))
        _ = try? self.onConnection { try $0.ringClose(ring.ringID) }
        ring.close()
    }

    /// A request on the fuzzed connection. gmemd may have closed it after a corrupted index (RING_FAILED): then
    /// reconnect and return nil; a close without one is a finding.
    mutating func onConnection<R>(_ body: (RawConnection) throws -> R) throws -> R? {
        do {
            return try body(self.connection)
        } catch let error as GmemTestingError where error.code == .connectionClosed && self.indexCorrupted {
            try self.reconnect()
            return nil
        }
    }

    func connectionIsOpen() -> Bool {
        // POLLRDHUP (0x2000; Glibc's module hides it behind _GNU_SOURCE): the daemon closed its end.
        var descriptor = pollfd(fd: self.connection.descriptor, events: Int16(0x2000), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    mutating func reconnect() throws {
        let failed = self.connection.events.contains { $0.header.opcode == .ringFailed }
        if failed || (try? self.connection.receiveFrame(timeout: .milliseconds(100)))??.header.opcode == .ringFailed {
            self.ringFailures += 1
        } else if !self.indexCorrupted {
            throw GmemTestingError.protocolViolation("gmemd closed a connection whose ring indices were intact")
        }
        self.indexCorrupted = false
        for ring in self.rings { ring.close() }
        self.rings.removeAll()
        self.connection.close()
        self.connection = try self.daemon.connectWithHello(features: [.events, .rings])
        self.reconnects += 1
    }

    /// Another client's ring and socket answer, and its data is its own.
    mutating func checkBystander() throws {
        guard self.daemon.isRunning else { throw GmemTestingError.protocolViolation("gmemd died") }
        let pattern = (0..<64).map { _ in UInt8(truncatingIfNeeded: self.random.next()) }
        self.bystanderRing.storeData(pattern, at: 0)
        let gpa = (self.regionSize - 4096) + self.random.below(4096 - 64)
        let write = try self.bystanderRing.call(.write(cookie: 1, gpa: gpa, length: 64, data: 0), timeout: .seconds(2))
        guard write.status == 0 else { throw GmemTestingError.protocolViolation("bystander ring WRITE: \(write)") }
        guard try self.bystander.readBytes(gpa: gpa, length: 64) == pattern else {
            throw GmemTestingError.protocolViolation("the bystander's bytes changed")
        }
    }

    /// Everything closed: no ring left, no reference left, PAGE_STATE and the kernel agree.
    mutating func finish() throws {
        try self.checkBystander()
        for ring in self.rings { ring.close() }
        self.connection.close()
        self.bystanderRing.close()
        let probe = self.bystander
        _ = try probe.ringClose(self.bystanderRing.ringID)
        try waitUntil("every ring to be finished", timeout: .seconds(10)) {
            try probe.statistics()["rings_active"] == 0
        }
        let pages = Int(self.regionSize / 4096)
        let states = try probe.pageStates(gpa: 0, count: UInt32(pages))
        let mapped = try self.daemon.mapsProtections(ofRegionIn: 0..<pages)
        for page in 0..<pages {
            let state = states[page]
            guard state.isPrivate ? (state.refcount == 0 && !state.isAccessible) : state.isAccessible,
                mapped[page].isAccessible == state.isAccessible
            else {
                throw GmemTestingError.protocolViolation("page \(page): \(state), maps \(mapped[page])")
            }
        }
    }
}

/// SplitMix64: a seeded generator, so that a finding replays from its seed.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: UInt64) -> UInt64 { bound == 0 ? 0 : self.next() % bound }
}

/// A line on standard output, flushed at once (the fuzzer's output is read while it runs).
func say(_ line: String) {
    print(line)
    fflush(nil)
}
