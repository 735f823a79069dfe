import CGmemSys

/// An atomic operation on one naturally aligned value of guest memory. The
/// raw values are the wire's ATOMIC `op` codes.
public enum AtomicOperation: UInt8, Sendable, CaseIterable {
    /// Acquire load; the result is the value.
    case load = 0
    /// Release store of the operand. A store reads nothing, so the result is
    /// 0; ``exchange`` returns the old value.
    case store = 1
    /// Stores the operand; the result is the old value.
    case exchange = 2
    /// Stores the operand if the value equals `expected`; the result is the
    /// old value, equal to `expected` exactly when the store happened.
    case compareExchange = 3
    /// Wrapping addition; the result is the old value.
    case fetchAdd = 4
    case fetchOr = 5
    case fetchAnd = 6

    /// Whether the operation can change memory (all but LOAD).
    public var isModifying: Bool { self != .load }
}

/// Atomic operations on guest memory: real atomic instructions on the shared
/// mapping (CGmemSys's `cgmem_atomic`), so they are atomic with respect to the
/// guest's vCPUs and to every other process mapping the memfd.
///
/// Sequentially consistent for the read-modify-write operations, acquire for
/// LOAD and release for STORE. Synchronous, for event loops and ring pollers alike.
extension GuestMemory {
    /// The widths an atomic operand may have, in bytes.
    public static let atomicWidths: Set<Int> = [1, 2, 4, 8]

    /// Runs `operation` on the `width`-byte value at `address` under the
    /// refcount protocol: take a reference (restoring the page if needed),
    /// operate, and keep the reference in `held` or drop it.
    ///
    /// - Throws: `.invalidArgument` for a width other than 1, 2, 4, 8, a
    ///   misaligned (hence possibly page-crossing) operand or operand bits
    ///   above the width, before `.badAddress` for an address outside the region.
    public func atomic(
        _ operation: AtomicOperation,
        width: Int,
        at address: GuestPhysicalAddress,
        operand: UInt64 = 0,
        expected: UInt64 = 0,
        holding held: inout HeldPages,
        counters: AccessCounters? = nil
    ) throws(GmemError) -> UInt64 {
        try Self.checkAtomicShape(width: width, alignment: address.rawValue, operand: operand, expected: expected)
        let pages = try self.geometry.pages(address: address.rawValue, count: width)
        let keep = try self.hold(pages, in: &held)
        // The reference keeps the page accessible; the instruction itself is the synchronisation.
        let old = cgmem_atomic(
            self.region.base + Int(address.rawValue),
            UInt32(width),
            UInt32(operation.rawValue),
            operand,
            expected
        )
        if !keep { self.table.release(pages) }
        Self.record(operation, width: width, in: counters ?? self.defaultCounters)
        return old
    }

    /// ``atomic(_:width:at:operand:expected:holding:counters:)`` that drops its reference at once.
    public func atomic(
        _ operation: AtomicOperation,
        width: Int,
        at address: GuestPhysicalAddress,
        operand: UInt64 = 0,
        expected: UInt64 = 0,
        counters: AccessCounters? = nil
    ) throws(GmemError) -> UInt64 {
        var held = HeldPages()
        defer { self.release(&held) }
        return try self.atomic(
            operation,
            width: width,
            at: address,
            operand: operand,
            expected: expected,
            holding: &held,
            counters: counters
        )
    }

    /// The same operation at `offset` in a cache's window: no protection
    /// call, the cache's reference keeps the page accessible.
    ///
    /// - Throws: `.invalidArgument` for the shape (width, alignment, operand
    ///   bits, the window's bounds), `.stale` for an invalidated cache,
    ///   `.noSuchEntry` for a deactivated one.
    public func atomic(
        _ operation: AtomicOperation,
        width: Int,
        cache: GuestPageCache,
        offset: Int,
        operand: UInt64 = 0,
        expected: UInt64 = 0,
        counters: AccessCounters? = nil
    ) throws(GmemError) -> UInt64 {
        // Width and operands first; the alignment needs the window's offset,
        // which a refresh may change, so it is checked under the folio lock.
        try Self.checkAtomicShape(width: width, alignment: 0, operand: operand, expected: expected)
        var old: UInt64 = 0
        try self.access(cache, offset: offset, count: width, alignment: width) { address in
            old = cgmem_atomic(address, UInt32(width), UInt32(operation.rawValue), operand, expected)
        }
        Self.record(operation, width: width, in: counters ?? self.defaultCounters)
        return old
    }

    /// The shape rules shared by both forms. `alignment` is anything congruent
    /// to the address modulo the page size.
    private static func checkAtomicShape(
        width: Int,
        alignment: UInt64,
        operand: UInt64,
        expected: UInt64
    ) throws(GmemError) {
        guard Self.atomicWidths.contains(width) else {
            throw GmemError(.invalidArgument, "an atomic operand is 1, 2, 4 or 8 bytes, not \(width)")
        }
        // Natural alignment also keeps the operand inside one page.
        guard alignment % UInt64(width) == 0 else {
            throw GmemError(.invalidArgument, "a \(width)-byte atomic operand must be \(width)-byte aligned")
        }
        let unused = width == 8 ? 0 : ~UInt64(0) << (width * 8)
        guard operand & unused == 0, expected & unused == 0 else {
            throw GmemError(.invalidArgument, "an operand has bits above its \(width) bytes")
        }
    }

    private static func record(_ operation: AtomicOperation, width: Int, in counters: AccessCounters) {
        if operation.isModifying { counters.recordWrite(width) } else { counters.recordRead(width) }
    }
}
