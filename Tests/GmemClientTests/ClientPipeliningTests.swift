//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// End-to-end tests of pipelining and of splitting large transfers.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import NIOCore
import Synchronization
import Testing

@testable import GmemClient

@Suite("GmemClient pipelining", .timeLimit(.minutes(1)))
struct ClientPipeliningTests {
    /// The 64 bytes test `index` writes: distinct per index.
    private static func pattern(_ index: Int) -> [UInt8] {
        (0..<64).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0 &* 7 &+ 1) }
    }

    @Test("1000 concurrent writes, then 1000 concurrent reads on distinct ranges")
    func thousandConcurrentRequests() async throws {
        try await withClient { client, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<1000 {
                    group.addTask { try await client.write(at: UInt64(index) * 64, bytes: Self.pattern(index)) }
                }
                try await group.waitForAll()
            }
            let reads = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for index in 0..<1000 {
                    group.addTask { (index, try await client.read(at: UInt64(index) * 64, count: 64)) }
                }
                return try await group.reduce(into: [Int: [UInt8]]()) { $0[$1.0] = $1.1 }
            }
            #expect(reads.count == 1000)
            for index in 0..<1000 {
                #expect(reads[index] == Self.pattern(index), "range \(index)")
            }
            let stats = try await client.stats()
            #expect((stats["writes"] ?? 0) >= 1000)
            #expect((stats["reads"] ?? 0) >= 1000)
        }
    }

    @Test("1000 requests in one flush complete in request order, and each sees the writes before it")
    func oneFlushInOrder() async throws {
        try await withClient { client, _ in
            // WRITE i then READ i on the same 8 bytes, 500 times, all in one batch: each READ must observe the
            // WRITE right before it (requests take effect in order), and replies must complete in order.
            var requests: [OutgoingRequest] = []
            for index in 0..<500 {
                let bytes = (0..<8).map { UInt8(truncatingIfNeeded: index &+ $0) }
                try bytes.withUnsafeBytes { requests.append(try client.makeRequest(.write(gpa: 0x8000, data: $0))) }
                requests.append(try client.makeRequest(.read(gpa: 0x8000, length: 8)))
            }
            let order = Mutex<[Int]>([])
            let futures = client.submit(requests)
            for (position, future) in futures.enumerated() {
                future.whenComplete { _ in order.withLock { $0.append(position) } }
            }
            for (position, future) in futures.enumerated() {
                let frame = try await future.get()
                #expect(frame.isSuccess)
                if position % 2 == 1 {
                    let index = position / 2
                    #expect(frame.payload == (0..<8).map { UInt8(truncatingIfNeeded: index &+ $0) })
                } else {
                    #expect(frame.payload.isEmpty)
                }
            }
            #expect(order.withLock { $0 } == Array(0..<1000))
        }
    }

    @Test("READ and WRITE larger than max_payload are split, pipelined and reassembled")
    func splitTransfers() async throws {
        try await withClient(["--max-payload", "4K"]) { client, _ in
            var generator = SystemRandomNumberGenerator()
            let data = (0..<40_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let before = try await client.stats()
            try await client.write(at: 0x3001, bytes: data)
            let back = try await client.read(at: 0x3001, count: data.count)
            let after = try await client.stats()
            #expect(back == data)
            // WRITE chunks carry max_payload - 16 = 4080 bytes, READ chunks 4096.
            #expect((after["writes"] ?? 0) - (before["writes"] ?? 0) == 10)
            #expect((after["reads"] ?? 0) - (before["reads"] ?? 0) == 10)
            // An exact multiple, and a single byte, go through too.
            try await client.write(at: 0, bytes: Array(data[0..<8160]))
            #expect(try await client.read(at: 0, count: 8192)[0..<8160] == data[0..<8160])
            #expect(try await client.read(at: 5, count: 1) == [data[5]])
            #expect(try await client.read(at: 5, count: 0) == [])

            let states = try await client.pageStates(at: 0, count: 2048)
            #expect(states.count == 2048)
            #expect(states.allSatisfy { $0.isPrivate })
        }
    }

    @Test("a multi-megabyte transfer with the default max_payload")
    func megabytes() async throws {
        try await withClient { client, _ in
            let count = (5 << 20) / 2 + 123
            let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            try await client.write(at: 0x10_0000, bytes: data)
            #expect(try await client.read(at: 0x10_0000, count: count) == data)
        }
    }
}
