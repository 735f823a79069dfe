import ArgumentParser
import GmemProtocol
import GmemTesting

/// `gmem-bench fetch-add`: one client process adding 1 to a word of guest memory N times, by ATOMIC on the socket,
/// on a ring, or through a GPC on a ring. The suite's R7 runs three of them at once and checks the sum.
struct FetchAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch-add",
        abstract: "Add 1 to an 8-byte word of guest memory COUNT times with FETCH_ADD (socket, ring, or ring GPC)."
    )

    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case socket, ring
        case ringGPC = "ring-gpc"
    }

    @Option(help: "gmemd's socket.")
    var socket: String

    @Option(help: "The word's guest address (8-byte aligned).")
    var gpa: UInt64 = 0x8000

    @Option(help: "How many FETCH_ADDs.")
    var count = 100_000

    @Option(help: "socket, ring, or ring-gpc.")
    var transport: Transport = .socket

    @Option(help: "Entries in flight on a ring.")
    var depth = 16

    func run() throws {
        let connection = try RawConnection.connect(self.socket)
        _ = try connection.hello(features: [.deviceOps, .rings])
        let add = AtomicArguments(op: .fetchAdd, width: 8, operand: 1)
        guard self.transport != .socket else {
            for _ in 0..<self.count { _ = try connection.atomicValue(gpa: self.gpa, add) }
            return
        }
        let ring = try connection.ring(entries: 64, dataSize: 4096)
        var entry = RingSubmission.atomic(cookie: 0, gpa: self.gpa, add)
        if self.transport == .ringGPC {
            let page = self.gpa & ~UInt64(4095)
            let handle = try connection.activateGpc(gpa: page, length: 4096)
            entry = .gpcAtomic(cookie: 0, handle: handle, offset: UInt32(self.gpa - page), add)
        }
        var submitted = 0
        var completed = 0
        while completed < self.count {
            let batch = min(self.depth - ring.inFlight, self.count - submitted)
            if batch > 0 {
                ring.submit([RingSubmission](repeating: entry, count: batch))
                submitted += batch
            }
            for completion in try ring.completeAvailable() {
                guard completion.status == 0 else { throw BenchError("FETCH_ADD failed: status \(completion.status)") }
                completed += 1
            }
        }
    }
}
