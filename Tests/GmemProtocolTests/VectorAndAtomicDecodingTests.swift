import GmemProtocol
import Testing

/// Rule 4 for READV, WRITEV, ATOMIC and GPC_ATOMIC: the sizes, the reserved fields and the atomic arguments.
@Suite("READV, WRITEV and atomic requests")
struct VectorAndAtomicDecodingTests {
    func table(_ count: UInt32, _ segments: [(UInt64, UInt32)], reserved: UInt32 = 0, flags: UInt32 = 0) -> [UInt8] {
        le(count, flags) + segments.flatMap { le($0.0, $0.1, reserved) }
    }

    func atomic(op: UInt8, width: UInt8, operand: UInt64 = 0, expected: UInt64 = 0, flags: UInt16 = 0) -> RawFrame {
        RawFrame(opcode: 16, payload: le(UInt64(0x40), operand, expected, op, width, flags, UInt32(0)))
    }

    @Test("a segment table must match nsegs exactly, with zero flags and reserved fields")
    func segmentTable() throws {
        let two: [(UInt64, UInt32)] = [(0x1000, 4), (0x2000, 8)]
        #expect(throws: Never.self) { try RawFrame(opcode: 14, payload: self.table(2, two)).decode() }
        #expect(throws: Never.self) { try RawFrame(opcode: 14, payload: self.table(0, [])).decode() }
        for payload in [
            self.table(3, two), self.table(1, two), self.table(2, two, reserved: 1), self.table(2, two, flags: 1),
            self.table(.max, two), Array(self.table(2, two).dropLast()), [1, 0, 0],
        ] {
            #expect(throws: Errno.invalidArgument) { try RawFrame(opcode: 14, payload: payload).decode() }
        }
    }

    @Test("WRITEV's data is exactly the sum of the segment lengths")
    func writevData() throws {
        let two: [(UInt64, UInt32)] = [(0x1000, 4), (0x2000, 8)]
        let good = try RawFrame(opcode: 15, payload: self.table(2, two) + Array(0..<12)).decode()
        #expect(good == .writev(segments: two.map { WireSegment(gpa: $0.0, length: $0.1) }, data: Array(0..<12)))
        for extra in [11, 13, 0] {
            let frame = RawFrame(opcode: 15, payload: self.table(2, two) + [UInt8](repeating: 1, count: extra))
            #expect(throws: Errno.invalidArgument) { try frame.decode() }
        }
        let huge = RawFrame(opcode: 15, payload: self.table(2, [(0, .max), (0, .max)]) + [1])
        #expect(throws: Errno.invalidArgument) { try huge.decode() }
    }

    @Test("atomic arguments: a known op, a width of 1, 2, 4 or 8, and no operand bit they do not use")
    func atomicArguments() throws {
        #expect(throws: Never.self) { try self.atomic(op: 3, width: 1, operand: 0xff, expected: 0x7f).decode() }
        #expect(throws: Never.self) { try self.atomic(op: 0, width: 8).decode() }
        let invalid: [RawFrame] = [
            self.atomic(op: 7, width: 8), self.atomic(op: 0xff, width: 8),
            self.atomic(op: 4, width: 0, operand: 1), self.atomic(op: 4, width: 3, operand: 1),
            self.atomic(op: 4, width: 16, operand: 1),
            self.atomic(op: 4, width: 1, operand: 0x100), self.atomic(op: 4, width: 4, operand: 1 << 32),
            self.atomic(op: 3, width: 2, operand: 1, expected: 0x1_0000),
            self.atomic(op: 0, width: 8, operand: 1), self.atomic(op: 4, width: 8, operand: 1, expected: 1),
            self.atomic(op: 0, width: 8, flags: 1),
            RawFrame(
                opcode: 16,
                payload: le(UInt64(0x40), UInt64(0), UInt64(0), UInt8(0), UInt8(8), UInt16(0), UInt32(1))
            ),
            RawFrame(
                opcode: 17,
                payload: le(UInt64(1), UInt64(0), UInt64(0), UInt32(0), UInt8(0), UInt8(8), UInt16(2))
            ),
            RawFrame(
                opcode: 17,
                payload: le(UInt64(1), UInt64(0), UInt64(0), UInt32(0), UInt8(9), UInt8(8), UInt16(0))
            ),
        ]
        for frame in invalid {
            #expect(throws: Errno.invalidArgument, "\(frame.payload)") { try frame.decode() }
        }
    }

    @Test("only LOAD leaves an atomic request non-modifying; WRITEV always modifies")
    func modifying() {
        for op in AtomicOp.allCases {
            let arguments = AtomicArguments(op: op, width: 8)
            let plain = OwnedRequest.atomic(gpa: 0, arguments).withRequest { $0.isModifying }
            let cached = OwnedRequest.gpcAtomic(handle: 1, offset: 0, arguments).withRequest { $0.isModifying }
            #expect(plain == (op != .load) && cached == (op != .load))
        }
        #expect(OwnedRequest.writev(segments: [], data: []).withRequest { $0.isModifying })
        #expect(!OwnedRequest.readv(segments: []).withRequest { $0.isModifying })
        let description = OwnedRequest.atomic(gpa: 0x40, AtomicArguments(op: .fetchAdd, width: 4)).withRequest {
            $0.description
        }
        #expect(description == "ATOMIC FETCH_ADD width=4 gpa=0x40")
    }

    @Test("HELLO's max_segments is the reserved field unless DEVICE_OPS is granted")
    func helloMaxSegments() throws {
        var hello = HelloReply(
            features: [.events, .deviceOps],
            pageSize: 4096,
            folioSize: 4096,
            regionSize: 1 << 20,
            regionID: 1,
            maxPayload: 1 << 20,
            maxGpcs: 8,
            regionFlags: [],
            maxSegments: 128
        )
        var bytes: [UInt8] = []
        hello.write(to: &bytes)
        #expect(Array(bytes[44..<48]) == le(UInt32(128)))
        #expect(try bytes.withUnsafeBytes { try HelloReply(decoding: $0) } == hello)
        // Without the feature the field must stay 0, as it was before DEVICE_OPS.
        bytes.replaceSubrange(4..<8, with: le(UInt32(1)))
        #expect(throws: Errno.protocolError) { try bytes.withUnsafeBytes { try HelloReply(decoding: $0) } }
        hello.features = [.events]
        #expect(
            HelloReply(
                features: [],
                pageSize: 1,
                folioSize: 1,
                regionSize: 1,
                regionID: 1,
                maxPayload: 1,
                maxGpcs: 1,
                regionFlags: [],
                maxSegments: 64
            ).maxSegments == 0
        )
    }
}
