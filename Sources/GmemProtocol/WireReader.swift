//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// WireReader: a bounds-checked little-endian cursor over borrowed bytes.
//
//===----------------------------------------------------------------------===//

/// A bounds-checked little-endian cursor over bytes the caller owns.
///
/// Every read checks the remaining length first and throws ``malformedError`` instead of trapping, so a
/// `WireReader` can be pointed at arbitrary (fuzzed, truncated, hostile) input. Slices returned by
/// ``readBytes(count:)`` point into the original buffer and are valid only as long as it is.
public struct WireReader {
    /// The bytes being read.
    public let bytes: UnsafeRawBufferPointer

    /// Offset of the next byte to read, relative to the start of ``bytes``.
    @inlinable
    public var readerIndex: Int {
        self._readerIndex
    }

    @usableFromInline
    var _readerIndex: Int

    /// The error thrown when the input is too short or has bytes left over.
    ///
    /// ``Errno/invalidArgument`` for requests (the server answers `-EINVAL`), ``Errno/protocolError`` for replies.
    public let malformedError: Errno

    /// Starts reading at the first byte of `bytes`.
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, malformedError: Errno = .invalidArgument) {
        self.bytes = bytes
        self._readerIndex = 0
        self.malformedError = malformedError
    }

    /// Bytes not yet read.
    @inlinable
    public var readableBytes: Int {
        self.bytes.count - self.readerIndex
    }

    /// Whether every byte has been read.
    @inlinable
    public var isAtEnd: Bool {
        self.readerIndex >= self.bytes.count
    }

    /// Reads a little-endian integer.
    ///
    /// - Throws: ``malformedError`` if fewer than `T.bitWidth / 8` bytes remain; nothing is consumed then.
    @inlinable
    public mutating func readInteger<T: FixedWidthInteger>(as type: T.Type = T.self) throws(Errno) -> T {
        let size = MemoryLayout<T>.size
        guard size <= self.readableBytes else { throw self.malformedError }
        let value = self.bytes.loadUnaligned(fromByteOffset: self.readerIndex, as: T.self)
        self._readerIndex += size
        return T(littleEndian: value)
    }

    /// Returns the next `count` bytes as a slice of the underlying buffer, without copying.
    ///
    /// - Throws: ``malformedError`` if `count` is negative or more than ``readableBytes``; nothing is consumed then.
    @inlinable
    public mutating func readBytes(count: Int) throws(Errno) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= self.readableBytes else { throw self.malformedError }
        let start = self.readerIndex
        self._readerIndex += count
        return UnsafeRawBufferPointer(rebasing: self.bytes[start..<(start + count)])
    }

    /// Returns every byte not yet read, without copying, and moves to the end.
    @inlinable
    public mutating func readRemainingBytes() -> UnsafeRawBufferPointer {
        let start = self.readerIndex
        self._readerIndex = self.bytes.count
        return UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.bytes.count])
    }

    /// Reads a `u32` flags or reserved field that protocol v1 requires to be zero.
    ///
    /// - Throws: ``malformedError`` if the input is short or the field is not zero.
    @inlinable
    public mutating func readZeroUInt32() throws(Errno) {
        guard try self.readInteger(as: UInt32.self) == 0 else { throw self.malformedError }
    }

    /// Checks that every byte has been read.
    ///
    /// - Throws: ``malformedError`` if bytes are left over.
    @inlinable
    public func expectAtEnd() throws(Errno) {
        guard self.isAtEnd else { throw self.malformedError }
    }

    /// Checks that exactly `count` bytes remain, so that fixed-size payloads are rejected before any field is read.
    ///
    /// - Throws: ``malformedError`` otherwise.
    @inlinable
    public func expectReadableBytes(_ count: Int) throws(Errno) {
        guard self.readableBytes == count else { throw self.malformedError }
    }
}

/// `WireReader` borrows memory it does not own, so it must not cross isolation domains.
@available(*, unavailable)
extension WireReader: Sendable {}
