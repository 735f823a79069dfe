//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The model-based walk's operations over a ring, with the same outcomes as over the socket.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Testing

extension ModelBasedTests {
    /// READ over `ring`; the bytes, which must arrive.
    static func ringRead(_ ring: RawRing, gpa: UInt64, length: Int) throws -> [UInt8] {
        let completion = try ring.call(.read(cookie: gpa, gpa: gpa, length: UInt32(length), data: 0))
        guard completion.status == 0, completion.length == length else {
            throw GmemTestingError.protocolViolation("ring READ: \(completion)")
        }
        return ring.loadData(at: 0, count: length)
    }

    /// WRITE over `ring`, which must succeed.
    static func ringWrite(_ ring: RawRing, gpa: UInt64, data: [UInt8]) throws {
        ring.storeData(data, at: 0)
        let completion = try ring.call(.write(cookie: gpa, gpa: gpa, length: UInt32(data.count), data: 0))
        guard completion.status == 0, completion.length == data.count else {
            throw GmemTestingError.protocolViolation("ring WRITE: \(completion)")
        }
    }

    /// GPC_READ over `ring`: the status and, on success, the bytes.
    static func ringGpcRead(_ ring: RawRing, handle: UInt64, length: Int) throws -> (status: Int32, data: [UInt8]) {
        let completion = try ring.call(
            .gpcRead(cookie: handle, handle: handle, offset: 0, length: UInt32(length), data: 0)
        )
        return (completion.status, completion.status == 0 ? ring.loadData(at: 0, count: length) : [])
    }

    /// GPC_WRITE over `ring`: the status.
    static func ringGpcWrite(_ ring: RawRing, handle: UInt64, data: [UInt8]) throws -> Int32 {
        ring.storeData(data, at: 0)
        return try ring.call(.gpcWrite(cookie: handle, handle: handle, offset: 0, length: UInt32(data.count), data: 0))
            .status
    }

    /// Waits (up to a second) until the touched pages' counts are the model's: a ring releases the pages of its
    /// last entries on its next idle pass. A count that never settles is then reported by the strict check.
    static func waitForIdleRings(_ model: RegionModel, probe: RawConnection, touched: [Range<Int>]) throws {
        let counts = model.refcounts()
        try? waitUntil("the rings' idle passes", timeout: .seconds(1), interval: .milliseconds(1)) {
            for pages in touched {
                let states = try probe.pageStates(gpa: UInt64(pages.lowerBound) * pageSize, count: UInt32(pages.count))
                for page in pages where Int(states[page - pages.lowerBound].refcount) != counts[page] { return false }
            }
            return true
        }
    }
}

extension ReplyFrame {
    /// The status, and the payload of a success.
    var statusAndPayload: (status: Int32, payload: [UInt8]) {
        (self.header.status, self.header.status == 0 ? self.payload : [])
    }
}
