import GmemCore
import GmemServer
import NIOCore
import NIOEmbedded
import NIOPosix

/// Feeds one fuzz input to gmemd's real request path: the connection handler
/// of `GmemServer.makeConnectionHandler`, in an `EmbeddedChannel`, over a real
/// `GuestMemory` (memfd, PROT_NONE private pages). The stream arrives in the
/// reads the input chooses, so frames are split and coalesced.
///
/// After every read it checks each frame the daemon sent (well-formed header,
/// REPLY or EVENT, status 0 or -1…-4095, replies in request order with the
/// request's opcode and id) and each reply against ``ProtocolModel``. After the
/// channel closes it checks the memory: the invariant holds, every page's
/// count is 0 and no GPC is left active. Then it resets the memory for the
/// next input.
public enum FuzzHarness {
    /// One memory per configuration, created once per process.
    struct Setup: Sendable {
        let memory: GuestMemory
        let folioSize: Int
        let directMap: Bool
    }

    static let setups: [Setup] = {
        func make(size: UInt64, folio: Int, directMap: Bool) -> Setup {
            do {
                let memory = try GuestMemory(
                    GuestMemory.Configuration(size: size, folioSize: folio, directMap: directMap)
                )
                return Setup(memory: memory, folioSize: folio, directMap: directMap)
            } catch {
                fatalError("cannot create the fuzzing memory: \(error)")
            }
        }
        let page = GuestMemory.systemPageSize
        return [
            make(size: 64 << 10, folio: page, directMap: false),
            make(size: 64 << 10, folio: 4 * page, directMap: false),
            make(size: 64 << 10, folio: page, directMap: true),
            make(size: 4 << 20, folio: 64 << 10, directMap: false),
        ]
    }()

    /// Never started: nothing is offloaded (see `offloadThreshold` below). The
    /// handler's default, NIOThreadPool.singleton, would start a perpetual
    /// pool whose queue LeakSanitizer reports as leaked.
    static let threadPool = NIOThreadPool(numberOfThreads: 1)

    /// GPCs per connection in the harness: small, so -ENOSPC is reachable.
    public static let maxCaches = 4
    public static let frameTimeout = TimeAmount.seconds(1)

    /// Runs one input. Returns the violations found; empty means every check held.
    public static func run(_ bytes: UnsafeRawBufferPointer) -> [String] {
        Self.run(FuzzInput(bytes))
    }

    /// Runs an input whose options a test may have changed (for instance a
    /// max_payload that no control byte chooses).
    public static func run(_ input: FuzzInput) -> [String] {
        let setup = Self.setups[input.memoryChoice]
        var session = Session(input: input, setup: setup)
        session.run()
        session.checkQuiescentMemory()
        Self.reset(setup.memory)
        return session.violations
    }

    public static func run(_ bytes: [UInt8]) -> [String] {
        bytes.withUnsafeBytes { Self.run($0) }
    }

    /// Back to the start state: every page private and zero.
    static func reset(_ memory: GuestMemory) {
        let size = memory.geometry.regionSize
        do {
            try memory.setAttributes(at: GuestPhysicalAddress(0), size: size, shared: false)
            try memory.discard(at: GuestPhysicalAddress(0), size: size)
        } catch {
            fatalError("cannot reset the fuzzing memory: \(error)")
        }
    }
}

/// One frame as the daemon sent it.
struct OutputFrame {
    var length: UInt32
    var opcode: UInt16
    var flags: UInt16
    var id: UInt32
    var status: Int32
    var payload: [UInt8]

    static let reply: UInt16 = 1
    static let event: UInt16 = 2

    var summary: String {
        "frame(opcode \(self.opcode), flags \(self.flags), id \(self.id), status \(self.status), \(self.payload.count) payload bytes)"
    }
}

/// The header of a request frame in the input stream.
struct RequestHeader {
    var length: UInt32
    var opcode: UInt16
    var flags: UInt16
    var id: UInt32
    var status: Int32
}

struct Session {
    let input: FuzzInput
    let setup: FuzzHarness.Setup
    var model: ProtocolModel
    var violations: [String] = []

    /// Start of the next request frame not yet answered.
    private var cursor = 0
    /// Bytes of the stream handed to the channel so far.
    private var delivered = 0
    private var output: [UInt8] = []
    private var frames: [OutputFrame] = []
    /// Pages a transient READ or WRITE touched in the current read batch: the
    /// daemon may hold their references until the batch ends.
    private var touchedInBatch: Set<Int> = []

    init(input: FuzzInput, setup: FuzzHarness.Setup) {
        self.input = input
        self.setup = setup
        self.model = ProtocolModel(
            pageSize: setup.memory.geometry.pageSize,
            folioSize: setup.folioSize,
            regionSize: setup.memory.geometry.regionSize,
            directMap: setup.directMap,
            readOnly: input.readOnly,
            // The server raises a smaller max_payload to its floor, so that
            // every fixed reply (HELLO, STATS) fits; HELLO reports the result.
            maxPayload: max(input.maxPayload, ServerConfiguration.minimumMaxPayload),
            maxCaches: FuzzHarness.maxCaches
        )
    }

    mutating func violation(_ message: String) {
        self.violations.append(message)
    }

    // MARK: Driving the channel

    mutating func run() {
        var configuration = ServerConfiguration(socketPath: "/nonexistent/gmemd-fuzz.sock")
        configuration.maxPayload = self.input.maxPayload
        configuration.maxCachesPerConnection = FuzzHarness.maxCaches
        configuration.frameTimeout = FuzzHarness.frameTimeout
        // An EmbeddedEventLoop cannot take completions from a thread pool:
        // every conversion and discard runs inline (the real daemon offloads
        // those over 64 MiB; the fault campaign covers that path).
        configuration.offloadThreshold = .max
        let handler = GmemServer.makeConnectionHandler(
            memory: self.setup.memory,
            configuration: configuration,
            readOnly: self.input.readOnly,
            threadPool: FuzzHarness.threadPool
        )
        let channel = EmbeddedChannel(handler: handler)
        do {
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/nonexistent/gmemd-fuzz.sock")).wait()
        } catch {
            return self.violation("EmbeddedChannel connect failed: \(error)")
        }

        var start = 0
        for (index, size) in self.input.chunkSizes.enumerated() {
            guard channel.isActive else { break }
            var buffer = channel.allocator.buffer(capacity: size)
            buffer.writeBytes(self.input.stream[start..<(start + size)])
            start += size
            self.delivered = start
            self.touchedInBatch = []
            do {
                try channel.writeInbound(buffer)
                // A socket channel ends every read with channelReadComplete, where
                // the daemon flushes and drops the read burst's page references.
                channel.pipeline.fireChannelReadComplete()
            } catch {
                self.violation("the pipeline raised \(error) on read \(index)")
            }
            self.afterRead(channel, label: "read \(index)")
            guard self.violations.isEmpty else { break }

            if self.input.timeoutAfterChunk == index, channel.isActive {
                let partial = self.cursor < self.delivered
                channel.embeddedEventLoop.advanceTime(by: FuzzHarness.frameTimeout + .milliseconds(1))
                if partial {
                    self.model.phase = .closed
                }
                self.afterRead(channel, label: "the frame timeout after read \(index)")
                guard self.violations.isEmpty else { break }
            }
        }

        // The client goes away; the daemon releases everything it held.
        do {
            _ = try channel.finish(acceptAlreadyClosed: true)
        } catch {
            self.violation("closing the channel failed: \(error)")
        }
        channel.embeddedEventLoop.run()
    }

    /// Collects what the channel wrote and matches it against the requests delivered so far.
    mutating func afterRead(_ channel: EmbeddedChannel, label: String) {
        do {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                self.output += buffer.readableBytesView
            }
        } catch {
            return self.violation("reading the daemon's output failed after \(label): \(error)")
        }
        self.parseOutput(label: label)
        guard self.violations.isEmpty else { return }

        while self.model.phase != .closed, self.delivered - self.cursor >= 16 {
            let stream = self.input.stream
            let header = RequestHeader(
                length: stream.u32(self.cursor),
                opcode: stream.u16(self.cursor + 4),
                flags: stream.u16(self.cursor + 6),
                id: stream.u32(self.cursor + 8),
                status: Int32(bitPattern: stream.u32(self.cursor + 12))
            )
            if header.length < 16 || Int(header.length) > 16 + self.model.maxPayload {
                // Rule 1: -EMSGSIZE with the header's opcode and id, then close.
                guard let reply = self.nextReply(for: header) else { return }
                self.expectError(reply, -Errno.EMSGSIZE, "a frame length of \(header.length)")
                self.model.phase = .closed
                break
            }
            guard self.delivered - self.cursor >= Int(header.length) else { break }
            let payload = stream[(self.cursor + 16)..<(self.cursor + Int(header.length))]
            self.cursor += Int(header.length)
            guard let reply = self.nextReply(for: header) else { return }
            self.check(header, payload, reply)
            guard self.violations.isEmpty else { return }
        }
        if let extra = self.frames.first {
            return self.violation("after \(label): a frame no request explains: \(extra.summary)")
        }
        let shouldBeOpen = self.model.phase != .closed
        if channel.isActive != shouldBeOpen {
            self.violation(
                "after \(label): the connection is \(channel.isActive ? "open" : "closed"), but the protocol says it \(shouldBeOpen ? "stays open" : "closes")"
            )
        }
    }

    /// Splits the output into frames, checking each header. A frame cut short is a violation.
    mutating func parseOutput(label: String) {
        var offset = 0
        while self.output.count - offset >= 16 {
            let length = self.output.u32(offset)
            guard length >= 16, Int(length) <= 16 + self.model.maxPayload else {
                return self.violation("after \(label): the daemon sent a frame of length \(length)")
            }
            guard self.output.count - offset >= Int(length) else { break }
            let frame = OutputFrame(
                length: length,
                opcode: self.output.u16(offset + 4),
                flags: self.output.u16(offset + 6),
                id: self.output.u32(offset + 8),
                status: Int32(bitPattern: self.output.u32(offset + 12)),
                payload: Array(self.output[(offset + 16)..<(offset + Int(length))])
            )
            guard frame.flags == OutputFrame.reply || frame.flags == OutputFrame.event else {
                return self.violation(
                    "after \(label): flags \(frame.flags) are neither REPLY nor EVENT: \(frame.summary)"
                )
            }
            guard frame.status == 0 || (-4095 ... -1).contains(frame.status) else {
                return self.violation(
                    "after \(label): status \(frame.status) is neither 0 nor a negative errno: \(frame.summary)"
                )
            }
            self.frames.append(frame)
            offset += Int(length)
        }
        if offset < self.output.count {
            return self.violation(
                "after \(label): \(self.output.count - offset) bytes of a frame cut short (writes must be whole frames)"
            )
        }
        self.output = []
    }

    /// The next reply, which must answer `header`; the events before it are left for ``check``.
    mutating func nextReply(for header: RequestHeader) -> OutputFrame? {
        guard let index = self.frames.firstIndex(where: { $0.flags == OutputFrame.reply }) else {
            self.violation("no reply to request opcode \(header.opcode) id \(header.id) (length \(header.length))")
            return nil
        }
        let reply = self.frames[index]
        guard reply.opcode == header.opcode, reply.id == header.id else {
            self.violation(
                "replies out of order: expected opcode \(header.opcode) id \(header.id), got \(reply.summary)"
            )
            return nil
        }
        return reply
    }

    /// The events sent just before the reply about to be consumed, and that reply, removed.
    mutating func takeEventsAndReply() -> [OutputFrame] {
        let index = self.frames.firstIndex(where: { $0.flags == OutputFrame.reply })!
        let events = Array(self.frames[..<index])
        self.frames.removeFirst(index + 1)
        return events
    }

    // MARK: Checking replies

    mutating func expectError(_ reply: OutputFrame, _ status: Int32, _ why: @autoclosure () -> String) {
        let events = self.takeEventsAndReply()
        if !events.isEmpty {
            self.violation("events before an error reply: \(events.map(\.summary))")
        }
        if reply.status != status {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id) (\(why())): expected status \(status), got \(reply.status)"
            )
        } else if !reply.payload.isEmpty {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id): an error reply with a \(reply.payload.count)-byte payload"
            )
        }
    }

    /// Checks a success reply's status and returns its events, which must all be GPC_INVALIDATED.
    mutating func expectSuccess(
        _ reply: OutputFrame,
        _ why: @autoclosure () -> String,
        payloadCount: Int?
    ) -> [OutputFrame] {
        let events = self.takeEventsAndReply()
        if reply.status != 0 {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id) (\(why())): expected success, got status \(reply.status)"
            )
        } else if let payloadCount, reply.payload.count != payloadCount {
            self.violation(
                "opcode \(reply.opcode) id \(reply.id): a \(reply.payload.count)-byte payload, expected \(payloadCount)"
            )
        }
        return events
    }

    mutating func expectNoEvents(_ events: [OutputFrame], _ what: String) {
        if !events.isEmpty { self.violation("events before the reply to \(what): \(events.map(\.summary))") }
    }

    /// The events before a conversion's or discard's reply name exactly the GPCs it invalidated.
    mutating func expectInvalidations(_ events: [OutputFrame], handles: Set<UInt64>, reason: UInt32) {
        var seen: Set<UInt64> = []
        for event in events {
            guard event.opcode == 0x80, event.id == 0, event.status == 0, event.payload.count == 16 else {
                return self.violation("a malformed event: \(event.summary)")
            }
            let handle = event.payload.u64(0)
            guard event.payload.u32(8) == reason, event.payload.u32(12) == 0 else {
                return self.violation(
                    "GPC_INVALIDATED for handle \(handle) with reason \(event.payload.u32(8)), reserved \(event.payload.u32(12)); expected reason \(reason)"
                )
            }
            guard seen.insert(handle).inserted else {
                return self.violation("two GPC_INVALIDATED events for handle \(handle)")
            }
        }
        let expected = self.model.eventsGranted ? handles : []
        if seen != expected {
            self.violation(
                "GPC_INVALIDATED events for \(seen.sorted()), expected \(expected.sorted()) (events granted: \(self.model.eventsGranted))"
            )
        }
    }

    mutating func check(_ header: RequestHeader, _ payload: ArraySlice<UInt8>, _ reply: OutputFrame) {
        switch self.model.phase {
        case .closed:
            self.violation("a reply after the connection should have closed: \(reply.summary)")
        case .awaitingHello:
            self.checkFirst(header, payload, reply)
        case .ready:
            self.checkReady(header, payload, reply)
        }
    }

    /// Section 4's HELLO sequence.
    mutating func checkFirst(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        guard header.opcode == 1 else {
            self.expectError(reply, -Errno.EPROTO, "a request before HELLO")
            self.model.phase = .closed
            return
        }
        guard q.count == 8, header.flags == 0, header.status == 0 else {
            return self.expectError(reply, -Errno.EINVAL, "a malformed HELLO")
        }
        guard q.u32(0) == 1 else {
            let events = self.takeEventsAndReply()
            self.expectNoEvents(events, "HELLO")
            if reply.status != -Errno.EPROTONOSUPPORT || reply.payload != le32(1) {
                self.violation(
                    "HELLO version \(q.u32(0)): expected -EPROTONOSUPPORT with {u32 1}, got \(reply.summary) \(reply.payload)"
                )
            }
            self.model.phase = .closed
            return
        }
        let events = self.expectSuccess(reply, "HELLO", payloadCount: 48)
        self.expectNoEvents(events, "HELLO")
        guard self.violations.isEmpty else { return }
        let p = reply.payload
        let requested = q.u32(4)
        let expectedFlags: UInt32 = (self.model.directMap ? 0 : 1) | (self.model.readOnly ? 4 : 0)
        let fields: [(String, UInt64, UInt64)] = [
            ("version", UInt64(p.u32(0)), 1),
            ("features", UInt64(p.u32(4)), UInt64(requested & 1)),
            ("page_size", UInt64(p.u32(8)), UInt64(self.model.pageSize)),
            ("folio_size", UInt64(p.u32(12)), UInt64(self.model.folioSize)),
            ("region_size", p.u64(16), self.model.regionSize),
            ("max_payload", UInt64(p.u32(32)), UInt64(self.model.maxPayload)),
            ("max_gpcs", UInt64(p.u32(36)), UInt64(self.model.maxCaches)),
            ("region_flags", UInt64(p.u32(40)), UInt64(expectedFlags)),
            ("reserved", UInt64(p.u32(44)), 0),
        ]
        for (name, actual, expected) in fields where actual != expected {
            self.violation("HELLO reply: \(name) is \(actual), expected \(expected)")
        }
        self.model.eventsGranted = requested & 1 != 0
        self.model.phase = .ready
    }

    mutating func checkReady(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        let model = self.model
        let einval = -Errno.EINVAL
        if header.opcode == 1 { return self.expectError(reply, -Errno.EALREADY, "a second HELLO") }
        guard (2...17).contains(header.opcode) else {
            return self.expectError(reply, -Errno.EOPNOTSUPP, "an unknown opcode")
        }
        guard header.flags == 0, header.status == 0 else {
            return self.expectError(reply, einval, "request flags or status")
        }
        if header.opcode >= 14 { return self.checkDeviceOp(header, q, reply) }
        let modifying = [4, 8, 10, 11].contains(header.opcode)
        /// Rule 4 for the fixed-size payloads, then rule 5.
        func shapeError(size: Int?, zeroFields: [Int] = []) -> (Int32, String)? {
            if let size, q.count != size { return (einval, "payload of \(q.count) bytes, expected \(size)") }
            for offset in zeroFields where q.u32(offset) != 0 { return (einval, "a non-zero flags or reserved field") }
            if modifying && model.readOnly { return (-Errno.EPERM, "read-only connection") }
            return nil
        }

        switch header.opcode {
        case 2:  // PING
            let events = self.expectSuccess(reply, "PING", payloadCount: q.count)
            self.expectNoEvents(events, "PING")
            if self.violations.isEmpty, reply.payload != Array(q) { self.violation("PING echoed different bytes") }

        case 3:  // READ
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let length = q.u32(8)
            guard Int(length) <= model.maxPayload else {
                return self.expectError(reply, -Errno.EMSGSIZE, "READ len \(length)")
            }
            guard model.inside(gpa, UInt64(length)) else {
                return self.expectError(reply, -Errno.EFAULT, "READ outside")
            }
            let events = self.expectSuccess(
                reply,
                "READ 0x\(String(gpa, radix: 16))+\(length)",
                payloadCount: Int(length)
            )
            self.expectNoEvents(events, "READ")
            guard self.violations.isEmpty else { return }
            if reply.payload != model.bytes(at: Int(gpa), count: Int(length)) {
                self.violation(
                    "READ 0x\(String(gpa, radix: 16))+\(length) returned bytes that differ from the acknowledged writes"
                )
            }
            self.touch(gpa, Int(length))

        case 4:  // WRITE
            let length = q.count >= 16 ? Int(q.u32(8)) : -1
            if let (status, why) = shapeError(size: q.count >= 16 ? 16 + length : 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            guard model.inside(gpa, UInt64(length)) else {
                return self.expectError(reply, -Errno.EFAULT, "WRITE outside")
            }
            let events = self.expectSuccess(reply, "WRITE 0x\(String(gpa, radix: 16))+\(length)", payloadCount: 0)
            self.expectNoEvents(events, "WRITE")
            self.model.store(q.dropFirst(16), at: Int(gpa))
            self.touch(gpa, length)

        case 5:  // GPC_ACTIVATE
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let length = q.u32(8)
            if let status = model.cacheWindowError(gpa, length) { return self.expectError(reply, status, "GPC window") }
            guard model.caches.count < model.maxCaches else {
                return self.expectError(reply, -Errno.ENOSPC, "max_gpcs")
            }
            let events = self.expectSuccess(reply, "GPC_ACTIVATE", payloadCount: 8)
            self.expectNoEvents(events, "GPC_ACTIVATE")
            guard self.violations.isEmpty else { return }
            let handle = reply.payload.u64(0)
            guard handle != 0, handle > model.lastHandle, model.caches[handle] == nil else {
                return self.violation(
                    "GPC_ACTIVATE returned handle \(handle) (0, or reused; last was \(model.lastHandle))"
                )
            }
            self.model.lastHandle = handle
            self.model.caches[handle] = ProtocolModel.Cache(
                page: Int(gpa) / model.pageSize,
                offset: Int(gpa) % model.pageSize,
                length: Int(length),
                valid: true
            )

        case 6:  // GPC_DEACTIVATE
            if let (status, why) = shapeError(size: 8) { return self.expectError(reply, status, why) }
            let handle = q.u64(0)
            guard model.caches[handle] != nil else { return self.expectError(reply, -Errno.ENOENT, "unknown handle") }
            let events = self.expectSuccess(reply, "GPC_DEACTIVATE", payloadCount: 0)
            self.expectNoEvents(events, "GPC_DEACTIVATE")
            self.model.caches[handle] = nil

        case 7, 8:  // GPC_READ, GPC_WRITE
            let isWrite = header.opcode == 8
            let length = q.count >= 16 ? Int(q.u32(12)) : -1
            if let (status, why) = shapeError(size: isWrite ? (q.count >= 16 ? 16 + length : 16) : 16) {
                return self.expectError(reply, status, why)
            }
            if !isWrite && length > model.maxPayload { return self.expectError(reply, -Errno.EMSGSIZE, "GPC_READ len") }
            let handle = q.u64(0)
            let offset = Int(q.u32(8))
            guard let cache = model.caches[handle] else {
                return self.expectError(reply, -Errno.ENOENT, "unknown handle")
            }
            guard offset + length <= cache.length else {
                return self.expectError(reply, einval, "beyond the GPC's window")
            }
            guard cache.valid else { return self.expectError(reply, -Errno.ESTALE, "an invalidated GPC") }
            let address = cache.page * model.pageSize + cache.offset + offset
            let events = self.expectSuccess(
                reply,
                isWrite ? "GPC_WRITE" : "GPC_READ",
                payloadCount: isWrite ? 0 : length
            )
            self.expectNoEvents(events, "GPC access")
            guard self.violations.isEmpty else { return }
            if isWrite {
                self.model.store(q.dropFirst(16), at: address)
            } else if reply.payload != model.bytes(at: address, count: length) {
                self.violation("GPC_READ handle \(handle) returned bytes that differ from the acknowledged writes")
            }

        case 9:  // GPC_REFRESH
            if let (status, why) = shapeError(size: 24, zeroFields: [20]) {
                return self.expectError(reply, status, why)
            }
            let handle = q.u64(0)
            let gpa = q.u64(8)
            let length = q.u32(16)
            if let status = model.cacheWindowError(gpa, length) { return self.expectError(reply, status, "GPC window") }
            guard model.caches[handle] != nil else { return self.expectError(reply, -Errno.ENOENT, "unknown handle") }
            let events = self.expectSuccess(reply, "GPC_REFRESH", payloadCount: 0)
            self.expectNoEvents(events, "GPC_REFRESH")
            self.model.caches[handle] = ProtocolModel.Cache(
                page: Int(gpa) / model.pageSize,
                offset: Int(gpa) % model.pageSize,
                length: Int(length),
                valid: true
            )

        case 10:  // SET_ATTRIBUTES
            // Rule 4 (payload size, attribute bits) comes before rule 5 (read-only).
            guard q.count == 24 else {
                return self.expectError(reply, einval, "payload of \(q.count) bytes, expected 24")
            }
            let gpa = q.u64(0)
            let size = q.u64(8)
            let attributes = q.u64(16)
            guard attributes & ~8 == 0 else { return self.expectError(reply, einval, "attribute bits") }
            if model.readOnly { return self.expectError(reply, -Errno.EPERM, "read-only connection") }
            guard model.aligned(gpa), model.aligned(size), size > 0 else {
                return self.expectError(reply, einval, "alignment or size 0")
            }
            guard model.inside(gpa, size) else {
                return self.expectError(reply, -Errno.EFAULT, "SET_ATTRIBUTES outside")
            }
            let events = self.expectSuccess(reply, "SET_ATTRIBUTES", payloadCount: 0)
            guard self.violations.isEmpty else { return }
            let first = Int(gpa) / model.pageSize
            let range = first..<(first + Int(size) / model.pageSize)
            let shared = attributes == 0
            let changed = Set(range.filter { model.sharedPages.contains($0) != shared })
            for page in changed {
                if shared { self.model.sharedPages.insert(page) } else { self.model.sharedPages.remove(page) }
            }
            let handles = self.model.invalidate(where: { changed.contains($0) })
            self.expectInvalidations(events, handles: handles, reason: 1)

        case 11:  // DISCARD
            if let (status, why) = shapeError(size: 16) { return self.expectError(reply, status, why) }
            let gpa = q.u64(0)
            let size = q.u64(8)
            guard model.aligned(gpa), model.aligned(size), size > 0 else {
                return self.expectError(reply, einval, "alignment or size 0")
            }
            guard model.inside(gpa, size) else { return self.expectError(reply, -Errno.EFAULT, "DISCARD outside") }
            let events = self.expectSuccess(reply, "DISCARD", payloadCount: 0)
            guard self.violations.isEmpty else { return }
            let first = Int(gpa) / model.pageSize
            let range = first..<(first + Int(size) / model.pageSize)
            for page in range { self.model.pages[page] = nil }
            let handles = self.model.invalidate(where: { range.contains($0) })
            self.expectInvalidations(events, handles: handles, reason: 2)

        case 12:  // STATS
            if let (status, why) = shapeError(size: 0) { return self.expectError(reply, status, why) }
            let events = self.expectSuccess(reply, "STATS", payloadCount: nil)
            self.expectNoEvents(events, "STATS")
            guard self.violations.isEmpty else { return }
            self.checkStats(reply.payload)

        case 13:  // PAGE_STATE
            if let (status, why) = shapeError(size: 16, zeroFields: [12]) {
                return self.expectError(reply, status, why)
            }
            let gpa = q.u64(0)
            let count = Int(q.u32(8))
            guard model.aligned(gpa) else { return self.expectError(reply, einval, "PAGE_STATE alignment") }
            guard count * 4 <= model.maxPayload else {
                return self.expectError(reply, -Errno.EMSGSIZE, "npages × 4 > max_payload")
            }
            guard model.inside(gpa, UInt64(count) * UInt64(model.pageSize)) else {
                return self.expectError(reply, -Errno.EFAULT, "PAGE_STATE outside")
            }
            let events = self.expectSuccess(reply, "PAGE_STATE", payloadCount: 4 * count)
            self.expectNoEvents(events, "PAGE_STATE")
            guard self.violations.isEmpty else { return }
            self.checkPageStates(reply.payload, firstPage: Int(gpa) / model.pageSize)

        default:
            fatalError("unreachable")
        }
    }

    mutating func touch(_ gpa: UInt64, _ length: Int) {
        guard length > 0 else { return }
        let first = Int(gpa) / self.model.pageSize
        let last = (Int(gpa) + length - 1) / self.model.pageSize
        self.touchedInBatch.formUnion(first...last)
    }

    mutating func checkPageStates(_ payload: [UInt8], firstPage: Int) {
        for index in 0..<(payload.count / 4) {
            let page = firstPage + index
            let refcount = Int(payload.u16(4 * index))
            let state = payload[4 * index + 2]
            let isPrivate = state & 1 != 0
            let isAccessible = state & 2 != 0
            let expectedCount = min(self.model.references(onPage: page), 65535)
            let expectedPrivate = !self.model.sharedPages.contains(page)
            var problems: [String] = []
            if state & ~3 != 0 || payload[4 * index + 3] != 0 { problems.append("reserved bits set") }
            if isPrivate != expectedPrivate { problems.append("PRIVATE is \(isPrivate)") }
            // Transient accesses of this batch may still hold a reference.
            if self.touchedInBatch.contains(page) ? refcount < expectedCount : refcount != expectedCount {
                problems.append("refcount \(refcount), but \(expectedCount) valid GPCs")
            }
            let shouldBeAccessible = self.model.directMap || !isPrivate || refcount > 0
            if isAccessible != shouldBeAccessible {
                problems.append("ACCESSIBLE is \(isAccessible): the invariant breaks")
            }
            if !problems.isEmpty {
                return self.violation("PAGE_STATE of page \(page): \(problems.joined(separator: "; "))")
            }
        }
    }

    mutating func checkStats(_ payload: [UInt8]) {
        var offset = 0
        var values: [String: UInt64] = [:]
        while offset < payload.count {
            let nameLength = Int(payload[offset])
            guard nameLength >= 1, offset + 1 + nameLength + 8 <= payload.count else {
                return self.violation("STATS: an entry at offset \(offset) runs past the payload")
            }
            let nameBytes = payload[(offset + 1)..<(offset + 1 + nameLength)]
            guard nameBytes.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                return self.violation("STATS: a name with bytes outside 0x21…0x7e")
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard values[name] == nil else { return self.violation("STATS: \(name) appears twice") }
            values[name] = payload.u64(offset + 1 + nameLength)
            offset += 1 + nameLength + 8
        }
        let required = [
            "reads", "writes", "bytes_read", "bytes_written", "restores", "zaps", "protect_calls", "protect_failures",
            "gpc_activations", "gpc_active", "gpc_invalidations", "connections", "connections_total", "errors",
        ]
        for name in required where values[name] == nil { self.violation("STATS lacks \(name)") }
        // This connection is the memory's only user: every active GPC is its own.
        if let active = values["gpc_active"], active != UInt64(self.model.caches.count) {
            self.violation("STATS gpc_active is \(active), but the connection has \(self.model.caches.count) GPCs")
        }
    }

    // MARK: After the connection closed

    mutating func checkQuiescentMemory() {
        let memory = self.setup.memory
        let violations = memory.invariantViolations()
        if !violations.isEmpty {
            self.violation(
                "the invariant breaks after close: \(violations.prefix(4).map { "page \($0.page): \($0.state)" })"
            )
        }
        do {
            let states = try memory.pageStates(
                at: GuestPhysicalAddress(0),
                pageCount: Int(memory.geometry.regionSize) / memory.geometry.pageSize
            )
            if let (page, state) = states.enumerated().first(where: { $0.element.count != 0 }) {
                self.violation("page \(page) keeps a reference after the connection closed: \(state)")
            }
        } catch {
            self.violation("pageStates failed: \(error)")
        }
        let active = memory.statistics.cachesActive
        if active != 0 { self.violation("\(active) GPCs still active after the connection closed") }
    }
}
