//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Model-based testing: random operations from several clients, checked against a model of the whole region.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// What the daemon's state must be, as far as a client can tell: every page's attribute, every GPC (its window and
/// whether it is valid), and every byte of guest memory. References are derived: a page's count is the number of
/// valid GPCs on it, and a page is mapped exactly when it is shared or counted.
struct RegionModel {
    struct Gpc {
        var gpa: UInt64
        var length: Int
        var isValid: Bool
        var page: Int { Int(self.gpa / pageSize) }
    }

    var isShared = [Bool](repeating: false, count: Int(regionSize / pageSize))
    var memory = [UInt8](repeating: 0, count: Int(regionSize))
    /// GPCs per client, by handle.
    var gpcs: [[UInt64: Gpc]]

    init(clients: Int) {
        self.gpcs = Array(repeating: [:], count: clients)
    }

    /// Every page's reference count: the valid GPCs on it.
    func refcounts() -> [Int] {
        var counts = [Int](repeating: 0, count: self.isShared.count)
        for client in self.gpcs {
            for gpc in client.values where gpc.isValid { counts[gpc.page] += 1 }
        }
        return counts
    }

    /// Marks every valid GPC on `pages` (all of them, or those whose attribute `changed`) invalid and returns the
    /// events each client must receive.
    mutating func invalidate(_ pages: Range<Int>, reason: InvalidationReason) -> [Set<GpcInvalidatedEvent>] {
        var events = [Set<GpcInvalidatedEvent>](repeating: [], count: self.gpcs.count)
        for client in self.gpcs.indices {
            for (handle, gpc) in self.gpcs[client] where gpc.isValid && pages.contains(gpc.page) {
                self.gpcs[client][handle]?.isValid = false
                events[client].insert(GpcInvalidatedEvent(handle: handle, reason: reason))
            }
        }
        return events
    }
}

@Suite("Model-based: random operations from several clients, over the socket and over rings")
struct ModelBasedTests {
    private static let clientCount = 3
    private static let steps = 300
    private static let pageCount = Int(regionSize / pageSize)
    private static let pagesPerChunk = (2 << 20) / Int(pageSize)

    @Test(
        "the daemon's pages, mappings, GPCs, events and memory follow the model",
        arguments: [(UInt64(11), "4K"), (12, "4K"), (13, "4K"), (14, "64K"), (15, "2M")]
    )
    func randomOperations(seed: UInt64, folioSize: String) throws {
        let daemon = try DaemonProcess.start(arguments: ["--folio-size", folioSize])
        let probe = try daemon.connectWithHello()
        var clients = try (0..<Self.clientCount).map { _ in try daemon.connectWithHello(features: .events) }
        // Each client also has a ring: READ, WRITE, GPC_READ and GPC_WRITE pick a transport at random.
        var rings = try clients.map { try $0.ring(entries: 8, dataSize: 1 << 16) }
        var model = RegionModel(clients: Self.clientCount)
        var random = SplitMix64(state: seed)
        var history: [String] = []

        for step in 0..<Self.steps {
            let client = Int.random(in: 0..<Self.clientCount, using: &random)
            let connection = clients[client]
            var expectedEvents = [Set<GpcInvalidatedEvent>](repeating: [], count: Self.clientCount)
            // The pages this step may have changed; the whole region is compared every tenth step.
            var touched: [Range<Int>] = []
            var checkAll = step % 10 == 9 || step == Self.steps - 1
            let ring: RawRing? = Bool.random(using: &random) ? rings[client] : nil
            let via = ring == nil ? "" : " (ring)"
            let action = Int.random(in: 0..<100, using: &random)
            let description: String
            switch action {
            case 0..<14:
                guard model.gpcs[client].count < 16 else { continue }
                let (gpa, length) = Self.randomWindow(using: &random)
                let handle = try connection.activateGpc(gpa: gpa, length: UInt32(length))
                #expect(model.gpcs[client][handle] == nil, "step \(step): handle \(handle) reused")
                model.gpcs[client][handle] = RegionModel.Gpc(gpa: gpa, length: length, isValid: true)
                touched.append(Self.pages(gpa, 1))
                description = "client \(client) GPC_ACTIVATE 0x\(String(gpa, radix: 16)) len \(length) -> \(handle)"
            case 14..<22:
                guard let (handle, gpc) = model.gpcs[client].randomElement(using: &random) else { continue }
                try connection.deactivateGpc(handle)
                touched.append(Self.pages(gpc.gpa, 1))
                model.gpcs[client][handle] = nil
                description = "client \(client) GPC_DEACTIVATE \(handle)"
            case 22..<34:
                guard let (handle, gpc) = model.gpcs[client].randomElement(using: &random) else { continue }
                let (status, data) =
                    try ring.map { try Self.ringGpcRead($0, handle: handle, length: gpc.length) }
                    ?? connection.gpcRead(handle: handle, length: UInt32(gpc.length)).statusAndPayload
                touched.append(Self.pages(gpc.gpa, 1))
                if gpc.isValid {
                    let start = Int(gpc.gpa)
                    #expect(status == 0, "step \(step): GPC_READ\(via): \(status)")
                    #expect(data == Array(model.memory[start..<(start + gpc.length)]), "step \(step): GPC_READ data")
                } else {
                    #expect(
                        status == -Errno.stale.rawValue,
                        "step \(step): GPC_READ\(via) of an invalidated GPC: \(status)"
                    )
                }
                description = "client \(client) GPC_READ\(via) \(handle)"
            case 34..<42:
                guard let (handle, gpc) = model.gpcs[client].randomElement(using: &random) else { continue }
                let data = Payload.pattern(gpc.length, seed: step)
                let status =
                    try ring.map { try Self.ringGpcWrite($0, handle: handle, data: data) }
                    ?? connection.gpcWrite(handle: handle, data: data).statusAndPayload.status
                touched.append(Self.pages(gpc.gpa, 1))
                if gpc.isValid {
                    #expect(status == 0, "step \(step): GPC_WRITE\(via): \(status)")
                    model.memory.replaceSubrange(Int(gpc.gpa)..<(Int(gpc.gpa) + gpc.length), with: data)
                } else {
                    #expect(
                        status == -Errno.stale.rawValue,
                        "step \(step): GPC_WRITE\(via) of an invalidated GPC: \(status)"
                    )
                }
                description = "client \(client) GPC_WRITE\(via) \(handle)"
            case 42..<50:
                guard let (handle, old) = model.gpcs[client].randomElement(using: &random) else { continue }
                let (gpa, length) = Self.randomWindow(using: &random)
                touched += [Self.pages(old.gpa, 1), Self.pages(gpa, 1)]
                #expect(try connection.gpcRefresh(handle: handle, gpa: gpa, length: UInt32(length)).isSuccess)
                model.gpcs[client][handle] = RegionModel.Gpc(gpa: gpa, length: length, isValid: true)
                description = "client \(client) GPC_REFRESH \(handle) -> 0x\(String(gpa, radix: 16))"
            case 50..<62:
                let (gpa, length) = Self.randomRange(using: &random)
                let data =
                    try ring.map { try Self.ringRead($0, gpa: gpa, length: length) }
                    ?? connection.readBytes(gpa: gpa, length: UInt32(length))
                touched.append(Self.pages(gpa, length))
                #expect(data == Array(model.memory[Int(gpa)..<(Int(gpa) + length)]), "step \(step): READ\(via) data")
                description = "client \(client) READ\(via) 0x\(String(gpa, radix: 16)) len \(length)"
            case 62..<74:
                let (gpa, length) = Self.randomRange(using: &random)
                let data = Payload.pattern(length, seed: step)
                if let ring {
                    try Self.ringWrite(ring, gpa: gpa, data: data)
                } else {
                    try connection.writeBytes(gpa: gpa, data: data)
                }
                touched.append(Self.pages(gpa, length))
                model.memory.replaceSubrange(Int(gpa)..<(Int(gpa) + length), with: data)
                description = "client \(client) WRITE\(via) 0x\(String(gpa, radix: 16)) len \(length)"
            case 74..<88:
                let pages = Self.randomPages(using: &random)
                let shared = Bool.random(using: &random)
                touched.append(pages)
                let reply = try connection.setAttributes(
                    gpa: UInt64(pages.lowerBound) * pageSize,
                    size: UInt64(pages.count) * pageSize,
                    attributes: shared ? 0 : 8
                )
                #expect(reply.isSuccess, "step \(step): SET_ATTRIBUTES: \(reply.outcome)")
                for page in pages where model.isShared[page] != shared {
                    let events = model.invalidate(page..<(page + 1), reason: .attributesChanged)
                    for index in events.indices { expectedEvents[index].formUnion(events[index]) }
                    model.isShared[page] = shared
                }
                description = "client \(client) SET_ATTRIBUTES pages \(pages) \(shared ? "shared" : "private")"
            case 88..<96:
                let pages = Self.randomPages(using: &random)
                #expect(
                    try connection.discard(
                        gpa: UInt64(pages.lowerBound) * pageSize,
                        size: UInt64(pages.count) * pageSize
                    )
                    .isSuccess
                )
                expectedEvents = model.invalidate(pages, reason: .discarded)
                touched.append(pages)
                let bytes = (pages.lowerBound * Int(pageSize))..<(pages.upperBound * Int(pageSize))
                model.memory.withUnsafeMutableBufferPointer { memory in
                    UnsafeMutableBufferPointer(rebasing: memory[bytes]).update(repeating: 0)
                }
                description = "client \(client) DISCARD pages \(pages)"
            default:
                // The client goes away with whatever it holds; a new one takes its place.
                connection.close()
                model.gpcs[client] = [:]
                let remaining = UInt64(model.gpcs.reduce(0) { $0 + $1.count })
                try waitUntil("the closed client's GPCs to be released") {
                    try statistic("gpc_active", of: probe) == remaining
                }
                clients[client] = try daemon.connectWithHello(features: .events)
                rings[client] = try clients[client].ring(entries: 8, dataSize: 1 << 16)
                checkAll = true
                description = "client \(client) reconnects"
            }
            history.append("\(step): \(description)")
            try self.checkEvents(expectedEvents, clients: clients, step: step)
            // A ring keeps the pages of its last entries until its next idle pass, a moment later.
            if ring != nil { try Self.waitForIdleRings(model, probe: probe, touched: touched) }
            for pages in checkAll ? [0..<Self.pageCount] : touched {
                try self.check(pages, model, daemon: daemon, probe: probe, step: step, history: history)
            }
        }
    }

    /// Each client must receive exactly the events the model predicts, in any order.
    private func checkEvents(_ expected: [Set<GpcInvalidatedEvent>], clients: [RawConnection], step: Int) throws {
        for (index, connection) in clients.enumerated() {
            var received = Set(try connection.takeEvents().map { try $0.decodePayload(as: GpcInvalidatedEvent.self) })
            let deadline = Deadline(after: .seconds(5))
            while !expected[index].isSubset(of: received), !deadline.hasPassed {
                let next: (header: FrameHeader, payload: [UInt8])?
                do {
                    next = try connection.receiveFrame(timeout: deadline.remaining)
                } catch let error as GmemTestingError where error.code == .timedOut {
                    break  // Reported below, with what did arrive.
                }
                guard let frame = next else { break }
                #expect(frame.header.flags == .event, "step \(step): client \(index) got \(frame.header)")
                received.insert(try GpcInvalidatedEvent(decoding: frame.payload))
            }
            #expect(received == expected[index], "step \(step): client \(index) events")
            if received != expected[index] {
                throw GmemTestingError.protocolViolation("events diverged from the model")
            }
        }
    }

    /// `pages` of the region: PAGE_STATE and /proc/PID/maps against the model.
    private func check(
        _ pages: Range<Int>,
        _ model: RegionModel,
        daemon: DaemonProcess,
        probe: RawConnection,
        step: Int,
        history: [String]
    ) throws {
        let states = try probe.pageStates(gpa: UInt64(pages.lowerBound) * pageSize, count: UInt32(pages.count))
        let mapped = try daemon.mapsProtections(ofRegionIn: pages)
        let counts = model.refcounts()
        var mismatches: [String] = []
        for page in pages {
            let count = counts[page]
            let accessible = model.isShared[page] || count > 0
            let state = states[page - pages.lowerBound]
            if Int(state.refcount) != count || state.isPrivate == model.isShared[page]
                || state.isAccessible != accessible
                || mapped[page - pages.lowerBound].isAccessible != accessible
            {
                mismatches.append(
                    "page \(page): daemon \(state) maps \(mapped[page - pages.lowerBound]); model count \(count) "
                        + "\(model.isShared[page] ? "shared" : "private")"
                )
            }
        }
        #expect(mismatches.isEmpty, "after step \(step): \(mismatches.prefix(4)); last steps: \(history.suffix(4))")
        if !mismatches.isEmpty { throw GmemTestingError.protocolViolation("region diverged from the model") }
    }

    /// The pages holding `[gpa, gpa + length)`.
    private static func pages(_ gpa: UInt64, _ length: Int) -> Range<Int> {
        Int(gpa / pageSize)..<Int((gpa + UInt64(length) + pageSize - 1) / pageSize)
    }

    /// A GPC window: 1 to 64 bytes within one random page.
    private static func randomWindow(using random: inout SplitMix64) -> (UInt64, Int) {
        let page = UInt64(Int.random(in: 0..<Self.pageCount, using: &random))
        let length = Int.random(in: 1...64, using: &random)
        let offset = UInt64(Int.random(in: 0...(Int(pageSize) - length), using: &random))
        return (page * pageSize + offset, length)
    }

    /// A byte range of up to three pages, often across a chunk boundary.
    private static func randomRange(using random: inout SplitMix64) -> (UInt64, Int) {
        let length = Int.random(in: 1...(3 * Int(pageSize)), using: &random)
        let start: Int
        if Bool.random(using: &random) {
            let boundary =
                Int.random(in: 1..<(Self.pageCount / Self.pagesPerChunk), using: &random) * Self.pagesPerChunk
            start = boundary * Int(pageSize) - Int.random(in: 1...length, using: &random)
        } else {
            start = Int.random(in: 0...(Int(regionSize) - length), using: &random)
        }
        return (UInt64(start), length)
    }

    /// A page range: one page, a few, a whole chunk, two chunks, or a run across a chunk boundary.
    private static func randomPages(using random: inout SplitMix64) -> Range<Int> {
        let chunks = Self.pageCount / Self.pagesPerChunk
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            let page = Int.random(in: 0..<Self.pageCount, using: &random)
            return page..<(page + 1)
        case 1:
            let count = Int.random(in: 2...16, using: &random)
            let start = Int.random(in: 0...(Self.pageCount - count), using: &random)
            return start..<(start + count)
        case 2:
            let chunk = Int.random(in: 0..<chunks, using: &random)
            return (chunk * Self.pagesPerChunk)..<((chunk + 1) * Self.pagesPerChunk)
        case 3:
            let chunk = Int.random(in: 0..<(chunks - 1), using: &random)
            return (chunk * Self.pagesPerChunk)..<((chunk + 2) * Self.pagesPerChunk)
        default:
            let boundary = Int.random(in: 1..<chunks, using: &random) * Self.pagesPerChunk
            return
                (boundary - Int.random(in: 1...8, using: &random))..<(boundary + Int.random(in: 1...8, using: &random))
        }
    }
}
