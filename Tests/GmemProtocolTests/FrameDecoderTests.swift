import GmemProtocol
import Testing

/// Feeds a byte stream to a ``FrameDecoder`` the way a server does: accumulate, take complete frames off the front.
struct StreamHarness {
    var decoder: FrameDecoder
    var pending: [UInt8] = []
    var frames: [[UInt8]] = []
    var rejected: FrameHeader? = nil
    /// The largest `needMoreBytes` total requested, to check the decoder never asks for more than a frame.
    var largestRequest = 0

    init(maxPayload: Int = WireProtocol.defaultMaxPayload) {
        self.decoder = FrameDecoder(maxPayload: maxPayload)
    }

    mutating func receive(_ chunk: some Sequence<UInt8>) {
        self.pending += chunk
        while self.rejected == nil {
            switch self.decoder.decodeNext(self.pending) {
            case .needMoreBytes(let total):
                self.largestRequest = max(self.largestRequest, total)
                #expect(total > self.pending.count)
                return
            case .frame(let header):
                let length = Int(header.length)
                self.frames.append(Array(self.pending[0..<length]))
                self.pending.removeFirst(length)
            case .badLength(let header):
                self.rejected = header
            }
        }
    }
}

@Suite("Frame decoder (rule 1)")
struct FrameDecoderTests {
    static let sample: [[UInt8]] = [
        RawFrame(opcode: 1, id: 1, payload: le(UInt32(1), UInt32(0))).bytes,
        RawFrame(opcode: 2, id: 2, payload: []).bytes,
        RawFrame(opcode: 2, id: 3, payload: Array(repeating: 0x5a, count: 100)).bytes,
        RawFrame(opcode: 12, id: 4).bytes,
        RawFrame(opcode: 4, id: 5, payload: le(UInt64(0), UInt32(3), UInt32(0)) + [1, 2, 3]).bytes,
    ]

    @Test("a length of 0xFFFFFFFF is rejected from the header alone, with its opcode and id")
    func hugeLength() {
        var decoder = FrameDecoder()
        let header = RawFrame(opcode: 4, id: 99, length: 0xffff_ffff).bytes
        #expect(
            decoder.decodeNext(header)
                == .badLength(FrameHeader(length: .max, opcode: .write, flags: [], id: 99, status: 0))
        )
        #expect(decoder.hasFailed)

        var reply: [UInt8] = []
        Reply.encodeError(replyingTo: decoder.failedHeader!, .messageTooLong, into: &reply)
        #expect(reply == le(UInt32(16), UInt16(4), UInt16(1), UInt32(99), Int32(-90)))
    }

    @Test("lengths below 16 are rejected", arguments: [0, 1, 8, 15] as [UInt32])
    func shortLength(length: UInt32) {
        var decoder = FrameDecoder()
        let bytes = RawFrame(opcode: 3, id: 5, length: length).bytes
        guard case .badLength(let header) = decoder.decodeNext(bytes) else {
            Issue.record("length \(length) accepted")
            return
        }
        #expect(header.opcode == .read)
        #expect(header.id == 5)
    }

    @Test("the bound is exactly 16 + maxPayload")
    func bound() {
        var decoder = FrameDecoder(maxPayload: 100)
        #expect(decoder.maxFrameLength == 116)
        let atLimit = RawFrame(opcode: 2, payload: Array(repeating: 1, count: 100)).bytes
        #expect(decoder.decodeNext(atLimit) == .frame(headerOf(atLimit)!))
        let overLimit = RawFrame(opcode: 2, payload: Array(repeating: 1, count: 101)).bytes
        guard case .badLength = decoder.decodeNext(overLimit) else {
            Issue.record("117-byte frame accepted with maxPayload 100")
            return
        }
        #expect(FrameDecoder(maxPayload: -5).maxPayload == 0)
        #expect(FrameDecoder(maxPayload: .max).maxPayload == Int(UInt32.max) - 16)
    }

    @Test("a valid header over a short buffer asks for the whole frame and never trusts more")
    func needMore() {
        var decoder = FrameDecoder()
        #expect(decoder.decodeNext([]) == .needMoreBytes(totalBytes: 16))
        #expect(decoder.decodeNext([0xff, 0xff, 0xff, 0xff]) == .needMoreBytes(totalBytes: 16))
        let frame = Self.sample[2]
        #expect(decoder.decodeNext(Array(frame.prefix(16))) == .needMoreBytes(totalBytes: frame.count))
        #expect(decoder.decodeNext(Array(frame.dropLast())) == .needMoreBytes(totalBytes: frame.count))
        #expect(!decoder.hasFailed)
    }

    @Test("split input, one byte at a time, yields the same frames")
    func byteAtATime() {
        var harness = StreamHarness()
        for byte in Self.sample.joined() {
            harness.receive([byte])
        }
        #expect(harness.frames == Self.sample)
        #expect(harness.pending.isEmpty)
        #expect(harness.rejected == nil)
        #expect(harness.largestRequest == Self.sample.map(\.count).max())
    }

    @Test("coalesced input, several frames in one buffer, yields every frame")
    func coalesced() {
        var harness = StreamHarness()
        harness.receive(Self.sample.joined())
        #expect(harness.frames == Self.sample)
        #expect(harness.pending.isEmpty)

        // Every split point of the concatenation, in two reads.
        let stream = Array(Self.sample.joined())
        for split in 0...stream.count {
            var twoReads = StreamHarness()
            twoReads.receive(stream[0..<split])
            twoReads.receive(stream[split...])
            #expect(twoReads.frames == Self.sample, "split at \(split)")
        }
    }

    @Test("splitFrames returns complete frames and the bytes they consume")
    func splitFrames() throws {
        var decoder = FrameDecoder()
        let stream = Array(Self.sample.joined()) + Array(Self.sample[2].prefix(20))
        let (frames, consumed) = try stream.withUnsafeBytes { buffer in
            let (frames, consumed) = try decoder.splitFrames(buffer)
            return (frames.map { Array($0) }, consumed)
        }
        #expect(frames == Self.sample)
        #expect(consumed == stream.count - 20)
    }

    @Test("a bad length after good frames stops the stream for good")
    func stickyFailure() {
        var harness = StreamHarness(maxPayload: 64)
        let bad = RawFrame(opcode: 2, id: 42, payload: Array(repeating: 0, count: 65)).bytes
        harness.receive(Self.sample[0] + Self.sample[1] + bad + Self.sample[3])
        #expect(harness.frames == [Self.sample[0], Self.sample[1]])
        #expect(harness.rejected?.id == 42)
        #expect(harness.rejected?.opcode == .ping)

        var decoder = harness.decoder
        #expect(decoder.decodeNext(Self.sample[3]) == .badLength(harness.rejected!))
        var copy = decoder
        #expect(throws: Errno.messageTooLong) { try Self.sample[3].withUnsafeBytes { _ = try copy.splitFrames($0) } }
    }
}
