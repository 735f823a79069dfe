//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Request encoding: complete request frames, for clients.
//
//===----------------------------------------------------------------------===//

extension Request {
    /// Appends a complete request frame (header and payload) with the given id to `writer`.
    ///
    /// The frame is encoded as given: the server, not the encoder, enforces `max_payload` and the argument rules,
    /// so that clients and tests can send requests the server must refuse. Check ``payloadLength`` against the
    /// `max_payload` of the HELLO reply before sending.
    ///
    /// - Throws: ``Errno/messageTooLong`` if the frame length does not fit in `u32` (a payload over 4 GiB);
    ///   nothing is written then.
    public func encode(id: UInt32, into writer: inout some WireWriter) throws(Errno) {
        let header = try FrameHeader.request(opcode: self.opcode, id: id, payloadLength: self.payloadLength)
        header.write(to: &writer)
        self.writePayload(to: &writer)
    }

    /// Returns a complete request frame with the given id.
    ///
    /// - Throws: ``Errno/messageTooLong`` if the frame length does not fit in `u32`.
    public func encoded(id: UInt32) throws(Errno) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(FrameHeader.size + self.payloadLength)
        try self.encode(id: id, into: &bytes)
        return bytes
    }

    /// Appends the payload alone, exactly ``payloadLength`` bytes.
    ///
    /// Lengths of byte payloads are written as `u32`; ``encode(id:into:)`` has checked that they fit.
    func writePayload(to writer: inout some WireWriter) {
        switch self {
        case .hello(let version, let features):
            writer.writeInteger(version)
            writer.writeInteger(features)

        case .ping(let payload):
            writer.writeBytes(payload)

        case .read(let gpa, let length):
            writer.writeInteger(gpa)
            writer.writeInteger(length)
            writer.writeInteger(UInt32(0))

        case .write(let gpa, let data):
            writer.writeInteger(gpa)
            writer.writeInteger(UInt32(truncatingIfNeeded: data.count))
            writer.writeInteger(UInt32(0))
            writer.writeBytes(data)

        case .gpcActivate(let gpa, let length):
            writer.writeInteger(gpa)
            writer.writeInteger(length)
            writer.writeInteger(UInt32(0))

        case .gpcDeactivate(let handle):
            writer.writeInteger(handle)

        case .gpcRead(let handle, let offset, let length):
            writer.writeInteger(handle)
            writer.writeInteger(offset)
            writer.writeInteger(length)

        case .gpcWrite(let handle, let offset, let data):
            writer.writeInteger(handle)
            writer.writeInteger(offset)
            writer.writeInteger(UInt32(truncatingIfNeeded: data.count))
            writer.writeBytes(data)

        case .gpcRefresh(let handle, let gpa, let length):
            writer.writeInteger(handle)
            writer.writeInteger(gpa)
            writer.writeInteger(length)
            writer.writeInteger(UInt32(0))

        case .setAttributes(let gpa, let size, let attributes):
            writer.writeInteger(gpa)
            writer.writeInteger(size)
            writer.writeInteger(attributes)

        case .discard(let gpa, let size):
            writer.writeInteger(gpa)
            writer.writeInteger(size)

        case .stats:
            break

        case .pageState(let gpa, let pageCount):
            writer.writeInteger(gpa)
            writer.writeInteger(pageCount)
            writer.writeInteger(UInt32(0))

        case .readv(let segments):
            Request.writeSegmentTable(segments, to: &writer)

        case .writev(let segments, let data):
            Request.writeSegmentTable(segments, to: &writer)
            writer.writeBytes(data)

        case .atomic(let gpa, let arguments):
            writer.writeInteger(gpa)
            writer.writeInteger(arguments.operand)
            writer.writeInteger(arguments.expected)
            Request.writeAtomicOperation(arguments, to: &writer)
            writer.writeInteger(UInt32(0))

        case .gpcAtomic(let handle, let offset, let arguments):
            writer.writeInteger(handle)
            writer.writeInteger(arguments.operand)
            writer.writeInteger(arguments.expected)
            writer.writeInteger(offset)
            Request.writeAtomicOperation(arguments, to: &writer)

        case .ringSetup(let entries, let dataSize):
            writer.writeInteger(entries)
            writer.writeInteger(UInt32(0))
            writer.writeInteger(dataSize)

        case .ringClose(let ringID):
            writer.writeInteger(ringID)
            writer.writeInteger(UInt32(0))

        case .mapRegion:
            writer.writeInteger(UInt32(0))
            writer.writeInteger(UInt32(0))
        }
    }

    private static func writeSegmentTable(_ segments: [WireSegment], to writer: inout some WireWriter) {
        writer.writeInteger(UInt32(truncatingIfNeeded: segments.count))
        writer.writeInteger(UInt32(0))
        for segment in segments {
            writer.writeInteger(segment.gpa)
            writer.writeInteger(segment.length)
            writer.writeInteger(UInt32(0))
        }
    }

    /// `{u8 op, u8 width, u16 flags = 0}`.
    private static func writeAtomicOperation(_ arguments: AtomicArguments, to writer: inout some WireWriter) {
        writer.writeInteger(arguments.op.rawValue)
        writer.writeInteger(arguments.width)
        writer.writeInteger(UInt16(0))
    }
}
