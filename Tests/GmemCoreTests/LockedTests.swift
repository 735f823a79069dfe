import Foundation
import Testing

@testable import GmemCore

/// ``Locked`` and ``PThreadLock`` exist so that ThreadSanitizer can see their critical sections
/// (scripts/sanitizers.sh runs this suite under TSan). With
/// `Synchronization.Mutex` in its place this same test made TSan report
/// "Swift access race" on every run: the regression test for the false report
/// that first failed the TSan step in CI.
@Suite("Locked")
struct LockedTests {
    @Test("four threads change one value under the lock and lose no update")
    func noLostUpdate() {
        let shared = Locked<(total: Int, log: [Int])>((0, []))
        let threads = 4
        let iterations = 20_000
        let group = DispatchGroup()
        for index in 0..<threads {
            group.enter()
            Thread {
                for step in 0..<iterations {
                    shared.withLock { value in
                        value.total += 1
                        // An array makes the critical section an inout access
                        // TSan tracks, as the daemon's own uses are.
                        value.log.append(index &* step)
                        if value.log.count > 64 { value.log.removeAll(keepingCapacity: true) }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(shared.withLock { $0.total } == threads * iterations)
    }

    @Test("a PThreadLock orders plain memory between four threads")
    func pthreadLockOrders() {
        final class Counter: @unchecked Sendable {  // Only touched under `lock`.
            let lock = PThreadLock()
            var value = 0
        }
        let counter = Counter()
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread {
                for _ in 0..<20_000 { counter.lock.withLock { counter.value += 1 } }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(counter.lock.withLock { counter.value } == 80_000)
    }

    @Test("withLock passes errors through and releases the lock")
    func errorsReleaseTheLock() {
        struct Refused: Error {}
        let locked = Locked(1)
        #expect(throws: Refused.self) { try locked.withLock { _ throws(Refused) in throw Refused() } }
        // Not recursive: this would deadlock if the throw had kept the lock.
        #expect(locked.withLock { $0 } == 1)
    }
}
