#if canImport(Glibc)
import Glibc
#endif

/// The seam through which every protection change of the guest mapping goes.
///
/// Contract: `setAccessible` changes the protection of `length` bytes at
/// `address` (page-aligned) to read-write or to no access, and either succeeds
/// or throws the errno the kernel returned. It is called with the folio locks
/// of every page in the range held, so it must not call back into the core.
/// Production uses ``KernelPageProtection``; tests inject failures here.
public protocol PageProtection: Sendable {
    func setAccessible(_ accessible: Bool, address: UnsafeMutableRawPointer, length: Int) throws(GmemError)
}

/// mprotect(2) on the region's mapping.
public struct KernelPageProtection: PageProtection {
    public init() {}

    @inline(__always)
    public func setAccessible(_ accessible: Bool, address: UnsafeMutableRawPointer, length: Int) throws(GmemError) {
        // PROT_NONE pages are what "removed from the direct map" means here:
        // any stray access faults instead of reading guest-private memory.
        guard mprotect(address, length, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0 else {
            throw .systemCall(
                accessible ? "mprotect(PROT_READ|PROT_WRITE) (restore)" : "mprotect(PROT_NONE) (zap)",
                errno: errno
            )
        }
    }
}
