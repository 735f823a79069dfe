import Foundation
import GmemProtocol
import Testing

/// The golden frames of `proto/vectors/frames.txt`, decoded and re-encoded in both directions.
@Suite("Golden frames")
struct GoldenVectorTests {
    /// What each request vector must decode to, written from PROTOCOL.md rather than from the encoder.
    static let expectedRequests: [String: OwnedRequest] = [
        "request.hello": .hello(version: 1, features: 1),
        "request.ping": .ping(Array("gmemd".utf8)),
        "request.read": .read(gpa: 0x1000, length: 16),
        "request.write": .write(gpa: 0x2000, data: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]),
        "request.gpc_activate": .gpcActivate(gpa: 0x3000, length: 64),
        "request.gpc_deactivate": .gpcDeactivate(handle: 1),
        "request.gpc_read": .gpcRead(handle: 1, offset: 8, length: 4),
        "request.gpc_write": .gpcWrite(handle: 1, offset: 0, data: [1, 2, 3, 4]),
        "request.gpc_refresh": .gpcRefresh(handle: 1, gpa: 0x5000, length: 64),
        "request.set_attributes": .setAttributes(gpa: 0x20_0000, size: 0x20_0000, attributes: 8),
        "request.discard": .discard(gpa: 0x40_0000, size: 0x1000),
        "request.stats": .stats,
        "request.page_state": .pageState(gpa: 0x20_0000, pageCount: 3),
        "request.hello_version_2": .hello(version: 2, features: 0),
        "request.read_before_hello": .read(gpa: 0, length: 8),
        "request.write_partial": .write(gpa: 0x1ffc, data: [0, 1, 2, 3, 4, 5, 6, 7]),
        "request.hello_device_ops": .hello(version: 1, features: 3),
        "request.readv": .readv(segments: [WireSegment(gpa: 0x1000, length: 4), WireSegment(gpa: 0x3000, length: 2)]),
        "request.writev": .writev(
            segments: [WireSegment(gpa: 0x2000, length: 2), WireSegment(gpa: 0x4000, length: 3)],
            data: [0x11, 0x22, 0x33, 0x44, 0x55]
        ),
        "request.atomic": .atomic(gpa: 0x6000, AtomicArguments(op: .fetchAdd, width: 8, operand: 1)),
        "request.gpc_atomic": .gpcAtomic(
            handle: 1,
            offset: 8,
            AtomicArguments(op: .compareExchange, width: 4, operand: 7, expected: 5)
        ),
        "request.ring_setup": .ringSetup(entries: 64, dataSize: 0x10_0000),
        "request.ring_close": .ringClose(ringID: 1),
        "request.map_region": .mapRegion,
        "request.writev_partial": .writev(
            segments: [WireSegment(gpa: 0x1000, length: 4), WireSegment(gpa: 0x8000, length: 4)],
            data: [0, 1, 2, 3, 4, 5, 6, 7]
        ),
    ]

    @Test("the vectors file parses and covers every opcode")
    func loading() throws {
        let frames = try GoldenVectors.load()
        #expect(frames == GoldenVectors.all)
        #expect(Set(frames.map(\.name)).count == frames.count)
        for opcode in Opcode.allRequests {
            let name = String(describing: opcode).lowercased()
            #expect(GoldenVectors.frame(named: "request.\(name)") != nil, "no request vector for \(opcode)")
            #expect(GoldenVectors.frame(named: "reply.\(name)") != nil, "no reply vector for \(opcode)")
        }
        #expect(GoldenVectors.frame(named: "event.gpc_invalidated") != nil)
        #expect(Set(frames.map(\.kind)) == ["request", "reply", "invalid", "event"])
        #expect(Set(GoldenVectors.frames(kind: "request").map(\.name)) == Set(Self.expectedRequests.keys))
    }

    @Test(
        "request vectors decode to their fields and re-encode byte for byte",
        arguments: GoldenVectors.frames(kind: "request")
    )
    func requestRoundTrip(frame: GoldenFrame) throws {
        let (header, request) = try decodeRequestFrame(frame.bytes)
        #expect(request == Self.expectedRequests[frame.name])
        #expect(header.flags == [])
        #expect(header.status == 0)
        #expect(Int(header.length) == frame.bytes.count)
        let encoded = try request.encoded(id: header.id)
        #expect(hexString(encoded) == hexString(frame.bytes))
    }

    @Test(
        "reply and event vectors decode and re-encode byte for byte",
        arguments: GoldenVectors.all.filter { $0.kind == "reply" || $0.kind == "event" }
    )
    func serverFrameRoundTrip(frame: GoldenFrame) throws {
        var decoder = FrameDecoder()
        #expect(decoder.decodeNext(frame.bytes) == .frame(try #require(headerOf(frame.bytes))))
        let reply = try ReplyFrame(decoding: frame.bytes)
        var encoded: [UInt8] = []
        reply.encode(into: &encoded)
        #expect(encoded == frame.bytes)
        #expect(reply.isEvent == (frame.kind == "event"))
    }

    @Test("every reply echoes the opcode and id of its request", arguments: GoldenVectors.frames(kind: "reply"))
    func replyPairsWithRequest(reply: GoldenFrame) throws {
        let request = try #require(
            GoldenVectors.frame(named: "request.\(reply.suffix)")
                ?? GoldenVectors.frame(named: "invalid.\(reply.suffix)"),
            "no request for \(reply.name)"
        )
        let requestHeader = try #require(headerOf(request.bytes))
        let replyHeader = try #require(headerOf(reply.bytes))
        #expect(replyHeader.opcode == requestHeader.opcode)
        #expect(replyHeader.id == requestHeader.id)
        #expect(replyHeader.flags == .reply)
    }

    @Test(
        "malformed request vectors are refused with the status of their reply",
        arguments: GoldenVectors.frames(kind: "invalid")
    )
    func invalidRequests(frame: GoldenFrame) throws {
        let reply = try #require(GoldenVectors.frame(named: "reply.\(frame.suffix)"))
        let expected = try #require(Errno(wireStatus: try ReplyFrame(decoding: reply.bytes).header.status))

        var decoder = FrameDecoder()
        let header: FrameHeader
        let errno: Errno
        switch decoder.decodeNext(frame.bytes) {
        case .badLength(let badHeader):
            header = badHeader
            errno = .messageTooLong
        case .frame(let goodHeader):
            header = goodHeader
            errno = try #require(throws: Errno.self) { try decodeRequestFrame(frame.bytes) }
        case .needMoreBytes(let total):
            Issue.record("\(frame.name) is incomplete: \(total) bytes needed")
            return
        }
        #expect(errno == expected)

        var encoded: [UInt8] = []
        Reply.encodeError(replyingTo: header, errno, into: &encoded)
        #expect(hexString(encoded) == hexString(reply.bytes))
    }

    @Test("typed success replies encode to the golden bytes")
    func typedReplies() throws {
        func check(_ name: String, _ encode: (FrameHeader, inout [UInt8]) throws -> Void) throws {
            let request = try #require(GoldenVectors.frame(named: "request.\(name)"))
            let reply = try #require(GoldenVectors.frame(named: "reply.\(name)"))
            let header = try #require(headerOf(request.bytes))
            var encoded: [UInt8] = []
            try encode(header, &encoded)
            #expect(hexString(encoded) == hexString(reply.bytes), "reply.\(name)")
        }
        let hello = HelloReply(
            features: .events,
            pageSize: 4096,
            folioSize: 0x20_0000,
            regionSize: 0x4000_0000,
            regionID: 0x0123_4567_89ab_cdef,
            maxPayload: 1 << 20,
            maxGpcs: 64,
            regionFlags: [.noDirectMap, .secretmem]
        )
        try check("hello") { Reply.encode(replyingTo: $0, payload: hello, into: &$1) }
        var deviceOps = hello
        deviceOps.features = [.events, .deviceOps]
        deviceOps.maxSegments = 64
        try check("hello_device_ops") { Reply.encode(replyingTo: $0, payload: deviceOps, into: &$1) }
        try check("readv") {
            Reply.encode(replyingTo: $0, payload: [0xaa, 0xbb, 0xcc, 0xdd, 1, 2] as [UInt8], into: &$1)
        }
        try check("atomic") { Reply.encode(replyingTo: $0, payload: AtomicReply(value: 41), into: &$1) }
        try check("gpc_atomic") { Reply.encode(replyingTo: $0, payload: AtomicReply(value: 5), into: &$1) }
        try check("ring_setup") {
            let reply = RingSetupReply(ringID: 1, entries: 64, dataSize: 0x10_0000, mmapSize: 0x10_3000)
            Reply.encode(replyingTo: $0, payload: reply, into: &$1)
        }
        try check("map_region") {
            Reply.encode(
                replyingTo: $0,
                payload: MapRegionReply(mmapSize: 1 << 30, regionID: 0x0123_4567_89ab_cdef),
                into: &$1
            )
        }
        try check("writev_partial") {
            let progress = VectorProgressPayload(bytesCompleted: 4, segment: 1, segmentBytes: 0)
            Reply.encodeVectorPartialFailure(replyingTo: $0, .noMemory, progress: progress, into: &$1)
        }
        try check("ping") { Reply.encode(replyingTo: $0, payload: Array("gmemd".utf8), into: &$1) }
        try check("read") { Reply.encode(replyingTo: $0, payload: Array(0x10...0x1f) as [UInt8], into: &$1) }
        try check("gpc_activate") { Reply.encode(replyingTo: $0, payload: GpcActivateReply(handle: 1), into: &$1) }
        try check("gpc_read") { Reply.encode(replyingTo: $0, payload: [0xaa, 0xbb, 0xcc, 0xdd] as [UInt8], into: &$1) }
        for name in [
            "write", "writev", "ring_close", "gpc_deactivate", "gpc_write", "gpc_refresh", "set_attributes", "discard",
        ] {
            try check(name) { Reply.encodeEmpty(replyingTo: $0, into: &$1) }
        }
        let stats = try StatsReply([
            "reads": 3, "writes": 1, "bytes_read": 20, "bytes_written": 12, "restores": 2, "zaps": 1,
            "protect_calls": 4, "protect_failures": 0, "gpc_activations": 1, "gpc_active": 0, "gpc_invalidations": 1,
            "connections": 1, "connections_total": 5, "errors": 0,
        ])
        try check("stats") { Reply.encode(replyingTo: $0, payload: stats, into: &$1) }
        let pages = PageStateReply(entries: [
            PageStateEntry(refcount: 2, isPrivate: false, isAccessible: true),
            PageStateEntry(refcount: 0, isPrivate: true, isAccessible: false),
            PageStateEntry(saturatingRefcount: 100_000, isPrivate: false, isAccessible: true),
        ])
        try check("page_state") { Reply.encode(replyingTo: $0, payload: pages, into: &$1) }
        try check("hello_version_2") { Reply.encodeVersionNotSupported(replyingTo: $0, into: &$1) }
        try check("read_before_hello") { Reply.encodeError(replyingTo: $0, .protocolError, into: &$1) }
        try check("write_partial") {
            Reply.encodePartialFailure(replyingTo: $0, .ioError, bytesCompleted: 4, into: &$1)
        }

        var event: [UInt8] = []
        Reply.encodeEvent(GpcInvalidatedEvent(handle: 1, reason: .discarded), into: &event)
        #expect(event == GoldenVectors.frame(named: "event.gpc_invalidated")?.bytes)
        var ringFailed: [UInt8] = []
        RingFailedEvent(ringID: 1, status: -Errno.protocolError.rawValue).encodeFrame(into: &ringFailed)
        #expect(ringFailed == GoldenVectors.frame(named: "event.ring_failed")?.bytes)
    }

    @Test("typed success replies decode from the golden bytes")
    func typedReplyDecoding() throws {
        func reply(_ name: String) throws -> ReplyFrame {
            try ReplyFrame(decoding: try #require(GoldenVectors.frame(named: "reply.\(name)")).bytes)
        }
        let hello = try reply("hello").decodePayload(as: HelloReply.self)
        #expect(hello.version == 1)
        #expect(hello.features == .events)
        #expect(hello.pageSize == 4096)
        #expect(hello.folioSize == 2 << 20)
        #expect(hello.regionSize == 1 << 30)
        #expect(hello.regionID == 0x0123_4567_89ab_cdef)
        #expect(hello.maxPayload == 1 << 20)
        #expect(hello.maxGpcs == 64)
        #expect(hello.regionFlags == [.noDirectMap, .secretmem])

        let stats = try reply("stats").decodePayload(as: StatsReply.self)
        #expect(stats.entries.map(\.name) == StatsReply.requiredNames)
        #expect(stats["bytes_read"] == 20)
        #expect(stats["connections_total"] == 5)
        #expect(stats["no_such_counter"] == nil)

        let pages = try reply("page_state").decodePayload(as: PageStateReply.self)
        #expect(pages.entries.map(\.refcount) == [2, 0, 0xffff])
        #expect(pages.entries.map(\.isPrivate) == [false, true, false])
        #expect(pages.entries.map(\.isAccessible) == [true, false, true])

        #expect(try reply("gpc_activate").decodePayload(as: GpcActivateReply.self).handle == 1)
        #expect(try reply("read").payload == Array(0x10...0x1f))
        #expect(try reply("write").isSuccess)

        let mismatch = try reply("hello_version_2")
        #expect(mismatch.errno == .protocolNotSupported)
        #expect(mismatch.highestSupportedVersion == 1)
        #expect(mismatch.bytesCompleted == nil)

        let partial = try reply("write_partial")
        #expect(partial.errno == .ioError)
        #expect(partial.bytesCompleted == 4)
        #expect(partial.highestSupportedVersion == nil)

        #expect(try reply("read_before_hello").errno == .protocolError)

        let deviceOps = try reply("hello_device_ops").decodePayload(as: HelloReply.self)
        #expect(deviceOps.features == [.events, .deviceOps] && deviceOps.maxSegments == 64)
        #expect(hello.maxSegments == 0)
        #expect(try reply("atomic").decodePayload(as: AtomicReply.self).value == 41)
        #expect(try reply("gpc_atomic").decodePayload(as: AtomicReply.self).value == 5)
        let vectorPartial = try reply("writev_partial")
        #expect(vectorPartial.errno == .noMemory)
        #expect(vectorPartial.vectorProgress == VectorProgressPayload(bytesCompleted: 4, segment: 1, segmentBytes: 0))
        #expect(vectorPartial.bytesCompleted == 4)
        #expect(partial.vectorProgress == nil)

        let event = try ReplyFrame(decoding: try #require(GoldenVectors.frame(named: "event.gpc_invalidated")).bytes)
        #expect(event.isEvent)
        #expect(event.header.opcode == .gpcInvalidated)
        #expect(
            try event.decodePayload(as: GpcInvalidatedEvent.self) == GpcInvalidatedEvent(handle: 1, reason: .discarded)
        )
    }
}

/// PROTOCOL.md must show exactly the bytes of the vectors file, and its errno table must match ``Errno``.
@Suite("PROTOCOL.md stays in sync")
struct ProtocolDocumentTests {
    @Test("PROTOCOL.md shows every golden frame, byte for byte, and no other")
    func framesMatch() throws {
        let markdown = try String(contentsOf: GoldenVectors.protocolURL, encoding: .utf8)
        let documented = try GoldenVectors.parseMarkdown(markdown)
        let documentedByName = Dictionary(
            documented.map { ($0.name, $0.bytes) },
            uniquingKeysWith: { first, _ in first }
        )
        #expect(documentedByName.count == documented.count, "a frame is shown twice in PROTOCOL.md")
        for frame in GoldenVectors.all {
            let shown = documentedByName[frame.name]
            #expect(shown != nil, "PROTOCOL.md does not show \(frame.name)")
            if let shown {
                #expect(
                    hexString(shown) == hexString(frame.bytes),
                    "PROTOCOL.md shows different bytes for \(frame.name)"
                )
            }
        }
        let extra = Set(documentedByName.keys).subtracting(GoldenVectors.all.map(\.name))
        #expect(extra.isEmpty, "PROTOCOL.md shows frames that are not in frames.txt: \(extra.sorted())")
    }

    @Test("the errno table of PROTOCOL.md matches Errno")
    func errnoTable() throws {
        let markdown = try String(contentsOf: GoldenVectors.protocolURL, encoding: .utf8)
        var rows: [String: (value: Int32, status: String)] = [:]
        for line in markdown.split(separator: "\n") where line.hasPrefix("| `E") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, let value = Int32(cells[1]) else { continue }
            rows[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] =
                (value, cells[2].trimmingCharacters(in: CharacterSet(charactersIn: "`")))
        }
        #expect(rows.count == Errno.allKnown.count)
        for errno in Errno.allKnown {
            let row = rows[errno.name]
            #expect(row?.value == errno.rawValue, "\(errno.name)")
            var status: [UInt8] = []
            status.writeInteger(errno.wireStatus)
            #expect(row?.status == hexString(status), "\(errno.name)")
        }
    }
}
