import CGmemSys
import GmemCore
import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The kernel objects of one ring: its memfd, mapped in gmemd, and the two
/// doorbell eventfds.
///
/// gmemd creates the memory and hands the client descriptors to it; it never
/// maps memory a client hands it. The memfd is sealed against growing and
/// shrinking (and against further seals), so the client cannot truncate it
/// under gmemd's mapping (a SIGBUS) or change its size.
final class RingMemory: @unchecked Sendable {
    let layout: RingLayout
    let shared: SharedRing
    /// Closed by ``closeMemfd()`` once the client has its copy.
    private(set) var memfd: Int32
    /// The client writes it to wake a sleeping poller.
    let submitDoorbell: Int32
    /// gmemd writes it to wake a client waiting for completions.
    let completionDoorbell: Int32

    /// Creates and maps the ring, with its header written.
    init(layout: RingLayout, ringID: UInt32) throws(GmemError) {
        let memfd = cgmem_memfd_create("gmemd-ring", CGMEM_MFD_CLOEXEC | CGMEM_MFD_ALLOW_SEALING)
        guard memfd >= 0 else { throw .systemCall("memfd_create", errno: errno) }
        var opened: [Int32] = [memfd]
        func undo() { for fd in opened { Glibc.close(fd) } }
        guard ftruncate(memfd, off_t(layout.mappingSize)) == 0 else {
            let saved = errno
            undo()
            throw .systemCall("ftruncate of a ring", errno: saved)
        }
        guard cgmem_add_seals(memfd, CGMEM_F_SEAL_GROW | CGMEM_F_SEAL_SHRINK | CGMEM_F_SEAL_SEAL) == 0 else {
            let saved = errno
            undo()
            throw .systemCall("sealing a ring", errno: saved)
        }
        let base = mmap(nil, layout.mappingSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)
        guard let base, base != MAP_FAILED else {
            let saved = errno
            undo()
            throw .systemCall("mmap of a ring", errno: saved)
        }
        let submit = cgmem_eventfd()
        let completion = submit >= 0 ? cgmem_eventfd() : -1
        guard submit >= 0, completion >= 0 else {
            let saved = errno
            if submit >= 0 { Glibc.close(submit) }
            munmap(base, layout.mappingSize)
            undo()
            throw .systemCall("eventfd", errno: saved)
        }
        self.layout = layout
        self.shared = SharedRing(base: base, layout: layout)
        self.memfd = memfd
        self.submitDoorbell = submit
        self.completionDoorbell = completion
        self.shared.initializeHeader(ringID: ringID)
    }

    /// The descriptors RING_SETUP's reply carries, in the protocol's order.
    var descriptorsForClient: [Int32] { [self.memfd, self.submitDoorbell, self.completionDoorbell] }

    /// gmemd keeps its mapping, not the memfd.
    func closeMemfd() {
        if self.memfd >= 0 { Glibc.close(self.memfd) }
        self.memfd = -1
    }

    /// Wakes a client that announced it sleeps.
    func ringCompletionDoorbell() {
        var one: UInt64 = 1
        // Non-blocking; EAGAIN means the counter is already far from 0, which wakes the client anyway.
        _ = write(self.completionDoorbell, &one, 8)
    }

    /// Resets the submit doorbell after a wake-up.
    func drainSubmitDoorbell() {
        var value: UInt64 = 0
        _ = read(self.submitDoorbell, &value, 8)
    }

    /// Unmaps the ring and closes gmemd's descriptors. The client's copies
    /// keep the memory alive until it closes them too.
    func close() {
        self.closeMemfd()
        munmap(self.shared.base, self.layout.mappingSize)
        Glibc.close(self.submitDoorbell)
        Glibc.close(self.completionDoorbell)
    }
}
