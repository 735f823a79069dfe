import GmemProtocol
import Testing

@Suite("Reply payloads")
struct ReplyPayloadTests {
    static let hello = HelloReply(
        features: .events,
        pageSize: 4096,
        folioSize: 4096,
        regionSize: 1 << 33,
        regionID: 42,
        maxPayload: 1 << 16,
        maxGpcs: 8,
        regionFlags: [.readOnly, .recovered]
    )

    func encoded(_ payload: some WireEncodable) -> [UInt8] {
        var bytes: [UInt8] = []
        payload.write(to: &bytes)
        #expect(bytes.count == payload.encodedLength)
        return bytes
    }

    @Test("region_id is shown as 0x and 16 zero-padded hex digits, whatever its value")
    func regionIDFormat() {
        #expect(HelloReply.formatted(regionID: 0x08e3_f4ee_f5f8_7f51) == "0x08e3f4eef5f87f51")
        #expect(HelloReply.formatted(regionID: 1) == "0x0000000000000001")
        #expect(HelloReply.formatted(regionID: .max) == "0xffffffffffffffff")
    }

    @Test("HELLO reply: 48 bytes, round trip, strict size and reserved field")
    func helloReply() throws {
        var bytes = self.encoded(Self.hello)
        #expect(bytes.count == HelloReply.size)
        #expect(try HelloReply(decoding: bytes) == Self.hello)
        #expect(Array(bytes[40..<44]) == le(UInt32(0b1100)))

        #expect(throws: Errno.protocolError) { try HelloReply(decoding: Array(bytes.dropLast())) }
        #expect(throws: Errno.protocolError) { try HelloReply(decoding: bytes + [0]) }
        bytes[44] = 1
        #expect(throws: Errno.protocolError) { try HelloReply(decoding: bytes) }

        let unknownBits = HelloReply.RegionFlags(rawValue: 0xffff_fff0)
        var future = Self.hello
        future.regionFlags = unknownBits
        future.features = HelloReply.Features(rawValue: 0x8000_0001)
        #expect(try HelloReply(decoding: self.encoded(future)) == future)
    }

    @Test("STATS reply: round trip, name rules, malformed lists")
    func statsReply() throws {
        let stats = try StatsReply([(name: "reads", value: 1), (name: "x", value: .max)])
        let bytes = self.encoded(stats)
        #expect(bytes == [5] + Array("reads".utf8) + le(UInt64(1)) + [1, 0x78] + le(UInt64.max))
        #expect(try StatsReply(decoding: bytes) == stats)
        #expect(stats.pairs.map(\.name) == ["reads", "x"])
        #expect(try StatsReply(decoding: [UInt8]()).entries.isEmpty)
        #expect(try StatsReply(decoding: Array(bytes[0..<14])).pairs.map(\.name) == ["reads"])

        let longest = String(repeating: "n", count: 255)
        #expect(try StatsReply([(name: longest, value: 0)]).encodedLength == 1 + 255 + 8)

        for name in ["", String(repeating: "n", count: 256), "with space", "caf\u{e9}", "tab\t", "nul\u{0}"] {
            #expect(throws: Errno.invalidArgument, "\(name.debugDescription)") {
                try StatsReply.Entry(name: name, value: 0)
            }
        }
        #expect(throws: Errno.invalidArgument) { try StatsReply([(name: "a", value: 1), (name: "a", value: 2)]) }

        // Truncated at every byte but the boundary between the two entries (1 + 5 + 8 = 14).
        for cut in 1..<bytes.count where cut != 14 {
            #expect(throws: Errno.protocolError, "cut at \(cut)") { try StatsReply(decoding: Array(bytes[0..<cut])) }
        }
        // Empty name, non-ASCII name, duplicate name.
        #expect(throws: Errno.protocolError) { try StatsReply(decoding: [0] + le(UInt64(1))) }
        #expect(throws: Errno.protocolError) { try StatsReply(decoding: [1, 0xc3] + le(UInt64(1))) }
        #expect(throws: Errno.protocolError) { try StatsReply(decoding: [1, 0x20] + le(UInt64(1))) }
        let entry: [UInt8] = [1, 0x61] + le(UInt64(1))
        #expect(throws: Errno.protocolError) { try StatsReply(decoding: entry + entry) }
    }

    @Test("PAGE_STATE reply: entries, saturation, strict bits")
    func pageState() throws {
        let reply = PageStateReply(entries: [
            PageStateEntry(refcount: 1, isPrivate: true, isAccessible: true),
            PageStateEntry(saturatingRefcount: -3, isPrivate: false, isAccessible: false),
            PageStateEntry(saturatingRefcount: 1 << 40, isPrivate: true, isAccessible: false),
        ])
        let bytes = self.encoded(reply)
        #expect(bytes == [1, 0, 3, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 0])
        #expect(try PageStateReply(decoding: bytes) == reply)
        #expect(try PageStateReply(decoding: [UInt8]()).entries.isEmpty)
        #expect(PageStateReply.payloadLength(pageCount: .max) == 4 * Int(UInt32.max))

        #expect(throws: Errno.protocolError) { try PageStateReply(decoding: Array(bytes.dropLast())) }
        #expect(throws: Errno.protocolError) { try PageStateReply(decoding: [0, 0, 4, 0]) }
        #expect(throws: Errno.protocolError) { try PageStateReply(decoding: [0, 0, 0, 1]) }
    }

    @Test("GPC payloads and the GPC_INVALIDATED event")
    func gpc() throws {
        #expect(self.encoded(GpcActivateReply(handle: 0x0102)) == le(UInt64(0x0102)))
        #expect(throws: Errno.protocolError) { try GpcActivateReply(decoding: [1, 2, 3]) }

        let event = GpcInvalidatedEvent(handle: 7, reason: .attributesChanged)
        #expect(self.encoded(event) == le(UInt64(7), UInt32(1), UInt32(0)))
        var frame: [UInt8] = []
        event.encodeFrame(into: &frame)
        #expect(Array(frame[0..<16]) == le(UInt32(32), UInt16(0x80), UInt16(2), UInt32(0), Int32(0)))
        #expect(try ReplyFrame(decoding: frame).decodePayload(as: GpcInvalidatedEvent.self) == event)

        let future = GpcInvalidatedEvent(handle: 1, reason: InvalidationReason(rawValue: 77))
        #expect(try GpcInvalidatedEvent(decoding: self.encoded(future)) == future)
        #expect(throws: Errno.protocolError) { try GpcInvalidatedEvent(decoding: le(UInt64(1), UInt32(1), UInt32(1))) }
        #expect(String(describing: InvalidationReason.discarded) == "discarded")
    }

    @Test("Reply.encode writes the header its payload needs")
    func replyEncoders() throws {
        let request = FrameHeader(length: 32, opcode: .read, flags: [], id: 0xabcd, status: 0)
        var bytes: [UInt8] = []
        Reply.encode(replyingTo: request, payloadLength: 3, into: &bytes) { $0.writeBytes([9, 8, 7]) }
        #expect(bytes == le(UInt32(19), UInt16(3), UInt16(1), UInt32(0xabcd), Int32(0)) + [9, 8, 7])

        bytes = []
        Reply.encodePartialFailure(replyingTo: request, .badAddress, bytesCompleted: 1 << 32, into: &bytes)
        let partial = try ReplyFrame(decoding: bytes)
        #expect(partial.errno == .badAddress)
        #expect(partial.bytesCompleted == 1 << 32)

        enum Failure: Error { case copy }
        bytes = []
        #expect(throws: Failure.copy) {
            try Reply.encode(replyingTo: request, payloadLength: 3, into: &bytes) { _ throws(Failure) in
                throw Failure.copy
            }
        }
        #expect(bytes.count == 16)
    }

    @Test("ReplyFrame rejects what a server must never send")
    func replyFrameValidation() throws {
        func frame(
            opcode: UInt16 = 3,
            flags: UInt16 = 1,
            id: UInt32 = 1,
            status: Int32 = 0,
            payload: [UInt8] = []
        ) -> [UInt8] {
            RawFrame(opcode: opcode, flags: flags, id: id, status: status, payload: payload).bytes
        }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame()) }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame(status: -14)) }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame(status: -4095)) }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame(status: -5, payload: le(UInt64(1)))) }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame(opcode: 1, status: -93, payload: le(UInt32(1)))) }
        #expect(throws: Never.self) { try ReplyFrame(decoding: frame(opcode: 0x81, flags: 2, id: 0)) }

        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(flags: 0)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(flags: 3)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(flags: 5)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(status: 1)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(status: -4096)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(status: .min)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(status: -22, payload: [0])) }
        #expect(throws: Errno.protocolError) {
            try ReplyFrame(decoding: frame(opcode: 7, status: -5, payload: le(UInt64(1))))
        }
        #expect(throws: Errno.protocolError) {
            try ReplyFrame(decoding: frame(opcode: 1, status: -22, payload: le(UInt32(1))))
        }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(flags: 2, id: 1)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame(flags: 2, id: 0, status: -1)) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: Array(frame().prefix(15))) }
        #expect(throws: Errno.protocolError) { try ReplyFrame(decoding: frame() + [0]) }
    }
}
