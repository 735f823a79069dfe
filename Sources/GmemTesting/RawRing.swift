//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// RawRing: the client side of a shared-memory ring, for tests and benchmarks.
//
//===----------------------------------------------------------------------===//

import CGmemSys
import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A ring set up on a ``RawConnection``: the client's mapping of the ring memfd, its two doorbells and the indices
/// the client owns.
///
/// It follows PROTOCOL.md 10.5 exactly: entries are published with a release store of `sq_tail`, a full barrier, and
/// the submit doorbell only when the server announced that it sleeps; completions are awaited by spinning briefly,
/// then announcing `WANT_WAKEUP` and sleeping on the completion doorbell. Tests may also break the rules on purpose
/// through ``shared``. One thread at a time; the descriptors are closed and the mapping removed by ``close()`` or
/// `deinit`.
public final class RawRing {
    public let ringID: UInt32
    public let layout: RingLayout
    public let shared: SharedRing
    public let memfd: Int32
    public let submitDoorbell: Int32
    public let completionDoorbell: Int32
    /// The next slot this client fills, and the next completion it consumes.
    public private(set) var submissionTail: UInt32 = 0
    public private(set) var completionHead: UInt32 = 0
    /// How many times the client rang the submit doorbell, and slept on the completion doorbell.
    public private(set) var doorbellsRung = 0
    public private(set) var sleeps = 0
    private var isClosed = false

    /// Maps the ring RING_SETUP described; takes ownership of the three descriptors.
    public init(reply: RingSetupReply, descriptors: [Int32]) throws {
        let layout = try RingLayout(entries: reply.entries, dataSize: reply.dataSize)
        guard Int(reply.mmapSize) == layout.mappingSize, descriptors.count == 3 else {
            for fd in descriptors { Glibc.close(fd) }
            throw GmemTestingError.protocolViolation("RING_SETUP reply \(reply) with \(descriptors.count) descriptors")
        }
        guard let base = mmap(nil, layout.mappingSize, PROT_READ | PROT_WRITE, MAP_SHARED, descriptors[0], 0),
            base != MAP_FAILED
        else {
            let saved = errno
            for fd in descriptors { Glibc.close(fd) }
            throw GmemTestingError.systemCall("mmap of a ring", errno: saved)
        }
        self.ringID = reply.ringID
        self.layout = layout
        self.shared = SharedRing(base: base, layout: layout)
        (self.memfd, self.submitDoorbell, self.completionDoorbell) = (descriptors[0], descriptors[1], descriptors[2])
    }

    deinit { self.close() }

    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        munmap(self.shared.base, self.layout.mappingSize)
        for fd in [self.memfd, self.submitDoorbell, self.completionDoorbell] { Glibc.close(fd) }
    }

    /// The data area.
    public var data: UnsafeMutableRawBufferPointer { self.shared.dataArea }

    /// Entries submitted and not yet completed.
    public var inFlight: Int { Int(self.submissionTail &- self.completionHead) }

    // MARK: Submitting

    /// Writes `entries` into the next slots and publishes them (the caller keeps at most `entries` in flight).
    public func submit(_ entries: [RingSubmission]) {
        for entry in entries {
            entry.store(to: self.shared.submissionSlot(self.submissionTail))
            self.submissionTail &+= 1
        }
        self.publish()
    }

    /// Publishes `sq_tail`; rings the submit doorbell only if the server's poller sleeps (10.5).
    public func publish() {
        self.shared.storeRelease(self.submissionTail, at: RingLayout.Offset.submissionTail)
        SharedRing.fence()
        if self.shared.loadAcquire(RingLayout.Offset.serverFlags) & RingLayout.needWakeup != 0 {
            var one: UInt64 = 1
            _ = write(self.submitDoorbell, &one, 8)
            self.doorbellsRung += 1
        }
    }

    // MARK: Completing

    /// Waits for `count` completions and consumes them.
    ///
    /// - Parameter spin: checks of `cq_tail` before sleeping on the doorbell.
    /// - Throws: ``GmemTestingError/timedOut(_:)`` if they do not all arrive within `timeout`.
    public func complete(_ count: Int, timeout: Duration = .seconds(5), spin: Int = 2000) throws -> [RingCompletion] {
        var completions: [RingCompletion] = []
        completions.reserveCapacity(count)
        let deadline = Deadline(after: timeout)
        var spins = 0
        while completions.count < count {
            let tail = try self.completionTail()
            if tail != self.completionHead {
                while self.completionHead != tail && completions.count < count {
                    completions.append(RingCompletion(loading: self.shared.completionSlot(self.completionHead)))
                    self.completionHead &+= 1
                }
                self.shared.storeRelease(self.completionHead, at: RingLayout.Offset.completionHead)
                spins = 0
                continue
            }
            spins += 1
            if spins < spin { continue }
            try self.sleepForCompletions(deadline: deadline)
        }
        return completions
    }

    /// Waits for at least one completion (spinning `spin` times before sleeping on the doorbell) and consumes every
    /// completion available then.
    public func completeAvailable(timeout: Duration = .seconds(5), spin: Int = 2000) throws -> [RingCompletion] {
        let deadline = Deadline(after: timeout)
        var spins = 0
        while true {
            let tail = try self.completionTail()
            if tail != self.completionHead {
                var completions: [RingCompletion] = []
                while self.completionHead != tail {
                    completions.append(RingCompletion(loading: self.shared.completionSlot(self.completionHead)))
                    self.completionHead &+= 1
                }
                self.shared.storeRelease(self.completionHead, at: RingLayout.Offset.completionHead)
                return completions
            }
            spins += 1
            if spins >= spin { try self.sleepForCompletions(deadline: deadline) }
        }
    }

    /// `cq_tail`, checked: the server never publishes more completions than the queue holds, so a larger distance
    /// means the word was overwritten (a test scribbling on it), and the queue cannot be trusted.
    private func completionTail() throws -> UInt32 {
        let tail = self.shared.loadAcquire(RingLayout.Offset.completionTail)
        guard tail &- self.completionHead <= self.layout.entries else {
            throw GmemTestingError.protocolViolation(
                "ring \(self.ringID): cq_tail \(tail) with cq_head \(self.completionHead)"
            )
        }
        return tail
    }

    /// Announces WANT_WAKEUP, checks once more, then sleeps on the completion doorbell (10.5).
    private func sleepForCompletions(deadline: Deadline) throws {
        self.shared.storeRelease(RingLayout.wantWakeup, at: RingLayout.Offset.clientFlags)
        SharedRing.fence()
        guard self.shared.loadAcquire(RingLayout.Offset.completionTail) == self.completionHead else { return }
        guard !deadline.hasPassed else {
            throw GmemTestingError.timedOut("ring \(self.ringID): \(self.inFlight) completions")
        }
        var descriptor = pollfd(fd: self.completionDoorbell, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(min(deadline.remaining.components.seconds * 1000 + 1, 1000))
        if poll(&descriptor, 1, milliseconds) > 0 {
            var value: UInt64 = 0
            _ = read(self.completionDoorbell, &value, 8)
        }
        self.sleeps += 1
    }

    // MARK: One entry at a time

    /// Submits one entry and waits for its completion.
    public func call(_ entry: RingSubmission, timeout: Duration = .seconds(5)) throws -> RingCompletion {
        self.submit([entry])
        return try self.complete(1, timeout: timeout)[0]
    }
}

extension RawConnection {
    /// RING_SETUP's reply as it came, success or not; on success the three descriptors are in
    /// ``receivedDescriptors``.
    public func ringSetupReply(entries: UInt32, dataSize: UInt64) throws -> ReplyFrame {
        try self.request(
            { try Request.ringSetup(entries: entries, dataSize: dataSize).encoded(id: $0) },
            opcode: .ringSetup
        )
    }

    /// Sets up a ring and maps it.
    public func ring(entries: UInt32 = 64, dataSize: UInt64 = 1 << 20) throws -> RawRing {
        let reply = try self.ringSetupReply(entries: entries, dataSize: dataSize)
        try reply.requireSuccess()
        let payload = try Self.decode(RingSetupReply.self, from: reply)
        let descriptors = Array(self.receivedDescriptors.prefix(3))
        self.receivedDescriptors.removeFirst(descriptors.count)
        return try RawRing(reply: payload, descriptors: descriptors)
    }

    public func ringClose(_ ringID: UInt32) throws -> ReplyFrame {
        try self.request({ try Request.ringClose(ringID: ringID).encoded(id: $0) }, opcode: .ringClose)
    }
}
