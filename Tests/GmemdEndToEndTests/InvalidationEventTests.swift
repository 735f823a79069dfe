//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GPC_INVALIDATED events: conversion and discard under live GPCs, on this or another connection.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// An attribute flip or a discard while a GPC is live (failure cases 4 and 5): the GPC is invalidated, its owner is
/// told by an event (when it asked for EVENTS), later accesses are `-ESTALE`, and GPC_REFRESH revives it.
@Suite("Invalidation events")
struct InvalidationEventTests {
    /// Receives the next frame and requires it to be a GPC_INVALIDATED event for `handle` with `reason`.
    private func expectEvent(
        on connection: RawConnection,
        handle: UInt64,
        reason: InvalidationReason,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let frame = try #require(
            try connection.receiveFrame(),
            "closed instead of an event",
            sourceLocation: sourceLocation
        )
        let event = try RawConnection.validated(frame.header, frame.payload)
        #expect(event.isEvent, "expected an event, got \(frame.header)", sourceLocation: sourceLocation)
        #expect(frame.header.opcode == .gpcInvalidated, sourceLocation: sourceLocation)
        #expect(
            frame.header.flags == .event && frame.header.id == 0 && frame.header.status == 0,
            sourceLocation: sourceLocation
        )
        let payload = try event.decodePayload(as: GpcInvalidatedEvent.self)
        #expect(payload.handle == handle, sourceLocation: sourceLocation)
        #expect(payload.reason == reason, sourceLocation: sourceLocation)
    }

    @Test("a conversion by another connection invalidates the GPC: event, -ESTALE, refresh revives it")
    func conversionByAnotherConnection() throws {
        let session = try Session()
        let owner = try session.connect(features: .events)
        let converter = session.connection
        let gpa: UInt64 = 0x6000
        let handle = try owner.activateGpc(gpa: gpa + 8, length: 32)
        try expectPages([gpa: 1], in: session.daemon, probe: converter)

        #expect(try converter.setAttributes(gpa: gpa, size: pageSize, attributes: 0).isSuccess)
        try self.expectEvent(on: owner, handle: handle, reason: .attributesChanged)
        #expect(try owner.gpcRead(handle: handle, length: 8).isError(.stale))
        #expect(try owner.gpcWrite(handle: handle, data: [1]).isError(.stale))
        // The invalidated GPC dropped its reference at once; a shared page is mapped regardless.
        let shared = try converter.pageState(at: gpa)
        #expect(!shared.isPrivate && shared.isAccessible && shared.refcount == 0)

        #expect(try owner.gpcRefresh(handle: handle, gpa: gpa + 8, length: 32).isSuccess)
        #expect(try owner.gpcWrite(handle: handle, data: [4, 5, 6]).isSuccess)
        #expect(try owner.gpcRead(handle: handle, length: 3).payload == [4, 5, 6])
        #expect(try converter.pageState(at: gpa).refcount == 1)

        // Back to private: invalidated again, and with no reference left the page is unmapped.
        #expect(try converter.setAttributes(gpa: gpa, size: pageSize, attributes: 8).isSuccess)
        try self.expectEvent(on: owner, handle: handle, reason: .attributesChanged)
        try expectPages([gpa: 0], in: session.daemon, probe: converter)
        #expect(try owner.gpcDeactivate(handle: handle).isSuccess)
        #expect(owner.events.isEmpty)
    }

    @Test("a conversion on the GPC's own connection: the event arrives before the SET_ATTRIBUTES reply")
    func conversionOnOwnConnection() throws {
        let session = try Session(features: .events)
        let connection = session.connection
        let first = try connection.activateGpc(gpa: 0x3000, length: 16)
        let second = try connection.activateGpc(gpa: 0x4000, length: 16)
        let untouched = try connection.activateGpc(gpa: 0x5000, length: 16)
        try connection.sendFrame(
            opcode: .setAttributes,
            id: 4242,
            payload: Payload.setAttributes(gpa: 0x3000, size: 2 * pageSize, attributes: 0)
        )

        var invalidated: Set<UInt64> = []
        for _ in 0..<2 {
            let frame = try #require(try connection.receiveFrame())
            #expect(frame.header.flags == .event, "expected an event before the reply, got \(frame.header)")
            guard frame.header.flags == .event else { break }
            let event = try GpcInvalidatedEvent(decoding: frame.payload)
            #expect(event.reason == .attributesChanged)
            invalidated.insert(event.handle)
        }
        #expect(invalidated == [first, second])
        let reply = try #require(try connection.receiveFrame())
        #expect(reply.header.opcode == .setAttributes && reply.header.id == 4242 && reply.header.flags == .reply)
        #expect(reply.header.status == 0)
        #expect(try connection.gpcRead(handle: untouched, length: 16).isSuccess)
        #expect(try connection.gpcRead(handle: first, length: 16).isError(.stale))
        #expect(connection.events.isEmpty, "no further events: \(connection.events)")
    }

    @Test("a DISCARD invalidates with reason 2 and the contents read back as zeros")
    func discard() throws {
        let session = try Session()
        let owner = try session.connect(features: .events)
        let discarder = session.connection
        let gpa: UInt64 = 0xa000
        try owner.writeBytes(gpa: gpa, data: Payload.pattern(Int(pageSize), seed: 8))
        let handle = try owner.activateGpc(gpa: gpa + 100, length: 200)
        #expect(
            try owner.gpcRead(handle: handle, length: 4).payload
                == Array(Payload.pattern(Int(pageSize), seed: 8)[100..<104])
        )

        #expect(try discarder.discard(gpa: gpa, size: pageSize).isSuccess)
        try self.expectEvent(on: owner, handle: handle, reason: .discarded)
        #expect(try owner.gpcRead(handle: handle, length: 8).isError(.stale))
        #expect(try owner.gpcRefresh(handle: handle, gpa: gpa + 100, length: 200).isSuccess)
        #expect(try owner.gpcRead(handle: handle, length: 200).payload == [UInt8](repeating: 0, count: 200))
        #expect(try discarder.readBytes(gpa: gpa, length: UInt32(pageSize)).allSatisfy { $0 == 0 })
        // The discard kept the page private; the refreshed GPC holds it mapped.
        try expectPages([gpa: 1], in: session.daemon, probe: discarder)
        #expect(try discarder.pageState(at: gpa).isPrivate)
    }

    @Test("a connection without EVENTS gets no event frame, only -ESTALE")
    func noEventsWithoutTheFeature() throws {
        let session = try Session()
        let owner = try session.connect()
        let handle = try owner.activateGpc(gpa: 0xb000, length: 8)
        #expect(try session.connection.discard(gpa: 0xb000, size: pageSize).isSuccess)
        #expect(try session.connection.setAttributes(gpa: 0xb000, size: pageSize, attributes: 0).isSuccess)
        // A PING round trip: any event would have been queued before its reply.
        try owner.requirePing()
        #expect(owner.events.isEmpty)
        #expect(try owner.gpcRead(handle: handle, length: 8).isError(.stale))
        #expect(owner.events.isEmpty)
        #expect(try statistic("gpc_invalidations", of: session.connection) == 1)
    }

    @Test("events for several connections' GPCs on one page, each to its owner")
    func eventsFanOut() throws {
        let session = try Session()
        var owners: [(RawConnection, UInt64)] = []
        for index in 0..<4 {
            let connection = try session.connect(features: .events)
            owners.append((connection, try connection.activateGpc(gpa: 0xc000 + UInt64(index) * 32, length: 32)))
        }
        try expectPages([0xc000: 4], in: session.daemon, probe: session.connection)
        #expect(try session.connection.setAttributes(gpa: 0xc000, size: pageSize, attributes: 0).isSuccess)
        for (connection, handle) in owners {
            try self.expectEvent(on: connection, handle: handle, reason: .attributesChanged)
        }
        #expect(try session.connection.pageState(at: 0xc000).refcount == 0)
    }

    @Test("a conversion that changes no page's attribute invalidates nothing")
    func noOpConversion() throws {
        let session = try Session()
        let owner = try session.connect(features: .events)
        let handle = try owner.activateGpc(gpa: 0xd000, length: 8)
        // The page is private already; the range also covers a page that does change.
        #expect(try session.connection.setAttributes(gpa: 0xd000, size: pageSize, attributes: 8).isSuccess)
        #expect(try session.connection.setAttributes(gpa: 0xe000, size: pageSize, attributes: 0).isSuccess)
        #expect(try session.connection.setAttributes(gpa: 0xd000, size: 2 * pageSize, attributes: 0).isSuccess)
        try self.expectEvent(on: owner, handle: handle, reason: .attributesChanged)
        #expect(try owner.gpcRefresh(handle: handle, gpa: 0xd000, length: 8).isSuccess)
        // Shared to shared: no change, the refreshed GPC stays valid and no event comes.
        #expect(try session.connection.setAttributes(gpa: 0xd000, size: pageSize, attributes: 0).isSuccess)
        try owner.requirePing()
        #expect(owner.events.isEmpty, "unexpected events: \(owner.events)")
        #expect(try owner.gpcRead(handle: handle, length: 8).isSuccess)
        #expect(try statistic("gpc_invalidations", of: session.connection) == 1)
    }

    @Test("a DISCARD of a shared page invalidates its GPCs, zeroes it and leaves it shared and mapped")
    func discardShared() throws {
        let session = try Session()
        let owner = try session.connect(features: .events)
        let gpa: UInt64 = 0xf000
        #expect(try owner.setAttributes(gpa: gpa, size: 2 * pageSize, attributes: 0).isSuccess)
        try owner.writeBytes(gpa: gpa, data: Payload.pattern(Int(2 * pageSize), seed: 4))
        let handle = try owner.activateGpc(gpa: gpa + pageSize, length: 16)
        #expect(try session.connection.discard(gpa: gpa, size: 2 * pageSize).isSuccess)
        try self.expectEvent(on: owner, handle: handle, reason: .discarded)
        #expect(try owner.readBytes(gpa: gpa, length: UInt32(2 * pageSize)).allSatisfy { $0 == 0 })
        let states = try owner.pageStates(gpa: gpa, count: 2)
        #expect(states.allSatisfy { !$0.isPrivate && $0.isAccessible && $0.refcount == 0 })
        let first = Int(gpa / pageSize)
        #expect(
            try session.daemon.mapsProtections(ofRegionIn: first..<(first + 2)).allSatisfy { $0 == .readWriteShared }
        )
    }
}
