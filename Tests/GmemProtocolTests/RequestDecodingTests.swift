import GmemProtocol
import Testing

/// Builds a request frame byte by byte, independently of the module's encoder.
struct RawFrame {
    var opcode: UInt16
    var flags: UInt16 = 0
    var id: UInt32 = 7
    var status: Int32 = 0
    var payload: [UInt8] = []
    /// Overrides the header's length field; by default `16 + payload.count`.
    var length: UInt32? = nil

    var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.writeInteger(self.length ?? UInt32(16 + self.payload.count))
        bytes.writeInteger(self.opcode)
        bytes.writeInteger(self.flags)
        bytes.writeInteger(self.id)
        bytes.writeInteger(self.status)
        return bytes + self.payload
    }

    var header: FrameHeader {
        self.bytes.withUnsafeBytes { FrameHeader(decoding: $0)! }
    }

    /// Decodes with `Request.decode(header:payload:)`, as a server does after its framing.
    func decode() throws(Errno) -> OwnedRequest {
        let header = self.header
        let result = self.payload.withUnsafeBytes { payload in
            Result { () throws(Errno) in OwnedRequest(try Request.decode(header: header, payload: payload)) }
        }
        return try result.get()
    }
}

/// The little-endian bytes of `values`, in order: `le(UInt64(1), UInt32(2))` is 12 bytes.
func le(_ values: any FixedWidthInteger...) -> [UInt8] {
    var bytes: [UInt8] = []
    for value in values {
        bytes.writeInteger(value)
    }
    return bytes
}

@Suite("Request decoding and encoding")
struct RequestDecodingTests {
    /// One well-formed request per opcode: the raw frame and the request it must decode to.
    static let wellFormed: [(frame: RawFrame, request: OwnedRequest)] = [
        (RawFrame(opcode: 1, payload: le(UInt32(1), UInt32.max)), .hello(version: 1, features: .max)),
        (RawFrame(opcode: 2, payload: []), .ping([])),
        (RawFrame(opcode: 2, payload: Array(0..<200)), .ping(Array(0..<200))),
        (RawFrame(opcode: 3, payload: le(UInt64.max, UInt32(0), UInt32(0))), .read(gpa: .max, length: 0)),
        (
            RawFrame(opcode: 4, payload: le(UInt64(0x10), UInt32(3), UInt32(0)) + [7, 8, 9]),
            .write(gpa: 0x10, data: [7, 8, 9])
        ),
        (RawFrame(opcode: 4, payload: le(UInt64(0x10), UInt32(0), UInt32(0))), .write(gpa: 0x10, data: [])),
        (
            RawFrame(opcode: 5, payload: le(UInt64(0x1234), UInt32(12), UInt32(0))),
            .gpcActivate(gpa: 0x1234, length: 12)
        ),
        (
            RawFrame(opcode: 6, payload: le(UInt64(0xdead_beef_0000_0001))),
            .gpcDeactivate(handle: 0xdead_beef_0000_0001)
        ),
        (RawFrame(opcode: 7, payload: le(UInt64(9), UInt32(1), UInt32(2))), .gpcRead(handle: 9, offset: 1, length: 2)),
        (
            RawFrame(opcode: 8, payload: le(UInt64(9), UInt32(1), UInt32(2)) + [0xfe, 0xff]),
            .gpcWrite(handle: 9, offset: 1, data: [0xfe, 0xff])
        ),
        (
            RawFrame(opcode: 9, payload: le(UInt64(9), UInt64(0x8000), UInt32(4096), UInt32(0))),
            .gpcRefresh(handle: 9, gpa: 0x8000, length: 4096)
        ),
        (
            RawFrame(opcode: 10, payload: le(UInt64(0x1000), UInt64(0x2000), UInt64(8))),
            .setAttributes(gpa: 0x1000, size: 0x2000, attributes: 8)
        ),
        (
            RawFrame(opcode: 10, payload: le(UInt64(0x1000), UInt64(0x2000), UInt64(0))),
            .setAttributes(gpa: 0x1000, size: 0x2000, attributes: 0)
        ),
        (RawFrame(opcode: 11, payload: le(UInt64(0x1000), UInt64(0))), .discard(gpa: 0x1000, size: 0)),
        (RawFrame(opcode: 12, payload: []), .stats),
        (
            RawFrame(opcode: 13, payload: le(UInt64(0x3000), UInt32.max, UInt32(0))),
            .pageState(gpa: 0x3000, pageCount: .max)
        ),
        (
            RawFrame(opcode: 14, payload: le(UInt32(1), UInt32(0), UInt64(0x10), UInt32(9), UInt32(0))),
            .readv(segments: [WireSegment(gpa: 0x10, length: 9)])
        ),
        (
            RawFrame(opcode: 15, payload: le(UInt32(1), UInt32(0), UInt64(0x10), UInt32(2), UInt32(0)) + [5, 6]),
            .writev(segments: [WireSegment(gpa: 0x10, length: 2)], data: [5, 6])
        ),
        (
            RawFrame(
                opcode: 16,
                payload: le(UInt64(0x18), UInt64(9), UInt64(0), UInt8(4), UInt8(8), UInt16(0), UInt32(0))
            ),
            .atomic(gpa: 0x18, AtomicArguments(op: .fetchAdd, width: 8, operand: 9))
        ),
        (
            RawFrame(
                opcode: 17,
                payload: le(UInt64(3), UInt64(2), UInt64(1), UInt32(4), UInt8(3), UInt8(2), UInt16(0))
            ),
            .gpcAtomic(handle: 3, offset: 4, AtomicArguments(op: .compareExchange, width: 2, operand: 2, expected: 1))
        ),
        // The entry and size rules are the server's: any values decode.
        (RawFrame(opcode: 18, payload: le(UInt32(3), UInt32(0), UInt64.max)), .ringSetup(entries: 3, dataSize: .max)),
        (RawFrame(opcode: 19, payload: le(UInt32(7), UInt32(0))), .ringClose(ringID: 7)),
        (RawFrame(opcode: 20, payload: le(UInt32(0), UInt32(0))), .mapRegion),
    ]

    @Test("every opcode decodes to its fields and re-encodes to the same bytes", arguments: 0..<wellFormed.count)
    func roundTrip(index: Int) throws {
        let (frame, expected) = Self.wellFormed[index]
        let decoded = try frame.decode()
        #expect(decoded == expected)
        #expect(try decoded.encoded(id: frame.id) == frame.bytes)
        decoded.withRequest { request in
            #expect(request.opcode.rawValue == frame.opcode)
            #expect(request.payloadLength == frame.payload.count)
        }
    }

    @Test("every request opcode is covered")
    func coverage() {
        let covered = Set(Self.wellFormed.map(\.frame.opcode))
        #expect(covered == Set(Opcode.allRequests.map(\.rawValue)))
    }

    @Test("byte payloads point into the caller's buffer without copying")
    func zeroCopy() throws {
        let frame = RawFrame(opcode: 4, payload: le(UInt64(0), UInt32(2), UInt32(0)) + [1, 2])
        let bytes = frame.bytes
        try bytes.withUnsafeBytes { buffer in
            let (_, request) = try Request.decode(frame: buffer)
            guard case .write(_, let data) = request else {
                Issue.record("expected WRITE, got \(request)")
                return
            }
            #expect(data.baseAddress == buffer.baseAddress! + 32)
            #expect(data.count == 2)
        }
    }

    // MARK: Rule 3: unknown opcodes

    @Test(
        "unknown opcodes are -EOPNOTSUPP, before any shape check",
        arguments: [0, 21, 0x7f, 0x80, 0x81, 0xffff] as [UInt16]
    )
    func unknownOpcode(opcode: UInt16) {
        #expect(throws: Errno.operationNotSupported) { try RawFrame(opcode: opcode).decode() }
        #expect(throws: Errno.operationNotSupported) {
            try RawFrame(opcode: opcode, flags: 3, status: -1, payload: [1, 2, 3]).decode()
        }
    }

    // MARK: Rule 4: shape

    @Test("non-zero header flags or status are -EINVAL", arguments: Opcode.allRequests)
    func headerFlagsAndStatus(opcode: Opcode) throws {
        let valid = try #require(Self.wellFormed.first { $0.frame.opcode == opcode.rawValue }).frame
        for flags in [1, 2, 3, 0x8000] as [UInt16] {
            var frame = valid
            frame.flags = flags
            #expect(throws: Errno.invalidArgument) { try frame.decode() }
        }
        for status in [-22, 1, Int32.min] as [Int32] {
            var frame = valid
            frame.status = status
            #expect(throws: Errno.invalidArgument) { try frame.decode() }
        }
    }

    @Test("fixed-size payloads one byte short or long are -EINVAL", arguments: Opcode.allRequests)
    func wrongFixedSize(opcode: Opcode) throws {
        guard let size = Request.fixedPayloadLength(of: opcode) else { return }
        var frame = try #require(Self.wellFormed.first { $0.frame.opcode == opcode.rawValue }).frame
        frame.payload = [UInt8](repeating: 0, count: size + 1)
        #expect(throws: Errno.invalidArgument) { try frame.decode() }
        if size > 0 {
            frame.payload = [UInt8](repeating: 0, count: size - 1)
            #expect(throws: Errno.invalidArgument) { try frame.decode() }
        }
        // ATOMIC's zero width is itself invalid, so the exact size is checked with the well-formed payload.
        frame = try #require(Self.wellFormed.first { $0.frame.opcode == opcode.rawValue }).frame
        #expect(frame.payload.count == size)
        #expect(throws: Never.self) { try frame.decode() }
    }

    @Test("WRITE and GPC_WRITE payloads must be exactly 16 + len bytes", arguments: [4, 8] as [UInt16])
    func dataLengthMismatch(opcode: UInt16) {
        func frame(len: UInt32, data: Int) -> RawFrame {
            // WRITE: {gpa, len, flags, data}; GPC_WRITE: {handle, offset, len, data}.
            let fixed = opcode == 4 ? le(UInt64(0x1000), len, UInt32(0)) : le(UInt64(1), UInt32(0), len)
            return RawFrame(opcode: opcode, payload: fixed + [UInt8](repeating: 0xab, count: data))
        }
        #expect(throws: Never.self) { try frame(len: 5, data: 5).decode() }
        #expect(throws: Errno.invalidArgument) { try frame(len: 5, data: 4).decode() }
        #expect(throws: Errno.invalidArgument) { try frame(len: 5, data: 6).decode() }
        #expect(throws: Errno.invalidArgument) { try frame(len: .max, data: 8).decode() }
        #expect(throws: Errno.invalidArgument) { try frame(len: 0, data: 1).decode() }
        // Shorter than the fixed part.
        #expect(throws: Errno.invalidArgument) {
            try RawFrame(opcode: opcode, payload: Array(repeating: 0, count: 15)).decode()
        }
        #expect(throws: Errno.invalidArgument) { try RawFrame(opcode: opcode, payload: []).decode() }
    }

    @Test("non-zero flags fields in payloads are -EINVAL")
    func payloadFlags() {
        for opcode in [3, 5, 13] as [UInt16] {
            for flags in [1, 0x8000_0000] as [UInt32] {
                let frame = RawFrame(opcode: opcode, payload: le(UInt64(0x1000), UInt32(1), flags))
                #expect(throws: Errno.invalidArgument) { try frame.decode() }
            }
        }
        let write = RawFrame(opcode: 4, payload: le(UInt64(0), UInt32(1), UInt32(2)) + [0])
        #expect(throws: Errno.invalidArgument) { try write.decode() }
        let refresh = RawFrame(opcode: 9, payload: le(UInt64(1), UInt64(0), UInt32(1), UInt32(4)))
        #expect(throws: Errno.invalidArgument) { try refresh.decode() }
    }

    @Test(
        "SET_ATTRIBUTES accepts only the PRIVATE bit",
        arguments: [1, 2, 4, 9, 16, 0x8000_0000_0000_0000, .max] as [UInt64]
    )
    func attributeBits(attributes: UInt64) {
        let frame = RawFrame(opcode: 10, payload: le(UInt64(0), UInt64(0x1000), attributes))
        #expect(throws: Errno.invalidArgument) { try frame.decode() }
    }

    @Test("a header length that disagrees with the payload is -EINVAL")
    func headerLengthMismatch() {
        var frame = RawFrame(opcode: 12)
        frame.length = 17
        #expect(throws: Errno.invalidArgument) { try frame.decode() }
        frame.length = 15
        #expect(throws: Errno.invalidArgument) { try frame.decode() }
    }

    @Test("decode(frame:) applies rule 1 first")
    func wholeFrameLengths() {
        let stats = RawFrame(opcode: 12).bytes
        #expect(throws: Never.self) { try stats.withUnsafeBytes { _ = try Request.decode(frame: $0) } }
        #expect(throws: Errno.messageTooLong) {
            try stats.withUnsafeBytes { _ = try Request.decode(frame: UnsafeRawBufferPointer(rebasing: $0[0..<15])) }
        }
        #expect(throws: Errno.messageTooLong) {
            try (stats + [0]).withUnsafeBytes { _ = try Request.decode(frame: $0) }
        }
        let ping = RawFrame(opcode: 2, payload: [UInt8](repeating: 1, count: 64)).bytes
        #expect(throws: Errno.messageTooLong) {
            try ping.withUnsafeBytes { _ = try Request.decode(frame: $0, maxPayload: 63) }
        }
        #expect(throws: Never.self) { try ping.withUnsafeBytes { _ = try Request.decode(frame: $0, maxPayload: 64) } }
    }

    @Test("request properties")
    func properties() {
        #expect(
            Opcode.allRequests.filter(\.isModifying) == [
                .write, .gpcWrite, .setAttributes, .discard, .writev, .mapRegion,
            ]
        )
        let allKnown = Opcode.allRequests.allSatisfy { $0.isKnownRequest }
        #expect(allKnown)
        #expect(!Opcode.gpcInvalidated.isKnownRequest)
        #expect(Opcode.gpcInvalidated.isKnownEvent)
        let discardModifies = OwnedRequest.discard(gpa: 0, size: 1).withRequest { $0.isModifying }
        let readModifies = OwnedRequest.read(gpa: 0, length: 1).withRequest { $0.isModifying }
        let description = OwnedRequest.read(gpa: 0x1000, length: 16).withRequest { $0.description }
        #expect(discardModifies)
        #expect(!readModifies)
        #expect(description == "READ gpa=0x1000 len=16")
        #expect(String(describing: Opcode(rawValue: 0xff)) == "OPCODE(0x00ff)")
        #expect(String(describing: Opcode.gpcActivate) == "GPC_ACTIVATE")
    }
}
