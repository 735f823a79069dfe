import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

// MARK: Requests

/// A tiny xorshift64* generator: deterministic per connection, no locks.
struct FastRandom {
    var state: UInt64
    init(seed: UInt64) { self.state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    @inline(__always)
    mutating func next() -> UInt64 {
        self.state ^= self.state >> 12
        self.state ^= self.state << 25
        self.state ^= self.state >> 27
        return self.state &* 0x2545_F491_4F6C_DD1D
    }
    @inline(__always)
    mutating func next(below bound: UInt64) -> UInt64 { bound <= 1 ? 0 : self.next() % bound }
}

/// Produces the requests of one connection.
struct RequestPlan {
    let operation: Operation
    let payload: Int
    let pattern: AccessPattern
    let pageSize: UInt64
    let pageCount: UInt64
    let hotGPA: UInt64
    let data: [UInt8]
    var random: FastRandom
    var cursor: UInt64
    var handles: [UInt64] = []
    var handleCursor = 0

    /// Checks the spec against the HELLO reply and, for GPC operations, activates this connection's caches.
    init(spec: LoadSpec, index: Int, connection: PipelinedConnection) throws {
        let hello = connection.hello
        self.operation = spec.operation
        self.payload = spec.payload
        self.pattern = spec.pattern
        self.pageSize = UInt64(hello.pageSize)
        self.pageCount = hello.regionSize / UInt64(hello.pageSize)
        self.hotGPA = spec.hotPage * self.pageSize
        self.data = (0..<spec.payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
        self.random = FastRandom(seed: 0x5EED_0000 &+ UInt64(index) &* 0x1_0000_0001)
        self.cursor = self.pageCount / UInt64(max(spec.connections, 1)) * UInt64(index) * self.pageSize

        let maxPayload = Int(hello.maxPayload)
        let span = UInt64(spec.payload) + self.pageSize - 1
        switch spec.operation {
        case .ping, .read:
            guard spec.payload <= maxPayload else {
                throw BenchError("--payload \(spec.payload) exceeds max_payload \(maxPayload)")
            }
        case .write:
            guard spec.payload <= maxPayload - 16 else {
                throw BenchError("--payload \(spec.payload) exceeds max_payload - 16 (\(maxPayload - 16))")
            }
        case .gpcRead, .gpcWrite, .mixed:
            guard spec.payload <= Int(hello.pageSize) else {
                throw BenchError(
                    "--payload \(spec.payload) exceeds the page size \(hello.pageSize): a GPC lies within one page"
                )
            }
        }
        guard self.hotGPA + span / self.pageSize * self.pageSize <= hello.regionSize else {
            throw BenchError(
                "the region (\(hello.regionSize) bytes) is too small for page \(spec.hotPage) plus \(spec.payload) bytes"
            )
        }
        if spec.operation.usesCaches {
            let count = spec.pattern == .hot ? 1 : min(Int(hello.maxGpcs), 64)
            var windows: [(gpa: UInt64, length: UInt32)] = []
            for number in 0..<count {
                let page: UInt64
                switch spec.pattern {
                case .hot: page = spec.hotPage
                case .random: page = self.random.next(below: self.pageCount)
                case .sequential: page = (self.cursor / self.pageSize + UInt64(number)) % self.pageCount
                }
                windows.append((page * self.pageSize, UInt32(self.pageSize)))
            }
            self.handles = try connection.activateGPCs(windows)
        }
    }

    /// The address of the next `length`-byte range.
    @inline(__always)
    mutating func nextGPA(length: Int) -> UInt64 {
        switch self.pattern {
        case .hot:
            return self.hotGPA
        case .random:
            let pages = max((UInt64(length) + self.pageSize - 1) / self.pageSize, 1)
            return self.random.next(below: self.pageCount - min(pages, self.pageCount) + 1) * self.pageSize
        case .sequential:
            let stride = max((UInt64(length) + self.pageSize - 1) / self.pageSize, 1) * self.pageSize
            if self.cursor + stride > self.pageCount * self.pageSize { self.cursor = 0 }
            defer { self.cursor += stride }
            return self.cursor
        }
    }

    @inline(__always)
    mutating func nextHandle() -> UInt64 {
        switch self.pattern {
        case .hot:
            return self.handles[0]
        case .random:
            return self.handles[Int(self.random.next(below: UInt64(self.handles.count)))]
        case .sequential:
            self.handleCursor = self.handleCursor + 1 == self.handles.count ? 0 : self.handleCursor + 1
            return self.handles[self.handleCursor]
        }
    }

    /// Appends the next request frame to `out`; returns the payload bytes it moves.
    @inline(__always)
    mutating func encodeNext(id: UInt32, into out: inout [UInt8]) throws -> Int {
        var operation = self.operation
        if operation == .mixed {
            switch self.random.next(below: 10) {
            case 0..<4: operation = .read
            case 4..<6: operation = .write
            case 6..<8: operation = .gpcRead
            case 8: operation = .gpcWrite
            default: operation = .ping
            }
        }
        let length = self.payload
        switch operation {
        case .ping:
            try self.data.withUnsafeBytes { try Request.ping($0).encode(id: id, into: &out) }
        case .read:
            try Request.read(gpa: self.nextGPA(length: length), length: UInt32(length)).encode(id: id, into: &out)
        case .write:
            let gpa = self.nextGPA(length: length)
            try self.data.withUnsafeBytes { try Request.write(gpa: gpa, data: $0).encode(id: id, into: &out) }
        case .gpcRead:
            try Request.gpcRead(handle: self.nextHandle(), offset: 0, length: UInt32(length)).encode(id: id, into: &out)
        case .gpcWrite:
            let handle = self.nextHandle()
            try self.data.withUnsafeBytes {
                try Request.gpcWrite(handle: handle, offset: 0, data: $0).encode(id: id, into: &out)
            }
        case .mixed:
            // Unreachable: `.mixed` was replaced by a concrete operation above. A PING keeps
            // the pipeline's accounting right even if that ever changed.
            try self.data.withUnsafeBytes { try Request.ping($0).encode(id: id, into: &out) }
        }
        return length
    }
}
