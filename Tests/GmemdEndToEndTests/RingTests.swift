//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The ring transport against the real gmemd: setup, every operation, the error rules, the doorbells, and hostile
// or dying clients (PROTOCOL.md sections 5.18, 5.19 and 10).
//
//===----------------------------------------------------------------------===//

import CGmemSys
import GmemProtocol
import GmemTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Rings")
struct RingTests {
    @Test("RING_SETUP hands over a sealed memfd with the header of section 10.1 and two eventfds")
    func setup() throws {
        let session = try Session(features: [.events, .rings])
        #expect(session.hello.features.contains(.rings))
        let ring = try session.connection.ring(entries: 64, dataSize: 1 << 20)
        #expect(ring.ringID == 1)
        let base = ring.shared.base
        #expect(base.load(fromByteOffset: RingLayout.Offset.magic, as: UInt32.self) == RingLayout.magic)
        #expect(base.load(fromByteOffset: RingLayout.Offset.version, as: UInt32.self) == 1)
        #expect(base.load(fromByteOffset: RingLayout.Offset.entries, as: UInt32.self) == 64)
        #expect(base.load(fromByteOffset: RingLayout.Offset.dataArea, as: UInt64.self) == 0x3000)
        #expect(ring.layout.mappingSize == 0x10_3000)
        // The client cannot shrink it under gmemd's mapping.
        let seals = cgmem_get_seals(ring.memfd)
        #expect(seals & CGMEM_F_SEAL_SHRINK != 0 && seals & CGMEM_F_SEAL_GROW != 0 && seals & CGMEM_F_SEAL_SEAL != 0)
        #expect(ftruncate(ring.memfd, 4096) != 0)
        // Descriptors arrive only with RING_SETUP's reply; the replies before and after it keep their order.
        try session.connection.requirePing()
        #expect(session.connection.receivedDescriptors.isEmpty)
        #expect(try session.connection.ring(entries: 1, dataSize: 4096).ringID == 2)
    }

    @Test("RING_SETUP and RING_CLOSE error rules: sizes, the per-connection limit, unknown ids")
    func setupErrors() throws {
        let session = try Session(arguments: ["--max-rings", "2"])
        let connection = session.connection
        for (entries, size) in [(0, 4096), (3, 4096), (8192, 4096), (64, 0), (64, 100), (64, (64 << 20) + 4096)] {
            let reply = try connection.ringSetupReply(entries: UInt32(entries), dataSize: UInt64(size))
            #expect(reply.errno == .invalidArgument, "entries \(entries), data_size \(size)")
        }
        let first = try connection.ring(entries: 1, dataSize: 4096)
        _ = try connection.ring(entries: 1, dataSize: 4096)
        #expect(try connection.ringSetupReply(entries: 1, dataSize: 4096).errno == .noSpace)
        #expect(try connection.ringClose(99).errno == .noSuchEntry)
        try connection.ringClose(first.ringID).requireSuccess()
        #expect(try connection.ringClose(first.ringID).errno == .noSuchEntry)
        // Room again for one.
        _ = try connection.ring(entries: 1, dataSize: 4096)
        #expect(connection.receivedDescriptors.isEmpty)
    }

    @Test("every data-path operation over a ring gives what the socket gives", arguments: [50, 0])
    func operations(pollMicroseconds: Int) throws {
        let session = try Session(arguments: ["--ring-poll-us", String(pollMicroseconds)])
        let connection = session.connection
        let ring = try connection.ring(entries: 16, dataSize: 1 << 16)
        let pattern = Array((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })
        ring.storeData(pattern, at: 0)

        let write = try ring.call(.write(cookie: 1, gpa: 0x1_0ff0, length: 300, data: 0))
        #expect(write == RingCompletion(cookie: 1, status: 0, length: 300))
        #expect(try connection.readBytes(gpa: 0x1_0ff0, length: 300) == pattern)
        let read = try ring.call(.read(cookie: 2, gpa: 0x1_0ff0, length: 300, data: 4096))
        #expect(read.status == 0 && read.length == 300)
        #expect(ring.loadData(at: 4096, count: 300) == pattern)
        #expect(try ring.call(.ping(cookie: 3)) == RingCompletion(cookie: 3, status: 0))

        // READV and WRITEV: the table and the bytes in the data area.
        let segments = [WireSegment(gpa: 0x2_0000, length: 3), WireSegment(gpa: 0x3_0000, length: 5)]
        ring.storeSegmentTable(segments, at: 8192)
        ring.storeData([1, 2, 3, 4, 5, 6, 7, 8], at: 9000)
        let writev = try ring.call(.vector(.writev, cookie: 4, segments: 2, table: 8192, data: 9000))
        #expect(writev.status == 0 && writev.length == 8)
        #expect(try connection.readvBytes(segments) == [1, 2, 3, 4, 5, 6, 7, 8])
        let readv = try ring.call(.vector(.readv, cookie: 5, segments: 2, table: 8192, data: 10000))
        #expect(readv.status == 0 && readv.length == 8)
        #expect(ring.loadData(at: 10000, count: 8) == [1, 2, 3, 4, 5, 6, 7, 8])

        // Atomics by address and through a GPC activated on the socket.
        let add = AtomicArguments(op: .fetchAdd, width: 8, operand: 5)
        #expect(try ring.call(.atomic(cookie: 6, gpa: 0x4000, add)).value == 0)
        #expect(try ring.call(.atomic(cookie: 7, gpa: 0x4000, add)).value == 5)
        #expect(try connection.atomicValue(gpa: 0x4000, AtomicArguments(op: .load, width: 8)) == 10)
        let handle = try connection.activateGpc(gpa: 0x4000, length: 64)
        let exchange = AtomicArguments(op: .compareExchange, width: 8, operand: 99, expected: 10)
        #expect(try ring.call(.gpcAtomic(cookie: 8, handle: handle, offset: 0, exchange)).value == 10)
        ring.storeData([0xaa, 0xbb], at: 12000)
        #expect(try ring.call(.gpcWrite(cookie: 9, handle: handle, offset: 8, length: 2, data: 12000)).status == 0)
        let gpcRead = try ring.call(.gpcRead(cookie: 10, handle: handle, offset: 0, length: 10, data: 13000))
        #expect(gpcRead.status == 0 && gpcRead.length == 10)
        #expect(ring.loadData(at: 13000, count: 10) == [99, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb])

        // Nothing stays held once the ring is idle: every page is back to refcount 0 but the GPC's.
        try waitUntil("the idle ring to release its pages") {
            try connection.pageStates(gpa: 0x1_0000, count: 2).allSatisfy { $0.refcount == 0 }
        }
        try expectPages(
            [0x1_0000: 0, 0x1_1000: 0, 0x2_0000: 0, 0x3_0000: 0, 0x4000: 1],
            in: session.daemon,
            probe: connection
        )
        if pollMicroseconds == 0 { #expect(ring.doorbellsRung > 0, "doorbell-only mode never rang the doorbell") }
    }

    @Test("entry errors follow section 10.4, then the socket's rules; -ESTALE after a conversion, as on the socket")
    func entryErrors() throws {
        let session = try Session(arguments: ["--size", "4M", "--max-payload", "64K"], features: [.events])
        let connection = session.connection
        let ring = try connection.ring(entries: 8, dataSize: 1 << 20)
        var control = RingSubmission(cookie: 1, opcode: .gpcActivate)
        control.address = 0x1000
        var flagged = RingSubmission.ping(cookie: 2)
        flagged.flags = 1
        var unused = RingSubmission.read(cookie: 3, gpa: 0, length: 8, data: 0)
        unused.operand = 1
        var badWidth = RingSubmission.atomic(cookie: 4, gpa: 0, AtomicArguments(op: .load, width: 8))
        badWidth.width = 3
        let cases: [(RingSubmission, Errno)] = [
            (control, .operationNotSupported),
            (flagged, .invalidArgument),
            (unused, .invalidArgument),
            (badWidth, .invalidArgument),
            (.read(cookie: 5, gpa: 0, length: 16, data: (1 << 20) - 8), .invalidArgument),
            (.vector(.readv, cookie: 6, segments: 0, table: 0, data: 0), .invalidArgument),
            (.vector(.readv, cookie: 7, segments: 1025, table: 0, data: 0), .invalidArgument),
            (.read(cookie: 8, gpa: 0, length: 128 << 10, data: 0), .messageTooLong),
            (.write(cookie: 9, gpa: 0, length: 128 << 10, data: 0), .messageTooLong),
            (.read(cookie: 10, gpa: (4 << 20) - 4, length: 8, data: 0), .badAddress),
            (.gpcRead(cookie: 11, handle: 77, offset: 0, length: 8, data: 0), .noSuchEntry),
            (.atomic(cookie: 12, gpa: 0x1001, AtomicArguments(op: .load, width: 8)), .invalidArgument),
        ]
        for (entry, errno) in cases {
            let completion = try ring.call(entry)
            #expect(completion.cookie == entry.cookie)
            #expect(completion.status == -errno.rawValue, "cookie \(entry.cookie): \(completion.status)")
        }
        // A conversion on the socket invalidates the GPC: -ESTALE on the ring, the event on the socket.
        let handle = try connection.activateGpc(gpa: 0x2000, length: 8)
        #expect(try ring.call(.gpcRead(cookie: 20, handle: handle, offset: 0, length: 8, data: 0)).status == 0)
        try connection.setAttributes(gpa: 0x2000, size: pageSize, attributes: 0).requireSuccess()
        #expect(connection.events.contains { $0.header.opcode == .gpcInvalidated })
        let stale = try ring.call(.gpcRead(cookie: 21, handle: handle, offset: 0, length: 8, data: 0))
        #expect(stale.status == -Errno.stale.rawValue)
    }

    @Test("a read-only connection's ring refuses modifying entries with -EPERM and serves the others")
    func readOnly() throws {
        let session = try Session(arguments: ["--read-only-gid", String(getgid())])
        let ring = try session.connection.ring(entries: 4, dataSize: 4096)
        #expect(try ring.call(.write(cookie: 1, gpa: 0, length: 8, data: 0)).status == -Errno.notPermitted.rawValue)
        let store = AtomicArguments(op: .store, width: 4, operand: 1)
        #expect(try ring.call(.atomic(cookie: 2, gpa: 0, store)).status == -Errno.notPermitted.rawValue)
        #expect(try ring.call(.read(cookie: 3, gpa: 0, length: 8, data: 0)).status == 0)
    }

    @Test("a 16-segment READV over 16 contiguous private pages costs at most 2 protection calls on a ring too (R3)")
    func sixteenSegmentChain() throws {
        let session = try Session()
        let ring = try session.connection.ring(entries: 4, dataSize: 1 << 16)
        let chain = (0..<16).map { WireSegment(gpa: 0x10_0000 + UInt64($0) * pageSize + 64, length: 128) }
        ring.storeSegmentTable(chain, at: 0)
        let before = try statistic("protect_calls", of: session.connection)
        #expect(try ring.call(.vector(.readv, cookie: 1, segments: 16, table: 0, data: 4096)).length == 16 * 128)
        // With nothing else in flight, the pass released the pages before it published the completion (10.5).
        #expect(try session.connection.pageStates(gpa: 0x10_0000, count: 16).allSatisfy { $0.refcount == 0 })
        let after = try statistic("protect_calls", of: session.connection)
        #expect(after - before == 2, "\(after - before) protection calls")
    }

    @Test("corrupt indices end the connection with RING_FAILED (-EPROTO); another client is served on")
    func corruptIndices() throws {
        let session = try Session(features: [.events])
        let other = try session.connect()
        let otherRing = try other.ring(entries: 4, dataSize: 4096)
        let ring = try session.connection.ring(entries: 4, dataSize: 4096)
        // sq_tail 1000 entries ahead of sq_head: impossible with 4 slots.
        ring.shared.storeRelease(1000, at: RingLayout.Offset.submissionTail)
        var one: UInt64 = 1
        _ = write(ring.submitDoorbell, &one, 8)
        let frame = try #require(try session.connection.receiveFrame(timeout: .seconds(5)))
        #expect(frame.header.opcode == .ringFailed)
        let event = try frame.payload.withUnsafeBytes { try RingFailedEvent(decoding: $0) }
        #expect(event == RingFailedEvent(ringID: ring.ringID, status: -Errno.protocolError.rawValue))
        try session.connection.expectClosed()
        #expect(try otherRing.call(.ping(cookie: 5)).status == 0)
        try other.requirePing()
    }

    @Test("a client that stops consuming completions stalls only its own ring; its entries finish once it does")
    func fullCompletionQueue() throws {
        let session = try Session(arguments: ["--ring-poll-us", "0"])
        let ring = try session.connection.ring(entries: 2, dataSize: 4096)
        let other = try session.connection.ring(entries: 2, dataSize: 4096)
        // Two completions fill the queue; the next two entries wait in the submission queue.
        ring.submit([.ping(cookie: 1), .ping(cookie: 2)])
        try waitUntil("the first completions", timeout: .seconds(5)) {
            ring.shared.loadAcquire(RingLayout.Offset.completionTail) == 2
        }
        ring.submit([.ping(cookie: 3), .ping(cookie: 4)])
        #expect(try other.call(.ping(cookie: 9)).status == 0)
        #expect(ring.shared.loadAcquire(RingLayout.Offset.completionTail) == 2)
        #expect(try ring.complete(4).map(\.cookie) == [1, 2, 3, 4])
    }

    @Test("closing a connection with entries in flight releases every reference its rings held")
    func closeWithEntriesInFlight() throws {
        let session = try Session()
        let probe = try session.connect()
        let client = try session.connect()
        let ring = try client.ring(entries: 64, dataSize: 1 << 20)
        let reads = (0..<64).map {
            RingSubmission.read(
                cookie: UInt64($0),
                gpa: 0x40_0000 + UInt64($0 % 8) * pageSize,
                length: 4096,
                data: UInt64($0) * 4096
            )
        }
        ring.submit(reads)
        client.close()
        ring.close()
        try waitUntil("the ring to be finished", timeout: .seconds(5)) {
            try statistic("rings_active", of: probe) == 0
        }
        try expectPages(
            Dictionary(uniqueKeysWithValues: (0..<8).map { (0x40_0000 + UInt64($0) * pageSize, UInt16(0)) }),
            in: session.daemon,
            probe: probe
        )
    }

    @Test("a client gone before it reads RING_SETUP's reply leaves no ring, descriptor or reference behind")
    func closeBeforeSetupReply() throws {
        let session = try Session()
        let probe = try session.connect()
        // The first ring starts the poller threads, with their own epoll and eventfd: count after that.
        try probe.ringClose(try probe.ring(entries: 1, dataSize: 4096).ringID).requireSuccess()
        try waitUntil("the first ring to be finished", timeout: .seconds(10)) {
            try statistic("rings_active", of: probe) == 0
        }
        let before = try session.daemon.openDescriptorCount()
        for _ in 0..<5 {
            let client = try session.connect()
            // 240 KiB of replies the client never reads, ahead of RING_SETUP's in the same batch (under the
            // 256 KiB that would pause dispatch, over what the socket takes): its descriptors wait for them.
            var bytes: [UInt8] = []
            for id in 1...15 { bytes += try Request.read(gpa: 0x40_0000, length: 16384).encoded(id: UInt32(id)) }
            bytes += try Request.ringSetup(entries: 64, dataSize: 1 << 20).encoded(id: 16)
            try client.send(bytes)
            try waitUntil("RING_SETUP to be dispatched", timeout: .seconds(10)) {
                try statistic("rings_active", of: probe) == 1
            }
            client.close()
            try waitUntil("the ring to be finished", timeout: .seconds(10)) {
                try statistic("rings_active", of: probe) == 0
            }
        }
        try waitUntil("every client to be gone", timeout: .seconds(10)) {
            try statistic("connections", of: probe) == 2
        }
        let after = try session.daemon.openDescriptorCount()
        #expect(after == before, "gmemd had \(before) descriptors before, \(after) after")
        try expectPages([0x40_0000: 0], in: session.daemon, probe: probe)
    }
}
