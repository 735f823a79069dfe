//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RingLayout: where the parts of a ring lie in its memfd (PROTOCOL.md 10.1).
//
//===----------------------------------------------------------------------===//

/// The geometry of one ring: its header page, submission queue, completion queue and data area.
public struct RingLayout: Hashable, Sendable {
    public static let magic: UInt32 = 0x4752_4d47
    public static let version: UInt32 = 1
    public static let submissionSize = 64
    public static let completionSize = 32
    public static let maxEntries: UInt32 = 4096
    public static let maxDataSize: UInt64 = 64 << 20
    /// The unit of the layout, whatever the host's page size.
    public static let alignment = 4096

    /// Byte offsets of the header's fields. Each word both sides write has a cache line of its own.
    public enum Offset {
        public static let magic = 0
        public static let version = 4
        public static let entries = 8
        public static let submissionSize = 12
        public static let completionSize = 16
        public static let ringID = 20
        public static let submissionQueue = 24
        public static let completionQueue = 32
        public static let dataArea = 40
        public static let dataSize = 48
        /// Client: the next submission slot it fills.
        public static let submissionTail = 64
        /// Server: the next submission it consumes.
        public static let submissionHead = 128
        /// Server: the next completion slot it fills.
        public static let completionTail = 192
        /// Client: the next completion it consumes.
        public static let completionHead = 256
        /// Server: ``RingLayout/needWakeup``.
        public static let serverFlags = 320
        /// Client, cleared by the server: ``RingLayout/wantWakeup``.
        public static let clientFlags = 384
    }

    /// `server_flags` bit 0: the server's poller sleeps; a client that submits rings the submit doorbell.
    public static let needWakeup: UInt32 = 1
    /// `client_flags` bit 0: the client sleeps; the server rings the completion doorbell once it completes.
    public static let wantWakeup: UInt32 = 1

    public let entries: UInt32
    public let dataSize: Int
    public let submissionQueueOffset: Int
    public let completionQueueOffset: Int
    public let dataOffset: Int
    /// Bytes of the memfd: header, queues and data area.
    public let mappingSize: Int

    /// The layout RING_SETUP asks for.
    ///
    /// - Throws: ``Errno/invalidArgument`` unless `entries` is a power of two from 1 to ``maxEntries`` and
    ///   `dataSize` a multiple of 4096 from 4096 to ``maxDataSize``.
    public init(entries: UInt32, dataSize: UInt64) throws(Errno) {
        guard entries >= 1, entries <= Self.maxEntries, entries & (entries - 1) == 0 else { throw .invalidArgument }
        guard dataSize >= UInt64(Self.alignment), dataSize <= Self.maxDataSize,
            dataSize % UInt64(Self.alignment) == 0
        else { throw .invalidArgument }
        self.entries = entries
        self.dataSize = Int(dataSize)
        self.submissionQueueOffset = Self.alignment
        self.completionQueueOffset =
            self.submissionQueueOffset + Self.roundUp(Int(entries) * Self.submissionSize)
        self.dataOffset = self.completionQueueOffset + Self.roundUp(Int(entries) * Self.completionSize)
        self.mappingSize = self.dataOffset + self.dataSize
    }

    /// The slot of a free-running index.
    @inlinable
    public func slot(_ index: UInt32) -> Int { Int(index & (self.entries &- 1)) }

    private static func roundUp(_ value: Int) -> Int {
        (value + Self.alignment - 1) / Self.alignment * Self.alignment
    }
}
