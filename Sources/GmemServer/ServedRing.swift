import GmemCore
import GmemProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One ring as its poller thread serves it (PROTOCOL.md section 10).
///
/// Only the poller calls ``serve(budget:)``; the connection's event loop
/// only creates the ring, hands it to the poller once the client has its
/// descriptors, and asks for it to stop (``requestStop()``). The
/// indices gmemd owns (`sq_head`, `cq_tail`) live here in private memory and
/// are only ever written to the shared page, never read back from it: the
/// client could have scribbled on them.
final class ServedRing: @unchecked Sendable {
    let ringID: UInt32
    let memory: RingMemory
    private let dataPath: DataPath
    private let readOnly: Bool
    private let server: ServerContext
    /// Called once, on the poller thread, when the indices are found corrupt.
    private let onFailure: @Sendable (UInt32) -> Void

    private var submissionHead: UInt32 = 0
    private var completionTail: UInt32 = 0
    /// Pages the ring's recent entries keep accessible (see ``serve(budget:)``).
    private var held = HeldPages()
    /// When `held` took its first reference, in CLOCK_MONOTONIC nanoseconds.
    private var heldSince: UInt64 = 0
    /// The longest a busy ring keeps pages accessible without an idle pass.
    static let maximumHoldNanoseconds: UInt64 = 1_000_000
    private let stopRequested = Atomic<Bool>(false)
    private var failed = false

    init(
        ringID: UInt32,
        memory: RingMemory,
        dataPath: DataPath,
        readOnly: Bool,
        server: ServerContext,
        onFailure: @escaping @Sendable (UInt32) -> Void
    ) {
        self.ringID = ringID
        self.memory = memory
        self.dataPath = dataPath
        self.readOnly = readOnly
        self.server = server
        self.onFailure = onFailure
        server.ringsActive.wrappingAdd(1, ordering: .relaxed)
    }

    /// Whether the poller should drop this ring.
    var isStopping: Bool { self.failed || self.stopRequested.load(ordering: .acquiring) }

    /// From the event loop: stop serving (RING_CLOSE or the connection's end).
    func requestStop() { self.stopRequested.store(true, ordering: .releasing) }

    /// What a poller about to sleep finds in the ring.
    enum Pending {
        case nothing
        /// Entries wait and the completion queue has room: serve, do not sleep.
        case entries
        /// Entries wait but the client has not consumed its completions: no
        /// doorbell will say when it does, so sleep only briefly.
        case stalled
    }

    func pending() -> Pending {
        guard !self.isStopping else { return .nothing }
        let shared = self.memory.shared
        guard shared.loadAcquire(RingLayout.Offset.submissionTail) != self.submissionHead else { return .nothing }
        let unconsumed = self.completionTail &- shared.loadAcquire(RingLayout.Offset.completionHead)
        return unconsumed < shared.layout.entries ? .entries : .stalled
    }

    /// Consumes up to `budget` entries, as many as the completion queue has
    /// room for, and publishes their completions. Returns whether it did any.
    func serve(budget: Int) -> Bool {
        guard !self.isStopping else { return false }
        let shared = self.memory.shared
        let entries = shared.layout.entries
        // One read of each client-owned index per pass (10.6).
        let submissionTail = shared.loadAcquire(RingLayout.Offset.submissionTail)
        let waiting = submissionTail &- self.submissionHead
        guard waiting != 0 else {
            // Idle: the pages of the last entries become inaccessible again
            // unless someone else holds them.
            self.releaseHeldPages()
            return false
        }
        let completionHead = shared.loadAcquire(RingLayout.Offset.completionHead)
        let unconsumed = self.completionTail &- completionHead
        guard waiting <= entries, unconsumed <= entries else {
            self.fail()
            return false
        }
        // A full completion queue stalls this ring, and only it.
        let count = min(Int(waiting), Int(entries - unconsumed), budget)
        guard count > 0 else {
            self.releaseHeldPages()
            return false
        }
        let dataArea = shared.dataArea
        for _ in 0..<count {
            let submission = RingSubmission(copying: shared.submissionSlot(self.submissionHead))
            self.submissionHead &+= 1
            let completion = self.execute(submission, dataArea: dataArea)
            completion.store(to: shared.completionSlot(self.completionTail))
            self.completionTail &+= 1
        }
        // While more entries wait, the pass's pages stay held, as the socket
        // keeps them across one read batch: a client that keeps a hot page
        // busy pays one restore and one zap per burst (at most a millisecond),
        // not per entry. A pass that empties the queue releases them before
        // its completions are published, so a client with nothing else in
        // flight sees settled pages once it has its completions.
        if !self.held.isEmpty {
            let now = monotonicNanoseconds()
            if self.heldSince == 0 { self.heldSince = now }
            let moreWaiting = shared.loadAcquire(RingLayout.Offset.submissionTail) != self.submissionHead
            if !moreWaiting || now &- self.heldSince >= Self.maximumHoldNanoseconds { self.releaseHeldPages() }
        }
        shared.storeRelease(self.submissionHead, at: RingLayout.Offset.submissionHead)
        shared.storeRelease(self.completionTail, at: RingLayout.Offset.completionTail)
        // Publish, then look at the client's flag (10.5).
        SharedRing.fence()
        if shared.loadAcquire(RingLayout.Offset.clientFlags) & RingLayout.wantWakeup != 0,
            shared.exchange(0, at: RingLayout.Offset.clientFlags) & RingLayout.wantWakeup != 0
        {
            self.memory.ringCompletionDoorbell()
        }
        return true
    }

    private func releaseHeldPages() {
        guard !self.held.isEmpty else { return }
        self.server.memory.release(&self.held)
        self.heldSince = 0
    }

    /// Announces (or withdraws) that the poller is about to sleep.
    func setNeedWakeup(_ sleeping: Bool) {
        self.memory.shared.storeRelease(sleeping ? RingLayout.needWakeup : 0, at: RingLayout.Offset.serverFlags)
    }

    /// Releases everything the ring held: on the poller thread once it
    /// dropped the ring, or on the loop for a ring never handed to a poller.
    func finish() {
        self.server.memory.release(&self.held)
        self.server.memory.retire(self.dataPath.counters)
        self.memory.close()
        self.server.ringsActive.wrappingSubtract(1, ordering: .releasing)
    }

    private func execute(_ submission: RingSubmission, dataArea: UnsafeMutableRawBufferPointer) -> RingCompletion {
        do {
            let (request, output) = try submission.decode(dataArea: dataArea, maxSegments: DataPath.maxSegments)
            if self.readOnly && request.isModifying { throw Errno.notPermitted }
            let length = try self.dataPath.outputLength(of: request)
            let value = try self.dataPath.perform(
                request,
                output: UnsafeMutableRawBufferPointer(rebasing: output[..<length]),
                holding: &self.held
            )
            return RingCompletion(
                cookie: submission.cookie,
                status: 0,
                length: UInt32(truncatingIfNeeded: Self.transferred(request, output: length)),
                value: value
            )
        } catch {
            self.server.errors.wrappingAdd(1, ordering: .relaxed)
            var completion = RingCompletion(cookie: submission.cookie, status: -DataPath.errno(of: error).rawValue)
            if let failure = error as? VectorAccessError, failure.madeProgress {
                completion.value = UInt64(failure.bytesCompleted)
                completion.segment = UInt32(failure.segment)
                completion.segmentBytes = UInt32(failure.segmentBytes)
            }
            return completion
        }
    }

    /// The completion's `len`: bytes moved on success.
    private static func transferred(_ request: Request, output: Int) -> Int {
        switch request {
        case .write(_, let data), .gpcWrite(_, _, let data), .writev(_, let data): return data.count
        default: return output
        }
    }

    private func fail() {
        guard !self.failed else { return }
        self.failed = true
        self.onFailure(self.ringID)
    }
}
