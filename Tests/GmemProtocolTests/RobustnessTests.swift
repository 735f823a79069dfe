import GmemProtocol
import Testing

/// A small deterministic generator (SplitMix64), so that failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Hostile input: truncations and random bytes must produce thrown errors, never traps.
@Suite("Truncated and random input")
struct RobustnessTests {
    static var requestFrames: [[UInt8]] {
        GoldenVectors.frames(kind: "request").map(\.bytes) + RequestDecodingTests.wellFormed.map(\.frame.bytes)
    }

    @Test("every truncation of every request frame is refused without trapping")
    func truncatedRequests() throws {
        for frame in Self.requestFrames {
            let fullHeader = try #require(frame.withUnsafeBytes { FrameHeader(decoding: $0) })
            for cut in 0..<frame.count {
                let prefix = Array(frame[0..<cut])
                var decoder = FrameDecoder()
                #expect(decoder.decodeNext(prefix) == .needMoreBytes(totalBytes: cut < 16 ? 16 : frame.count))
                #expect(throws: Errno.self) { try decodeRequestFrame(prefix) }
                guard cut >= 16 else { continue }

                // The header still claims the full length: the payload is short.
                let payload = Array(prefix[16...])
                #expect(throws: Errno.invalidArgument) {
                    try payload.withUnsafeBytes { _ = try Request.decode(header: fullHeader, payload: $0) }
                }
                // A header rewritten to the truncated length: only PING (and empty-payload opcodes) may accept it.
                var shortHeader = fullHeader
                shortHeader.length = UInt32(cut)
                let result = payload.withUnsafeBytes { buffer in
                    Result { () throws(Errno) in OwnedRequest(try Request.decode(header: shortHeader, payload: buffer))
                    }
                }
                if case .success(let request) = result {
                    #expect(fullHeader.opcode == .ping, "\(request) decoded from a truncated \(fullHeader.opcode)")
                }
            }
        }
    }

    @Test("every truncation of every server frame is refused without trapping")
    func truncatedReplies() {
        let serverFrames = GoldenVectors.all.filter { $0.kind == "reply" || $0.kind == "event" }
        for frame in serverFrames {
            for cut in 0..<frame.bytes.count {
                let prefix = Array(frame.bytes[0..<cut])
                #expect(throws: Errno.protocolError, "\(frame.name) cut at \(cut)") { try ReplyFrame(decoding: prefix) }
                let payload = Array(prefix.dropFirst(16))
                _ = try? HelloReply(decoding: payload)
                _ = try? StatsReply(decoding: payload)
                _ = try? PageStateReply(decoding: payload)
                _ = try? GpcActivateReply(decoding: payload)
                _ = try? GpcInvalidatedEvent(decoding: payload)
                _ = try? PartialProgressPayload(decoding: payload)
                _ = try? VersionNotSupportedPayload(decoding: payload)
            }
        }
    }

    @Test("random request frames either decode and re-encode identically, or throw")
    func randomRequests() throws {
        var random = SplitMix64(state: 0x676d_656d_64)
        var decodedCount = 0
        for _ in 0..<20_000 {
            let opcode = UInt16.random(in: 0...15, using: &random)
            var payload = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                // Mostly zeros, so that reserved fields are often valid and decoding gets deep.
                Bool.random(using: &random) ? 0 : UInt8.random(in: 0...255, using: &random)
            }
            if (opcode == 4 || opcode == 8) && payload.count >= 16 && Bool.random(using: &random) {
                let length = UInt32(payload.count - 16)
                let offset = opcode == 4 ? 8 : 12
                for index in 0..<4 { payload[offset + index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
            }
            var frame = RawFrame(opcode: opcode, payload: payload)
            frame.flags = Int.random(in: 0..<10, using: &random) == 0 ? 1 : 0
            frame.status = Int.random(in: 0..<10, using: &random) == 0 ? -1 : 0

            let bytes = frame.bytes
            let known = Opcode(rawValue: opcode).isKnownRequest
            switch Result(catching: { () throws(Errno) in try decodeRequestFrame(bytes) }) {
            case .success(let (header, request)):
                decodedCount += 1
                #expect(try request.encoded(id: header.id) == bytes, "\(request) is not canonical")
            case .failure(let errno):
                #expect(errno == (known ? .invalidArgument : .operationNotSupported))
            }
        }
        #expect(decodedCount > 1000)
    }

    @Test("random server frames and payloads never trap")
    func randomReplies() {
        var random = SplitMix64(state: 0x7265_706c_79)
        for _ in 0..<20_000 {
            let payload = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                Bool.random(using: &random) ? 0 : UInt8.random(in: 0...255, using: &random)
            }
            let frame = RawFrame(
                opcode: UInt16.random(in: 0...0x81, using: &random),
                flags: UInt16.random(in: 0...3, using: &random),
                id: UInt32.random(in: 0...1, using: &random),
                status: [0, -1, -22, -93, 1, .min].randomElement(using: &random)!,
                payload: payload
            ).bytes
            if let reply = try? ReplyFrame(decoding: frame) {
                var encoded: [UInt8] = []
                reply.encode(into: &encoded)
                #expect(encoded == frame)
                _ = reply.bytesCompleted
                _ = reply.highestSupportedVersion
            }
            _ = try? HelloReply(decoding: payload)
            _ = try? StatsReply(decoding: payload)
            _ = try? PageStateReply(decoding: payload)
            _ = try? GpcInvalidatedEvent(decoding: payload)

            var decoder = FrameDecoder(maxPayload: 32)
            switch decoder.decodeNext(frame) {
            case .frame(let header): #expect(Int(header.length) <= frame.count && header.length <= 48)
            case .badLength(let header): #expect(header.length < 16 || header.length > 48)
            case .needMoreBytes(let total): #expect(total > frame.count)
            }
        }
    }

    @Test("random length fields never make the decoder ask for more than a frame")
    func randomLengths() {
        var random = SplitMix64(state: 42)
        for _ in 0..<10_000 {
            var bytes = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            if bytes.count >= 4 && Bool.random(using: &random) {
                bytes[0] = UInt8.random(in: 0...40, using: &random)
                bytes[1] = 0
                bytes[2] = 0
                bytes[3] = 0
            }
            var decoder = FrameDecoder(maxPayload: 24)
            if case .needMoreBytes(let total) = decoder.decodeNext(bytes) {
                #expect(total <= 40)
            }
        }
    }
}
