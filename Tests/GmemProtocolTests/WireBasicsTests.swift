import GmemProtocol
import Testing

@Suite("Errno, opcodes, header, reader and writer")
struct WireBasicsTests {
    @Test("errno values are Linux's, with names and sentences")
    func errnoValues() {
        let expected: [(Errno, String, Int32)] = [
            (.notPermitted, "EPERM", 1), (.noSuchEntry, "ENOENT", 2), (.ioError, "EIO", 5),
            (.badFileDescriptor, "EBADF", 9), (.tryAgain, "EAGAIN", 11), (.noMemory, "ENOMEM", 12),
            (.permissionDenied, "EACCES", 13), (.badAddress, "EFAULT", 14), (.busy, "EBUSY", 16),
            (.exists, "EEXIST", 17), (.invalidArgument, "EINVAL", 22), (.noSpace, "ENOSPC", 28),
            (.outOfRange, "ERANGE", 34), (.protocolError, "EPROTO", 71), (.messageTooLong, "EMSGSIZE", 90),
            (.protocolNotSupported, "EPROTONOSUPPORT", 93), (.operationNotSupported, "EOPNOTSUPP", 95),
            (.connectionReset, "ECONNRESET", 104), (.shutdown, "ESHUTDOWN", 108), (.timedOut, "ETIMEDOUT", 110),
            (.alreadyInProgress, "EALREADY", 114), (.stale, "ESTALE", 116),
        ]
        #expect(expected.map(\.0) == Errno.allKnown)
        for (errno, name, value) in expected {
            #expect(errno.rawValue == value)
            #expect(errno.name == name)
            #expect(errno.wireStatus == -value)
            #expect(Errno(wireStatus: -value) == errno)
            #expect(!errno.sentence.isEmpty && !errno.sentence.hasPrefix("unknown"))
        }
        #expect(Errno.badAddress.sentence == "the range lies outside guest memory")
        #expect(Errno.badAddress.description == "EFAULT (14): the range lies outside guest memory")
        #expect(Errno(rawValue: 200).name == "E(200)")
        #expect(Errno(wireStatus: 0) == nil)
        #expect(Errno(wireStatus: 5) == nil)
        #expect(Errno(wireStatus: -4096) == nil)
        #expect(Errno(wireStatus: .min) == nil)
        #expect(Errno(wireStatus: -4095)?.rawValue == 4095)
        #expect(Errno(rawValue: .min).wireStatus == .min)
    }

    @Test("header fields sit at their offsets, little-endian")
    func headerLayout() throws {
        let header = FrameHeader(
            length: 0x0403_0201,
            opcode: Opcode(rawValue: 0x0605),
            flags: FrameFlags(rawValue: 0x0807),
            id: 0x0c0b_0a09,
            status: Int32(bitPattern: 0x100f_0e0d)
        )
        var bytes: [UInt8] = []
        header.write(to: &bytes)
        #expect(bytes == Array(1...16))
        #expect(bytes.withUnsafeBytes { FrameHeader(decoding: $0) } == header)
        #expect(Array(1...15 as ClosedRange<UInt8>).withUnsafeBytes { FrameHeader(decoding: $0) } == nil)

        #expect(FrameHeader(length: 15, opcode: .ping, flags: [], id: 0, status: 0).payloadLength == -1)
        #expect(
            FrameHeader(length: .max, opcode: .ping, flags: [], id: 0, status: 0).payloadLength == Int(UInt32.max) - 16
        )

        let request = try FrameHeader.request(opcode: .read, id: 3, payloadLength: 16)
        let reply = FrameHeader.reply(to: request, status: -14, payloadLength: 8)
        #expect(reply == FrameHeader(length: 24, opcode: .read, flags: .reply, id: 3, status: -14))
        #expect(FrameHeader.reply(to: request, status: 0, payloadLength: -1).length == 16)
        #expect(FrameHeader.reply(to: request, status: 0, payloadLength: .max).length == .max)
        #expect(throws: Errno.messageTooLong) {
            try FrameHeader.request(opcode: .ping, id: 0, payloadLength: Int(UInt32.max))
        }
        #expect(FrameHeader.frameLength(payloadLength: Int(UInt32.max) - 16) == .max)
        #expect(FrameHeader.frameLength(payloadLength: -1) == nil)
    }

    @Test("WireReader never reads past its buffer")
    func reader() throws {
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7]
        try bytes.withUnsafeBytes { buffer in
            var reader = WireReader(buffer)
            #expect(try reader.readInteger(as: UInt16.self) == 0x0201)
            #expect(throws: Errno.invalidArgument) { try reader.readInteger(as: UInt64.self) }
            #expect(reader.readerIndex == 2)
            #expect(try reader.readInteger(as: Int32.self) == 0x0605_0403)
            #expect(throws: Errno.invalidArgument) { try reader.readBytes(count: 2) }
            #expect(throws: Errno.invalidArgument) { try reader.readBytes(count: -1) }
            #expect(throws: Errno.invalidArgument) { try reader.expectAtEnd() }
            #expect(Array(try reader.readBytes(count: 1)) == [7])
            #expect(reader.isAtEnd)
            #expect(try reader.readBytes(count: 0).isEmpty)
            #expect(reader.readRemainingBytes().isEmpty)
            try reader.expectAtEnd()
        }

        var empty = WireReader(UnsafeRawBufferPointer(start: nil, count: 0), malformedError: .protocolError)
        #expect(throws: Errno.protocolError) { try empty.readInteger(as: UInt8.self) }
        #expect(try empty.readBytes(count: 0).isEmpty)
    }

    @Test("the array writer appends little-endian integers and raw bytes")
    func writer() {
        var bytes: [UInt8] = []
        bytes.writeInteger(UInt8(1))
        bytes.writeInteger(Int16(-2))
        bytes.writeInteger(UInt64(0x0807_0605_0403_0201))
        bytes.writeBytes([0xaa, 0xbb])
        bytes.writeZeros(count: 11)
        bytes.writeZeros(count: -1)
        #expect(bytes == [1, 0xfe, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0xbb] + Array(repeating: 0, count: 11))
    }

    @Test("protocol constants")
    func constants() {
        #expect(WireProtocol.version == 1)
        #expect(WireProtocol.defaultMaxPayload == 1_048_576)
        #expect(WireProtocol.attributePrivate == 8)
        #expect(FrameHeader.size == 16)
        #expect(FrameFlags.reply.rawValue == 1 && FrameFlags.event.rawValue == 2)
        #expect(HelloReply.Features.events.rawValue == 1)
        #expect(
            [HelloReply.RegionFlags.noDirectMap, .secretmem, .readOnly, .recovered, .mayMap].map(\.rawValue)
                == [1, 2, 4, 8, 16]
        )
        #expect(Opcode.allRequests.map(\.rawValue) == Array(1...20))
        #expect(Opcode.gpcInvalidated.rawValue == 0x80 && Opcode.ringFailed.rawValue == 0x81)
        #expect(HelloReply.Features.rings.rawValue == 4)
    }
}
