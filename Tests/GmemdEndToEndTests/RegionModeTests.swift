//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Region modes: large folios, --direct-map, and conversions large enough to leave the event loop.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

/// The daemon's configuration options that change how pages are backed and protected.
@Suite("Region modes")
struct RegionModeTests {
    @Test("with 64 KiB folios, every page of a folio is restored and zapped, not just the first")
    func largeFolios() throws {
        let session = try Session(arguments: ["--folio-size", "64K"])
        #expect(session.hello.folioSize == 64 << 10)
        #expect(UInt64(session.hello.pageSize) == pageSize)
        let connection = session.connection
        let folio: UInt64 = 64 << 10
        // Accesses across a whole folio and into the next one (failure case 7).
        let data = Payload.pattern(Int(folio) + 3 * Int(pageSize), seed: 21)
        try connection.writeBytes(gpa: folio - pageSize, data: data)
        #expect(try connection.readBytes(gpa: folio - pageSize, length: UInt32(data.count)) == data)

        // A GPC on a tail page maps that page and only that page.
        let tail = 2 * folio - pageSize
        let handle = try connection.activateGpc(gpa: tail + 16, length: 32)
        #expect(
            try connection.gpcRead(handle: handle, length: 32).payload
                == Array(data[Int(tail - (folio - pageSize)) + 16..<Int(tail - (folio - pageSize)) + 48])
        )
        let first = Int(folio / pageSize)
        let count = Int(folio / pageSize)
        let mapped = try session.daemon.mapsProtections(ofRegionIn: first..<(first + count))
        let states = try connection.pageStates(gpa: folio, count: UInt32(count))
        for index in 0..<count {
            let isTail = index == count - 1
            #expect(mapped[index].isAccessible == isTail, "page \(first + index): \(mapped[index])")
            #expect(states[index].isAccessible == isTail && states[index].refcount == (isTail ? 1 : 0))
        }
        try connection.deactivateGpc(handle)
        #expect(try session.daemon.mapsProtections(ofRegionIn: first..<(first + count)).allSatisfy { !$0.isAccessible })
    }

    @Test("--direct-map keeps every page accessible while still counting references")
    func directMap() throws {
        let session = try Session(arguments: ["--direct-map"])
        #expect(!session.hello.regionFlags.contains(.noDirectMap))
        let connection = session.connection
        let states = try connection.pageStates(gpa: 0, count: 8)
        #expect(states.allSatisfy { $0.isPrivate && $0.isAccessible && $0.refcount == 0 })
        #expect(try session.daemon.mapsProtections(ofRegionIn: 0..<8).allSatisfy { $0 == .readWriteShared })
        let handle = try connection.activateGpc(gpa: 0x3000, length: 8)
        #expect(try connection.pageState(at: 0x3000).refcount == 1)
        try connection.deactivateGpc(handle)
        let after = try connection.pageState(at: 0x3000)
        #expect(after.refcount == 0 && after.isAccessible)
        #expect(try session.daemon.mapsProtection(ofPageAt: 0x3000) == .readWriteShared)
    }

    @Test("a conversion larger than the offload threshold keeps replies in order and other clients served")
    func offloadedConversion() throws {
        // 256 MiB: above the 64 MiB threshold at which a conversion runs on the thread pool.
        let daemon = try DaemonProcess.start(size: "256M")
        let converter = try daemon.connectWithHello(features: .events)
        let bystander = try daemon.connectWithHello(features: .events)
        let size: UInt64 = 256 << 20
        let mine = try converter.activateGpc(gpa: 0x1000, length: 8)
        let theirs = try bystander.activateGpc(gpa: size - pageSize, length: 8)

        var bytes = RawConnection.frame(
            opcode: .setAttributes,
            id: 1,
            payload: Payload.setAttributes(gpa: 0, size: size, attributes: 0)
        )
        bytes += RawConnection.frame(opcode: .ping, id: 2, payload: [2])
        bytes += RawConnection.frame(
            opcode: .pageState,
            id: 3,
            payload: Payload.pageState(gpa: size - pageSize, pages: 1)
        )
        try converter.send(bytes)
        try bystander.requirePing()

        // On the converting connection: its own GPC's event, then the replies in request order.
        let event = try #require(try converter.receiveFrame(timeout: .seconds(20)))
        #expect(event.header.flags == .event, "expected the event first, got \(event.header)")
        if event.header.flags == .event {
            #expect(
                try GpcInvalidatedEvent(decoding: event.payload)
                    == GpcInvalidatedEvent(handle: mine, reason: .attributesChanged)
            )
        }
        for id in UInt32(1)...3 {
            let reply = try #require(try converter.receiveFrame(timeout: .seconds(20)))
            #expect(reply.header.id == id && reply.header.status == 0, "got \(reply.header)")
            if id == 3 {
                let state = try PageStateReply(decoding: reply.payload).entries.first
                #expect(state?.isPrivate == false && state?.isAccessible == true)
            }
        }
        // The bystander's event may have arrived during its PING already.
        let other: [UInt8]
        if let early = bystander.takeEvents().first {
            other = early.payload
        } else {
            let frame = try #require(try bystander.receiveFrame(timeout: .seconds(5)))
            #expect(frame.header.flags == .event)
            other = frame.payload
        }
        #expect(
            try GpcInvalidatedEvent(decoding: other) == GpcInvalidatedEvent(handle: theirs, reason: .attributesChanged)
        )
    }
}
