//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The Swift client runs the shared conformance table, as libgmem and the gmem crate do.
//
//===----------------------------------------------------------------------===//

import GmemProtocol
import GmemTesting
import Synchronization
import Testing

@testable import GmemClient

/// Every case of `proto/conformance/cases.txt` through GmemClient, one request per case (the table's rule: a
/// client never splits an op), against one fresh gmemd set up as the table's header says.
///
/// The runner uses GmemClient's own request path (framing, pipelining, reply pairing, errno mapping and its local
/// refusal of an unframeable payload); the typed conveniences (split writes, handle objects) sit on top of it.
@Suite("Conformance: the shared table (proto/conformance/cases.txt)", .timeLimit(.minutes(2)))
struct ConformanceTests {
    @Test("every case gives the expected reply or errno")
    func sharedTable() async throws {
        let cases = try ConformanceCase.load()
        #expect(cases.count >= 100, "the table has \(cases.count) cases")
        let daemon = try await TestDaemon.start(size: "64M", ["--max-payload", "1M", "--max-gpcs", "8"])
        defer { daemon.stop() }
        let client = try await daemon.connect(features: [.events, .deviceOps])
        let events = EventCollector(client.events)
        var runner = ConformanceRunner(client: client, events: events)
        var failures: [String] = []
        for item in cases {
            do {
                try await runner.run(item)
            } catch {
                failures.append("\(item.name) (line \(item.line)): \(error)")
            }
        }
        #expect(
            failures.isEmpty,
            "\(failures.count) of \(cases.count) cases failed:\n\(failures.joined(separator: "\n"))"
        )
        events.stop()
        await client.close()
    }
}

/// Takes GPC_INVALIDATED events off the client's stream as they come.
final class EventCollector: Sendable {
    private final class Queue: Sendable {
        let events = Mutex<[GpcInvalidatedEvent]>([])
    }

    private let queue = Queue()
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<GpcInvalidatedEvent>) {
        let queue = self.queue
        self.task = Task {
            for await event in stream { queue.events.withLock { $0.append(event) } }
        }
    }

    /// The oldest event, waiting up to `timeout` for one.
    func next(within timeout: Duration) async -> GpcInvalidatedEvent? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let event = self.queue.events.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return event }
            guard ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    func stop() { self.task.cancel() }
}

struct ConformanceRunner {
    let client: GmemClient
    let events: EventCollector
    /// Handles of successful GPC_ACTIVATEs, in order: `$hN` is `handles[N - 1]`, `$h` the last.
    var handles: [UInt64] = []

    mutating func run(_ item: ConformanceCase) async throws {
        let expectation = item.expectation
        if item.op == "info" { return try self.checkInfo(expectation) }
        if item.op == "next_event" { return try await self.checkEvent(expectation) }
        let request = try self.request(item)
        let reply: ReplyFrame
        do {
            reply = try await request.withRequest { try await self.client.perform(try self.client.makeRequest($0)) }
        } catch let error as GmemClientError {
            guard expectation.first == "errno" else { throw ConformanceError("failed with \(error.errno.name)") }
            guard error.errno.name == expectation[1] else {
                throw ConformanceError("expected \(expectation[1]), got \(error.errno.name) (\(error))")
            }
            return
        }
        guard expectation.first == "ok" else { throw ConformanceError("succeeded; expected \(expectation)") }
        if item.op == "gpc_activate" {
            self.handles.append(try reply.decodePayload(as: GpcActivateReply.self).handle)
        }
        for check in expectation.dropFirst() {
            let parts = check.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let value = parts.count == 2 ? parts[1] : ""
            switch parts[0] {
            case "data":
                let expected = try ConformanceCase.bytes(value)
                guard reply.payload == expected else { throw ConformanceError("data \(reply.payload) != \(expected)") }
            case "len":
                guard reply.payload.count == Int(try ConformanceCase.number(value)) else {
                    throw ConformanceError("\(reply.payload.count) bytes, expected \(value)")
                }
            case "fill":
                let byte = try ConformanceCase.bytes(value)[0]
                guard reply.payload.allSatisfy({ $0 == byte }) else {
                    throw ConformanceError("not every byte is \(value)")
                }
            case "old":
                let old = try reply.decodePayload(as: AtomicReply.self).value
                guard old == (try ConformanceCase.number(value)) else {
                    throw ConformanceError("old \(old), expected \(value)")
                }
            default:
                throw ConformanceError("unknown check \(check)")
            }
        }
    }

    /// The request of a case, owning its bytes.
    func request(_ item: ConformanceCase) throws -> OwnedRequest {
        func number(_ key: String, default fallback: UInt64? = nil) throws -> UInt64 {
            guard let text = item.arguments[key] else {
                guard let fallback else { throw ConformanceError("\(item.op) lacks \(key)=") }
                return fallback
            }
            return try ConformanceCase.number(text)
        }
        func handle() throws -> UInt64 {
            let text = item.arguments["handle"] ?? ""
            guard text.hasPrefix("$h") else { return try ConformanceCase.number(text) }
            let index = text == "$h" ? self.handles.count : Int(text.dropFirst(2)) ?? 0
            guard index >= 1, index <= self.handles.count else { throw ConformanceError("no handle \(text) yet") }
            return self.handles[index - 1]
        }
        func data() throws -> [UInt8] {
            if let fill = item.arguments["fill"] {
                return [UInt8](repeating: try ConformanceCase.bytes(fill)[0], count: Int(try number("len")))
            }
            return try ConformanceCase.bytes(item.arguments["data"] ?? "")
        }
        func atomicArguments() throws -> AtomicArguments {
            let kinds = ["load", "store", "xchg", "cmpxchg", "fetch_add", "fetch_or", "fetch_and"]
            guard let kind = kinds.firstIndex(of: item.arguments["kind"] ?? ""),
                let op = AtomicOp(rawValue: UInt8(kind))
            else { throw ConformanceError("unknown kind") }
            return AtomicArguments(
                op: op,
                width: UInt8(truncatingIfNeeded: try number("size")),
                operand: try number("value", default: 0),
                expected: try number("expected", default: 0)
            )
        }
        let segments = { () throws -> [WireSegment] in
            try ConformanceCase.segments(item.arguments["segs"] ?? "").map {
                WireSegment(gpa: $0.gpa, length: $0.length)
            }
        }
        switch item.op {
        case "ping": return .ping(try data())
        case "read": return .read(gpa: try number("gpa"), length: UInt32(try number("len")))
        case "write": return .write(gpa: try number("gpa"), data: try data())
        case "readv": return .readv(try segments())
        case "writev": return .writev(try segments(), data: try data())
        case "gpc_activate": return .gpcActivate(gpa: try number("gpa"), length: UInt32(try number("len")))
        case "gpc_read":
            return .gpcRead(
                handle: try handle(),
                offset: UInt32(try number("offset")),
                length: UInt32(try number("len"))
            )
        case "gpc_write": return .gpcWrite(handle: try handle(), offset: UInt32(try number("offset")), data: try data())
        case "gpc_refresh":
            return .gpcRefresh(handle: try handle(), gpa: try number("gpa"), length: UInt32(try number("len")))
        case "gpc_deactivate": return .gpcDeactivate(handle: try handle())
        case "gpc_atomic":
            return .gpcAtomic(handle: try handle(), offset: UInt32(try number("offset")), try atomicArguments())
        case "atomic": return .atomic(gpa: try number("gpa"), try atomicArguments())
        case "set_attributes":
            return .setAttributes(
                gpa: try number("gpa"),
                size: try number("size"),
                attributes: try number("attributes")
            )
        case "discard": return .discard(gpa: try number("gpa"), size: try number("size"))
        case "page_state": return .pageState(gpa: try number("gpa"), pages: UInt32(try number("npages")))
        default: throw ConformanceError("unknown op \(item.op)")
        }
    }

    func checkInfo(_ expectation: [String]) throws {
        let hello = self.client.hello
        let fields: [String: UInt64] = [
            "page_size": UInt64(hello.pageSize), "region_size": hello.regionSize,
            "max_payload": UInt64(hello.maxPayload),
            "max_gpcs": UInt64(hello.maxGpcs), "max_segments": UInt64(hello.maxSegments),
        ]
        for check in expectation.dropFirst() {
            let parts = check.split(separator: "=").map(String.init)
            guard parts.count == 2, let actual = fields[parts[0]] else {
                throw ConformanceError("unknown check \(check)")
            }
            guard actual == (try ConformanceCase.number(parts[1])) else {
                throw ConformanceError("\(check): \(actual)")
            }
        }
    }

    func checkEvent(_ expectation: [String]) async throws {
        if expectation == ["none"] {
            // Every event a reply could have caused is in the stream before that reply: a short wait suffices.
            if let event = await self.events.next(within: .milliseconds(50)) {
                throw ConformanceError("unexpected event \(event)")
            }
            return
        }
        guard let event = await self.events.next(within: .seconds(2)) else { throw ConformanceError("no event") }
        for check in expectation.dropFirst() {
            let parts = check.split(separator: "=").map(String.init)
            guard parts.count == 2 else { throw ConformanceError("bad check \(check)") }
            switch parts[0] {
            case "handle":
                let wanted = parts[1] == "$h" ? self.handles.last : try? ConformanceCase.number(parts[1])
                guard event.handle == wanted else { throw ConformanceError("event for handle \(event.handle)") }
            case "reason":
                guard UInt64(event.reason.rawValue) == (try ConformanceCase.number(parts[1])) else {
                    throw ConformanceError("event reason \(event.reason)")
                }
            default: throw ConformanceError("unknown check \(check)")
            }
        }
    }
}

/// A request whose byte payloads the runner owns until it is sent.
enum OwnedRequest {
    case ping([UInt8])
    case read(gpa: UInt64, length: UInt32)
    case write(gpa: UInt64, data: [UInt8])
    case readv([WireSegment])
    case writev([WireSegment], data: [UInt8])
    case gpcActivate(gpa: UInt64, length: UInt32)
    case gpcRead(handle: UInt64, offset: UInt32, length: UInt32)
    case gpcWrite(handle: UInt64, offset: UInt32, data: [UInt8])
    case gpcRefresh(handle: UInt64, gpa: UInt64, length: UInt32)
    case gpcDeactivate(handle: UInt64)
    case gpcAtomic(handle: UInt64, offset: UInt32, AtomicArguments)
    case atomic(gpa: UInt64, AtomicArguments)
    case setAttributes(gpa: UInt64, size: UInt64, attributes: UInt64)
    case discard(gpa: UInt64, size: UInt64)
    case pageState(gpa: UInt64, pages: UInt32)

    func withRequest<R>(_ body: (Request) async throws -> R) async throws -> R {
        switch self {
        case .ping(let bytes): return try await Self.borrow(bytes) { try await body(.ping($0)) }
        case .read(let gpa, let length): return try await body(.read(gpa: gpa, length: length))
        case .write(let gpa, let data):
            return try await Self.borrow(data) { try await body(.write(gpa: gpa, data: $0)) }
        case .readv(let segments): return try await body(.readv(segments: segments))
        case .writev(let segments, let data):
            return try await Self.borrow(data) { try await body(.writev(segments: segments, data: $0)) }
        case .gpcActivate(let gpa, let length): return try await body(.gpcActivate(gpa: gpa, length: length))
        case .gpcRead(let handle, let offset, let length):
            return try await body(.gpcRead(handle: handle, offset: offset, length: length))
        case .gpcWrite(let handle, let offset, let data):
            return try await Self.borrow(data) { try await body(.gpcWrite(handle: handle, offset: offset, data: $0)) }
        case .gpcRefresh(let handle, let gpa, let length):
            return try await body(.gpcRefresh(handle: handle, gpa: gpa, length: length))
        case .gpcDeactivate(let handle): return try await body(.gpcDeactivate(handle: handle))
        case .gpcAtomic(let handle, let offset, let arguments):
            return try await body(.gpcAtomic(handle: handle, offset: offset, arguments))
        case .atomic(let gpa, let arguments): return try await body(.atomic(gpa: gpa, arguments))
        case .setAttributes(let gpa, let size, let attributes):
            return try await body(.setAttributes(gpa: gpa, size: size, attributes: attributes))
        case .discard(let gpa, let size): return try await body(.discard(gpa: gpa, size: size))
        case .pageState(let gpa, let pages): return try await body(.pageState(gpa: gpa, pageCount: pages))
        }
    }

    /// The bytes, borrowed for the duration of `body`; the request is encoded (copied) before `body` suspends.
    private static func borrow<R>(
        _ bytes: [UInt8],
        _ body: (UnsafeRawBufferPointer) async throws -> R
    ) async throws -> R {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { copy.deallocate() }
        bytes.withUnsafeBytes {
            if let base = $0.baseAddress { copy.baseAddress!.copyMemory(from: base, byteCount: $0.count) }
        }
        return try await body(UnsafeRawBufferPointer(start: copy.baseAddress, count: bytes.count))
    }
}
