import Testing

@testable import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by every suite: region construction, byte-array I/O, page
/// state shortcuts, a seeded RNG and an errno-checking `#expect` wrapper.

let pageSize = GuestMemory.systemPageSize
let KiB = 1024
let MiB = 1024 * 1024
let TiB: UInt64 = 1 << 40

/// A fresh no-direct-map memfd region of `pages` pages unless told otherwise.
func makeMemory(
    pages: Int = 16,
    folioSize: Int? = nil,
    backing: Backing = .memfd,
    directMap: Bool = false,
    protection: any PageProtection = KernelPageProtection()
) throws -> GuestMemory {
    let configuration = GuestMemory.Configuration(
        size: UInt64(pages * pageSize),
        folioSize: folioSize,
        backing: backing,
        directMap: directMap
    )
    return try GuestMemory(configuration, protection: protection)
}

/// The guest physical address of `page` plus `offset`.
func gpa(page: Int, offset: Int = 0) -> GuestPhysicalAddress {
    GuestPhysicalAddress(UInt64(page * pageSize + offset))
}

/// `count` bytes of a recognisable pattern derived from `seed`.
func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ 1) }
}

extension GuestMemory {
    func readBytes(at address: GuestPhysicalAddress, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: count)
        try bytes.withUnsafeMutableBytes { (buffer) in try self.read(at: address, into: buffer) }
        return bytes
    }

    func writeBytes(_ bytes: [UInt8], at address: GuestPhysicalAddress) throws {
        try bytes.withUnsafeBytes { (buffer) in try self.write(at: address, from: buffer) }
    }

    func readBytes(cache: GuestPageCache, offset: Int = 0, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: count)
        try bytes.withUnsafeMutableBytes { (buffer) in try self.read(cache: cache, offset: offset, into: buffer) }
        return bytes
    }

    func writeBytes(_ bytes: [UInt8], cache: GuestPageCache, offset: Int = 0) throws {
        try bytes.withUnsafeBytes { (buffer) in try self.write(cache: cache, offset: offset, from: buffer) }
    }

    /// The state of one page.
    func state(ofPage page: Int) throws -> PageState {
        try #require(try self.pageStates(at: gpa(page: page), pageCount: 1).first)
    }

    /// The states of `pages`.
    func states(_ pages: Range<Int>) throws -> [PageState] {
        try self.pageStates(at: gpa(page: pages.lowerBound), pageCount: pages.count)
    }

    /// The states of every page of the region (small regions only).
    func allStates() throws -> [PageState] {
        try self.pageStates(at: 0, pageCount: self.geometry.pageCount)
    }

    /// Counts protection calls made while running `body`.
    func protectCalls<R>(_ body: () throws -> R) rethrows -> (result: R, calls: UInt64) {
        let before = self.statistics.protectCalls
        let result = try body()
        return (result, self.statistics.protectCalls - before)
    }
}

let privateInaccessible = PageState(count: 0, isPrivate: true, isAccessible: false)
let sharedIdle = PageState(count: 0, isPrivate: false, isAccessible: true)
func privateHeld(_ count: UInt32) -> PageState { PageState(count: count, isPrivate: true, isAccessible: true) }

/// Expects `body` to throw a ``GmemError`` with `code`, and returns it.
@discardableResult
func expectGmemError(
    _ code: Errno,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> GmemError? {
    let error = #expect(throws: GmemError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, "expected \(code), got \(String(describing: error))", sourceLocation: sourceLocation)
    return error
}

/// SplitMix64: a small, seedable generator so random schedules replay exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
