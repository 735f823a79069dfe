//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GuestPageCacheHandle: a guest page cache (GPC) activated on a GmemClient's connection.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import Synchronization

extension GmemClient {
    /// Activates a guest page cache over `[gpa, gpa + length)`, 1 to `page_size` bytes within one page.
    ///
    /// - Throws: ``GmemClientError``: `EINVAL` (zero length, page crossing), `EFAULT` (outside the region),
    ///   `ENOSPC` (`max_gpcs` caches already active on this connection), `ENOMEM`.
    public func activateCache(at gpa: UInt64, length: Int) async throws -> GuestPageCacheHandle {
        let length32 = try GuestPageCacheHandle.wireLength(length, opcode: .gpcActivate)
        let frame = try await self.perform(try self.makeRequest(.gpcActivate(gpa: gpa, length: length32)))
        let reply: GpcActivateReply
        do {
            reply = try frame.decodePayload(as: GpcActivateReply.self)
        } catch {
            throw self.violation("a GPC_ACTIVATE reply of \(frame.payload.count) bytes", opcode: .gpcActivate)
        }
        return GuestPageCacheHandle(client: self, handle: reply.handle, gpa: gpa, length: length)
    }
}

/// A guest page cache: a window of 1 to `page_size` bytes inside one page that stays mapped in the daemon, read
/// and written by handle, like KVM's `gfn_to_pfn_cache`.
///
/// Contract:
/// - The handle belongs to ``client``'s connection; it keeps the client alive.
/// - When another request (of any connection) converts or discards a page the window covers, the daemon
///   invalidates the cache: a GPC_INVALIDATED event arrives on ``GmemClient/events`` and ``read(offset:count:)`` and
///   ``write(offset:bytes:)`` throw `ESTALE` until ``refresh(at:length:)`` succeeds.
/// - A handle that is never deactivated is released by the daemon when the connection closes.
///
/// `Sendable`: the identity is immutable and the window, which ``refresh(at:length:)`` moves, is behind a mutex.
public final class GuestPageCacheHandle: Sendable, CustomStringConvertible {
    /// The connection the cache lives on.
    public let client: GmemClient
    /// The daemon's handle, unique on the connection and never 0.
    public let handle: UInt64

    private struct Window {
        var gpa: UInt64
        var length: Int
    }

    private let window: Mutex<Window>

    init(client: GmemClient, handle: UInt64, gpa: UInt64, length: Int) {
        self.client = client
        self.handle = handle
        self.window = Mutex(Window(gpa: gpa, length: length))
    }

    /// The first guest physical address of the window, as of the last successful activation or refresh.
    public var gpa: UInt64 {
        self.window.withLock { $0.gpa }
    }

    /// The bytes in the window, as of the last successful activation or refresh.
    public var length: Int {
        self.window.withLock { $0.length }
    }

    /// `GPC 3 [0x3000, +64)`.
    public var description: String {
        let window = self.window.withLock { $0 }
        return "GPC \(self.handle) [0x\(String(window.gpa, radix: 16)), +\(window.length))"
    }

    /// Reads `count` bytes at `offset` into the window.
    ///
    /// - Throws: ``GmemClientError``: `ENOENT` (deactivated), `EINVAL` (`offset + count` beyond the window),
    ///   `ESTALE` (invalidated and not refreshed).
    public func read(offset: Int = 0, count: Int) async throws -> [UInt8] {
        let offset32 = try Self.wireLength(offset, opcode: .gpcRead)
        let count32 = try Self.wireLength(count, opcode: .gpcRead)
        let request = try self.client.makeRequest(.gpcRead(handle: self.handle, offset: offset32, length: count32))
        let frame = try await self.client.perform(request)
        guard frame.payload.count == count else {
            throw self.client.violation(
                "a GPC_READ reply of \(frame.payload.count) bytes to a request for \(count)",
                opcode: .gpcRead
            )
        }
        return frame.payload
    }

    /// Writes `bytes` at `offset` into the window.
    ///
    /// - Throws: ``GmemClientError``: `ENOENT`, `EINVAL`, `ESTALE` as for ``read(offset:count:)``, `EPERM` on a
    ///   read-only connection.
    public func write(offset: Int = 0, bytes: [UInt8]) async throws {
        let offset32 = try Self.wireLength(offset, opcode: .gpcWrite)
        let request = try bytes.withUnsafeBytes { data in
            try self.client.makeRequest(.gpcWrite(handle: self.handle, offset: offset32, data: data))
        }
        try await self.client.performExpectingEmptyReply(request)
    }

    /// Re-points the cache at `[gpa, gpa + length)` and makes it valid again, after an invalidation or to move it.
    ///
    /// - Throws: ``GmemClientError``: `EINVAL`, `EFAULT` (the window is checked first), `ENOENT`, `ENOSPC`,
    ///   `ENOMEM`.
    public func refresh(at gpa: UInt64, length: Int) async throws {
        let length32 = try Self.wireLength(length, opcode: .gpcRefresh)
        try await self.client.performExpectingEmptyReply(
            try self.client.makeRequest(.gpcRefresh(handle: self.handle, gpa: gpa, length: length32))
        )
        self.window.withLock { $0 = Window(gpa: gpa, length: length) }
    }

    /// Revalidates the cache over its current window, e.g. after a GPC_INVALIDATED event.
    public func refresh() async throws {
        let window = self.window.withLock { $0 }
        try await self.refresh(at: window.gpa, length: window.length)
    }

    /// Deactivates the cache, valid or invalidated. The handle is unusable afterwards (`ENOENT`).
    public func deactivate() async throws {
        try await self.client.performExpectingEmptyReply(
            try self.client.makeRequest(.gpcDeactivate(handle: self.handle))
        )
    }

    /// `value` as a wire `u32`, or the `EINVAL` the daemon cannot be asked about.
    static func wireLength(_ value: Int, opcode: Opcode) throws(GmemClientError) -> UInt32 {
        guard let wire = UInt32(exactly: value) else {
            throw .invalidArgument(.invalidArgument, opcode: opcode, "\(value) does not fit a u32 field")
        }
        return wire
    }
}
