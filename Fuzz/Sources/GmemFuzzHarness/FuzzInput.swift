/// How the harness reads one fuzz input: a small control prefix choosing the
/// configuration and the split points, then the byte stream a client sends.
///
/// ```
/// byte 0   options
///            bits 0-1  memory: 0 = 64 KiB, 4 KiB folios
///                              1 = 64 KiB, 16 KiB folios (4 pages share a lock)
///                              2 = 64 KiB, direct-map mode
///                              3 = 4 MiB, 64 KiB folios (two 2 MiB metadata chunks)
///            bit 2     the connection is read-only
///            bit 3     the harness sends a valid HELLO before the stream
///            bit 4     that HELLO asks for EVENTS
///            bit 5     advance the clock past the frame timeout after chunk T
///            bits 6-7  max_payload: 0 = 64 KiB, 1 = 4 KiB (the protocol's floor), 2 = 8 KiB, 3 = 1 MiB
/// byte 1   bits 0-3  n, the number of split points (n + 1 reads)
///          bits 4-7  T, the chunk after which the clock jumps (bit 5 above)
/// then     n little-endian u16: the sizes of the first n reads (clamped to
///          what is left; 0 is an empty read); the last read takes the rest
/// then     the stream
/// ```
///
/// Missing control bytes count as 0. `Fuzz/make-corpus.py` writes inputs in
/// this format from the golden frames.
public struct FuzzInput: Sendable {
    public var memoryChoice: Int
    public var readOnly: Bool
    public var autoHello: Bool
    public var helloEvents: Bool
    /// The chunk index after which the clock passes the frame timeout.
    public var timeoutAfterChunk: Int?
    public var maxPayload: Int
    /// The bytes the client sends, harness HELLO included.
    public var stream: [UInt8]
    /// The sizes of the reads that deliver `stream`, summing to its length.
    public var chunkSizes: [Int]

    public static let maxPayloadChoices = [64 << 10, 4 << 10, 8 << 10, 1 << 20]
    /// The id of the harness's own HELLO.
    public static let helloID: UInt32 = 0xFFFF_FFF0

    public init(_ bytes: UnsafeRawBufferPointer) {
        func byte(_ index: Int) -> UInt8 { index < bytes.count ? bytes[index] : 0 }
        let options = byte(0)
        let splits = byte(1)
        self.memoryChoice = Int(options & 0x03)
        self.readOnly = options & 0x04 != 0
        self.autoHello = options & 0x08 != 0
        self.helloEvents = options & 0x10 != 0
        self.maxPayload = Self.maxPayloadChoices[Int(options >> 6)]
        let splitCount = Int(splits & 0x0F)
        self.timeoutAfterChunk = options & 0x20 != 0 ? Int(splits >> 4) : nil

        var position = 2
        var requested: [Int] = []
        for _ in 0..<splitCount {
            requested.append(Int(byte(position)) | Int(byte(position + 1)) << 8)
            position += 2
        }
        var stream: [UInt8] = []
        if self.autoHello {
            stream += Self.frame(opcode: 1, id: Self.helloID, payload: le32(1) + le32(self.helloEvents ? 1 : 0))
        }
        if position < bytes.count {
            stream += bytes[position...]
        }
        self.stream = stream

        var remaining = stream.count
        var sizes: [Int] = []
        for size in requested {
            let taken = min(size, remaining)
            sizes.append(taken)
            remaining -= taken
        }
        sizes.append(remaining)
        self.chunkSizes = sizes
    }

    /// The bytes of the control prefix that produce these options (without the stream).
    public static func prefix(
        memory: Int = 0,
        readOnly: Bool = false,
        autoHello: Bool = true,
        events: Bool = true,
        timeoutAfterChunk: Int? = nil,
        maxPayloadChoice: Int = 0,
        splits: [UInt16] = []
    ) -> [UInt8] {
        precondition(splits.count < 16 && memory < 4 && maxPayloadChoice < 4)
        var options = UInt8(memory)
        if readOnly { options |= 0x04 }
        if autoHello { options |= 0x08 }
        if events { options |= 0x10 }
        if timeoutAfterChunk != nil { options |= 0x20 }
        options |= UInt8(maxPayloadChoice) << 6
        var bytes: [UInt8] = [options, UInt8(splits.count) | UInt8((timeoutAfterChunk ?? 0) & 0x0F) << 4]
        for split in splits { bytes += [UInt8(split & 0xFF), UInt8(split >> 8)] }
        return bytes
    }

    /// A request frame: header (flags 0, status 0) and payload.
    public static func frame(
        opcode: UInt16,
        id: UInt32,
        payload: [UInt8],
        flags: UInt16 = 0,
        status: Int32 = 0
    ) -> [UInt8] {
        le32(UInt32(16 + payload.count)) + le16(opcode) + le16(flags) + le32(id) + le32(UInt32(bitPattern: status))
            + payload
    }
}

@inline(__always) func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
@inline(__always) func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
@inline(__always) func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

extension Collection where Element == UInt8, Index == Int {
    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        UInt16(self[startIndex + offset]) | UInt16(self[startIndex + offset + 1]) << 8
    }
    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(self[startIndex + offset + index]) << (8 * index) }
        return value
    }
    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(self[startIndex + offset + index]) << (8 * index) }
        return value
    }
}
