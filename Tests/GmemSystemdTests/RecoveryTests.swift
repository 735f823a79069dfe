import CGmemSys
import GmemProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the client knows was acknowledged, page by page, plus the one
/// request that was in flight when the daemon died (it may have happened or not).
struct AcknowledgedModel {
    let pageSize: Int
    var bytes: [UInt8]
    var shared: [Bool]
    var pendingWrite: (gpa: Int, data: [UInt8])? = nil
    var pendingConversion: Range<Int>? = nil

    init(regionSize: Int, pageSize: Int) {
        self.pageSize = pageSize
        self.bytes = [UInt8](repeating: 0, count: regionSize)
        self.shared = [Bool](repeating: false, count: regionSize / pageSize)
    }

    /// Every mismatch between the model and what the recovered daemon holds.
    func mismatches(contents: [UInt8], privatePages: [Bool]) -> [String] {
        var problems: [String] = []
        let pending = self.pendingWrite.map { $0.gpa..<($0.gpa + $0.data.count) }
        for index in 0..<self.bytes.count where contents[index] != self.bytes[index] {
            // A byte of the unacknowledged write may hold the old or the new value.
            if let pending, pending.contains(index),
                contents[index] == self.pendingWrite!.data[index - pending.lowerBound]
            {
                continue
            }
            problems.append(
                "byte 0x\(String(index, radix: 16)): expected \(self.bytes[index]), read \(contents[index])"
            )
            if problems.count > 10 { return problems }
        }
        for page in 0..<self.shared.count where privatePages[page] == self.shared[page] {
            if self.pendingConversion?.contains(page) == true { continue }
            problems.append("page \(page): expected \(self.shared[page] ? "shared" : "private")")
            if problems.count > 20 { return problems }
        }
        return problems
    }
}

extension DaemonTests {
    @Suite("memory survives restarts through the fd store")
    struct Recovery {
        @Test("SIGKILL mid-load: every acknowledged byte and attribute, and the region_id, come back; RECOVERED is set")
        func crashMidLoad() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let first = try harness.start(listeningSocket: true)
            try harness.waitReady()
            let client = try WireClient(path: harness.socketPath)
            let hello = try client.sayHello()
            #expect(!hello.regionFlags.contains(.recovered))
            let pageSize = Int(hello.pageSize)
            let regionSize = Int(hello.regionSize)
            var model = AcknowledgedModel(regionSize: regionSize, pageSize: pageSize)
            var generator = SystemRandomNumberGenerator()

            // The kill lands at a random moment of the load.
            let killAfter = useconds_t(Int.random(in: 300_000...700_000))
            let killer = first.pid
            let killerThread = Thread {
                usleep(killAfter)
                kill(killer, SIGKILL)
            }
            var operations = 0
            load: while true {
                operations += 1
                if Bool.random(using: &generator) {
                    let count = Int.random(in: 1...(3 * pageSize), using: &generator)
                    let gpa = Int.random(in: 0...(regionSize - count), using: &generator)
                    let data = (0..<count).map { _ in UInt8.random(in: 1...255, using: &generator) }
                    model.pendingWrite = (gpa, data)
                    do { try client.write(UInt64(gpa), data) } catch WireClient.Failure.disconnected { break load }
                    model.bytes.replaceSubrange(gpa..<(gpa + count), with: data)
                    model.pendingWrite = nil
                } else {
                    let pages = model.shared.count
                    // Some conversions cover whole 2 MiB chunks (the bulk path), some ragged runs.
                    let chunk = (2 << 20) / pageSize
                    let run: Range<Int>
                    if Int.random(in: 0..<4, using: &generator) == 0 {
                        let first = Int.random(in: 0..<(pages / chunk), using: &generator) * chunk
                        run = first..<(first + chunk)
                    } else {
                        let first = Int.random(in: 0..<pages, using: &generator)
                        run = first..<min(pages, first + Int.random(in: 1...700, using: &generator))
                    }
                    let shared = Bool.random(using: &generator)
                    model.pendingConversion = run
                    do {
                        try client.setAttributes(
                            UInt64(run.lowerBound * pageSize),
                            size: UInt64(run.count * pageSize),
                            shared: shared
                        )
                    } catch WireClient.Failure.disconnected { break load }
                    for page in run { model.shared[page] = shared }
                    model.pendingConversion = nil
                }
            }
            killerThread.join()
            #expect(first.waitForExit() == 128 + SIGKILL)
            #expect(operations > 20, "the load should run for a while before the kill")
            #expect(harness.notify.store.map(\.name) == ["gmemd-guest", "gmemd-state"])

            harness.notify.clearMessages()
            try harness.start(listeningSocket: true)
            try harness.waitReady()
            let second = try WireClient(path: harness.socketPath)
            let recovered = try second.sayHello()
            #expect(recovered.regionID == hello.regionID)
            #expect(recovered.regionFlags.contains(.recovered))
            try Self.verify(model, through: second, regionSize: regionSize)
        }

        @Test("a clean restart (systemctl restart) keeps the memory too, and again after recovery")
        func cleanRestarts() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            var daemon = try harness.start()
            try harness.waitReady()
            var client = try WireClient(path: harness.socketPath)
            let regionID = try client.sayHello().regionID
            var model = AcknowledgedModel(
                regionSize: Int(ServiceHarness.regionSize),
                pageSize: Int(client.hello!.pageSize)
            )
            let pattern = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            try client.write(12_345, pattern)
            model.bytes.replaceSubrange(12_345..<(12_345 + pattern.count), with: pattern)
            try client.setAttributes(0, size: 2 << 20, shared: true)
            try client.setAttributes(UInt64(model.pageSize), size: UInt64(model.pageSize), shared: false)
            for page in 0..<((2 << 20) / model.pageSize) { model.shared[page] = page != 1 }
            for _ in 0..<2 {
                daemon.signal(SIGTERM)
                #expect(daemon.waitForExit() == 0)
                harness.notify.clearMessages()
                daemon = try harness.start()
                try harness.waitReady()
                client = try WireClient(path: harness.socketPath)
                let hello = try client.sayHello()
                #expect(hello.regionID == regionID)
                #expect(hello.regionFlags.contains(.recovered))
                try Self.verify(model, through: client, regionSize: Int(ServiceHarness.regionSize))
            }
        }

        @Test(
            "secretmem: the size is all that is validated, and the contents come back",
            .enabled(if: SecretMemory.isAvailable, "memfd_secret is unavailable on this kernel")
        )
        func secretmemRecovers() throws {
            let harness = try ServiceHarness()
            defer { harness.tearDown() }
            let arguments = harness.arguments(extra: ["--backing", "secretmem"])
            let first = try harness.start(arguments: arguments)
            try harness.waitReady()
            let client = try WireClient(path: harness.socketPath)
            let hello = try client.sayHello()
            #expect(hello.regionFlags.contains(.secretmem))
            let pattern = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            try client.write(70_000, pattern)
            try client.setAttributes(0, size: UInt64(hello.pageSize) * 3, shared: true)
            first.kill()
            harness.notify.clearMessages()
            try harness.start(arguments: arguments)
            try harness.waitReady()
            let second = try WireClient(path: harness.socketPath)
            let recovered = try second.sayHello()
            #expect(recovered.regionID == hello.regionID && recovered.regionFlags.contains(.recovered))
            #expect(try second.read(70_000, count: pattern.count) == pattern)
            #expect(try second.privatePages(0, count: 4) == [false, false, false, true])
        }

        static func verify(_ model: AcknowledgedModel, through client: WireClient, regionSize: Int) throws {
            var contents: [UInt8] = []
            contents.reserveCapacity(regionSize)
            let step = 512 << 10
            for gpa in stride(from: 0, to: regionSize, by: step) {
                contents += try client.read(UInt64(gpa), count: min(step, regionSize - gpa))
            }
            var privatePages: [Bool] = []
            let pages = model.shared.count
            for first in stride(from: 0, to: pages, by: 1024) {
                privatePages += try client.privatePages(UInt64(first * model.pageSize), count: min(1024, pages - first))
            }
            let problems = model.mismatches(contents: contents, privatePages: privatePages)
            #expect(problems.isEmpty, "recovered region differs:\n\(problems.joined(separator: "\n"))")
        }
    }
}

/// Whether memfd_secret(2) works here (CONFIG_SECRETMEM, secretmem.enable).
enum SecretMemory {
    static let isAvailable: Bool = {
        let fd = cgmem_memfd_secret(UInt32(O_CLOEXEC))
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }()
}

/// A joinable pthread, without Foundation.
final class Thread: @unchecked Sendable {  // The handle is only used by the creating test.
    private var handle = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body))
        pthread_create(
            &self.handle,
            nil,
            { argument in
                Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
                return nil
            },
            box.toOpaque()
        )
    }

    func join() { pthread_join(self.handle, nil) }

    private final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
