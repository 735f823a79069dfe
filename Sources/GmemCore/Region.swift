import CGmemSys

#if canImport(Glibc)
import Glibc
#endif

/// Where guest memory comes from.
public enum Backing: String, Sendable, CaseIterable {
    /// A sealed memfd: shmem pages, hole punch returns them to the system.
    case memfd
    /// memfd_secret(2): the pages also leave the kernel's own direct map.
    case secretmem
}

/// The guest memory file and its one shared mapping in this process.
///
/// The mapping is made once, for the region's whole life, so addresses handed
/// to copies never move. Its protections change page by page through
/// ``PageProtection``; the region itself never calls mprotect.
public final class Region: @unchecked Sendable {  // Immutable after init; the mapping's bytes are guarded by PageTable.
    public static let memfdName = "gmemd-guest"

    public let fileDescriptor: Int32
    public let geometry: RegionGeometry
    public let backing: Backing
    /// The first byte of the mapping.
    let base: UnsafeMutableRawPointer

    /// Creates a new memfd of `size` bytes, sealed against grow and shrink.
    /// With `initiallyAccessible == false` every page starts PROT_NONE.
    public convenience init(geometry: RegionGeometry, backing: Backing, initiallyAccessible: Bool) throws(GmemError) {
        let fd = try Self.createFile(geometry: geometry, backing: backing)
        do {
            try self.init(adopting: fd, geometry: geometry, backing: backing, initiallyAccessible: initiallyAccessible)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Maps an existing guest memory file, such as one recovered from systemd's
    /// fd store. The caller has validated its size; on failure the fd is not closed.
    public init(
        adopting fd: Int32,
        geometry: RegionGeometry,
        backing: Backing,
        initiallyAccessible: Bool
    ) throws(GmemError) {
        let length = Int(geometry.regionSize)
        // MAP_SHARED: the daemon and the file must agree byte for byte.
        // MAP_NORESERVE: a sparse 1 TiB region must not be charged up front.
        let protection = initiallyAccessible ? PROT_READ | PROT_WRITE : PROT_NONE
        let address = mmap(nil, length, protection, MAP_SHARED | MAP_NORESERVE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .systemCall("mmap of the \(length)-byte guest region", errno: errno)
        }
        // Guest memory must never end up in a core file.
        if madvise(address, length, MADV_DONTDUMP) != 0 {
            let saved = errno
            munmap(address, length)
            throw .systemCall("madvise(MADV_DONTDUMP)", errno: saved)
        }
        self.fileDescriptor = fd
        self.geometry = geometry
        self.backing = backing
        self.base = address
    }

    deinit {
        munmap(self.base, Int(self.geometry.regionSize))
        close(self.fileDescriptor)
    }

    /// The address of `page` in the mapping.
    @inline(__always)
    func address(ofPage page: Int) -> UnsafeMutableRawPointer { self.base + self.geometry.offset(ofPage: page) }

    /// The seals a memfd-backed guest file carries once sized.
    public static let requiredSeals = CGMEM_F_SEAL_GROW | CGMEM_F_SEAL_SHRINK

    private static func createFile(geometry: RegionGeometry, backing: Backing) throws(GmemError) -> Int32 {
        switch backing {
        case .memfd:
            let fd = cgmem_memfd_create(Self.memfdName, CGMEM_MFD_CLOEXEC | CGMEM_MFD_ALLOW_SEALING)
            guard fd >= 0 else { throw .systemCall("memfd_create", errno: errno) }
            guard ftruncate(fd, off_t(geometry.regionSize)) == 0 else {
                let saved = errno
                close(fd)
                throw .systemCall("ftruncate of the guest memfd to \(geometry.regionSize) bytes", errno: saved)
            }
            // The size is fixed for the region's life, as guest_memfd's is.
            guard cgmem_add_seals(fd, Self.requiredSeals) == 0 else {
                let saved = errno
                close(fd)
                throw .systemCall("sealing the guest memfd against grow and shrink", errno: saved)
            }
            return fd
        case .secretmem:
            let fd = cgmem_memfd_secret(UInt32(O_CLOEXEC))
            guard fd >= 0 else {
                let saved = errno
                let hint =
                    saved == ENOSYS
                    ? "memfd_secret is unavailable: the kernel lacks CONFIG_SECRETMEM or was booted without secretmem.enable=1"
                    : "memfd_secret refused: \(String(cString: strerror(saved)))"
                throw GmemError(.operationNotSupported, "secretmem backing: \(hint)")
            }
            // secretmem pages are locked: RLIMIT_MEMLOCK must cover the region.
            guard ftruncate(fd, off_t(geometry.regionSize)) == 0 else {
                let saved = errno
                close(fd)
                throw .systemCall("ftruncate of the secretmem region to \(geometry.regionSize) bytes", errno: saved)
            }
            return fd
        }
    }
}
