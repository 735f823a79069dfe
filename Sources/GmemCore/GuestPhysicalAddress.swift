/// An address in the guest's physical address space: an offset into the region.
public struct GuestPhysicalAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "0x" + String(self.rawValue, radix: 16) }
}

extension GuestPhysicalAddress: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt64) { self.rawValue = value }
}

/// A half-open run of page indices, `lowerBound..<upperBound`.
typealias PageRun = Range<Int>
