import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// A ``PageProtection`` that forwards to mprotect(2) but can be told to fail,
/// the way the kernel does once the map-count limit is reached (ENOMEM).
///
/// Failures can be armed for the Nth call from now, or for every restore or
/// every zap while switched on. In *partial* mode a failing call first changes
/// the protection of the range's first page, as a real mprotect that fails on
/// a later VMA leaves the earlier ones changed. Every call is logged.
final class FaultInjectingProtection: PageProtection {
    struct Call: Hashable, Sendable {
        var accessible: Bool
        var address: UInt
        var length: Int
        var failed: Bool
    }

    private struct State {
        var callsSinceArming = 0
        var failingCall: Int? = nil
        var failRestores = false
        var failZaps = false
        var partial = false
        var log: [Call] = []
    }

    private let kernel = KernelPageProtection()
    private let state = Locked(State())

    init() {}

    /// Fails the `n`th call from now (1 is the very next call), once.
    func failCall(_ n: Int, partial: Bool = false) {
        self.state.withLock {
            $0.callsSinceArming = 0
            $0.failingCall = n
            $0.partial = partial
        }
    }

    /// Fails every restore and/or zap until switched off.
    func setFailing(restores: Bool = false, zaps: Bool = false, partial: Bool = false) {
        self.state.withLock {
            $0.failRestores = restores
            $0.failZaps = zaps
            $0.partial = partial
        }
    }

    var calls: [Call] { self.state.withLock { $0.log } }
    var failures: Int { self.state.withLock { $0.log.filter(\.failed).count } }

    func clearLog() { self.state.withLock { $0.log.removeAll() } }

    func setAccessible(_ accessible: Bool, address: UnsafeMutableRawPointer, length: Int) throws(GmemError) {
        let (fail, partial) = self.state.withLock { state -> (Bool, Bool) in
            state.callsSinceArming += 1
            var fail = accessible ? state.failRestores : state.failZaps
            if let n = state.failingCall, state.callsSinceArming == n {
                fail = true
                state.failingCall = nil
            }
            state.log.append(
                Call(accessible: accessible, address: UInt(bitPattern: address), length: length, failed: fail)
            )
            return (fail, state.partial)
        }
        guard fail else {
            try self.kernel.setAccessible(accessible, address: address, length: length)
            return
        }
        let page = GuestMemory.systemPageSize
        if partial && length > page {
            try? self.kernel.setAccessible(accessible, address: address, length: page)
        }
        throw GmemError(
            .noMemory,
            "injected: mprotect(\(accessible ? "PROT_READ|PROT_WRITE" : "PROT_NONE")): Cannot allocate memory"
        )
    }
}
