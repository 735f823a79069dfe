//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// WireWriter: the append-only sink every encoder writes into.
//
//===----------------------------------------------------------------------===//

/// An append-only byte sink that encoders write frames into.
///
/// The module ships a conformance for `[UInt8]`; a server conforms its own buffer type (for example NIO's
/// `ByteBuffer`) in its own module.
///
/// - Important: ``writeInteger(_:)`` must append **little-endian** bytes. NIO's `ByteBuffer.writeInteger` defaults
///   to big-endian, so a `ByteBuffer` conformance has to pass `endianness: .little` explicitly.
public protocol WireWriter {
    /// Appends `value` as `T.bitWidth / 8` little-endian bytes.
    mutating func writeInteger<T: FixedWidthInteger>(_ value: T)

    /// Appends `bytes` unchanged.
    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer)
}

extension WireWriter {
    /// Appends the contents of a byte array unchanged.
    @inlinable
    public mutating func writeBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.writeBytes($0) }
    }

    /// Appends `count` zero bytes (reserved fields). Does nothing for `count <= 0`.
    @inlinable
    public mutating func writeZeros(count: Int) {
        var remaining = count
        while remaining >= 8 {
            self.writeInteger(UInt64(0))
            remaining -= 8
        }
        while remaining > 0 {
            self.writeInteger(UInt8(0))
            remaining -= 1
        }
    }
}

extension Array: WireWriter where Element == UInt8 {
    /// Appends `value` as little-endian bytes.
    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { self.append(contentsOf: $0) }
    }

    /// Appends `bytes` unchanged.
    @inlinable
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        self.append(contentsOf: bytes)
    }
}
