import CGmemSys
import GmemCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The page attributes of a region, kept in a small memfd (`gmemd-state`)
/// that systemd's fd store holds next to the guest memfd, so a restarted
/// gmemd finds which pages were shared.
///
/// The file is a ``StateFileHeader`` (written and checksummed once, at
/// creation, before the fd is handed to systemd) and a bitmap with one bit
/// per page, mapped shared and updated in place by ``setPages(_:shared:)``
/// while ``GuestMemory/setAttributes(at:size:shared:)`` runs. The memfd is
/// sparse: only bitmap pages that ever held a set bit use memory.
public final class StateFile: @unchecked Sendable {  // The mapping's words are atomics; the rest is immutable.
    public static let memfdName = "gmemd-state"
    static let stripeCount = 64

    public let fileDescriptor: Int32
    public let header: StateFileHeader
    let pageCount: Int
    let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let mappedLength: Int
    let stripes: UnsafeMutablePointer<pthread_mutex_t>

    /// Creates a new state file for a fresh region, every page private.
    public static func create(_ header: StateFileHeader) throws(GmemError) -> StateFile {
        let fd = cgmem_memfd_create(Self.memfdName, CGMEM_MFD_CLOEXEC | CGMEM_MFD_ALLOW_SEALING)
        guard fd >= 0 else { throw .systemCall("memfd_create(\(Self.memfdName))", errno: errno) }
        do throws(GmemError) {
            // Sized once: the bitmap covers exactly the region's pages.
            guard ftruncate(fd, off_t(header.fileSize)) == 0 else {
                throw .systemCall("ftruncate of the state memfd to \(header.fileSize) bytes", errno: errno)
            }
            let bytes = header.encoded()
            // The header goes in with one write before anyone can see the fd.
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            guard written == bytes.count else {
                throw .systemCall("writing the state header", errno: written < 0 ? errno : EIO)
            }
            // Recovery trusts the size it finds: fix it like the guest memfd's.
            guard cgmem_add_seals(fd, Region.requiredSeals) == 0 else {
                throw .systemCall("sealing the state memfd against grow and shrink", errno: errno)
            }
            return try StateFile(mapping: fd, header: header)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Adopts a state file recovered from the fd store after checking its
    /// size, its seals and its header. On failure the fd is left open.
    public static func adopt(_ fd: Int32) throws(GmemError) -> StateFile {
        var status = stat()
        // fstat first: a file shorter than the header cannot be one of ours.
        guard fstat(fd, &status) == 0 else { throw .systemCall("fstat of the stored state fd", errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG, status.st_size >= off_t(StateFileHeader.length) else {
            throw GmemError(
                .invalidArgument,
                "stored state fd is not a regular file of at least \(StateFileHeader.length) bytes (size \(status.st_size))"
            )
        }
        var bytes = [UInt8](repeating: 0, count: StateFileHeader.length)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count == StateFileHeader.length else {
            throw .systemCall("reading the stored state header", errno: count < 0 ? errno : EIO)
        }
        let header = try StateFileHeader(decoding: bytes)
        guard UInt64(status.st_size) == header.fileSize else {
            throw GmemError(
                .invalidArgument,
                "stored state file is \(status.st_size) bytes; its header needs \(header.fileSize)"
            )
        }
        let seals = cgmem_get_seals(fd)
        guard seals >= 0, seals & Region.requiredSeals == Region.requiredSeals else {
            throw GmemError(
                .invalidArgument,
                "stored state memfd lacks the F_SEAL_GROW|F_SEAL_SHRINK seals (seals 0x\(String(seals, radix: 16)))"
            )
        }
        return try StateFile(mapping: fd, header: header)
    }

    private init(mapping fd: Int32, header: StateFileHeader) throws(GmemError) {
        let length = Int(header.fileSize - StateFileHeader.bitmapOffset)
        // Only the bitmap is mapped, and shared: a store to it is a store to
        // the memfd, which outlives this process in systemd's fd store. The
        // header stays unmapped, out of reach of stray writes.
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(StateFileHeader.bitmapOffset))
        guard let address, address != MAP_FAILED else {
            throw .systemCall("mmap of the \(length)-byte state bitmap", errno: errno)
        }
        self.fileDescriptor = fd
        self.header = header
        self.pageCount = Int(header.regionSize / UInt64(header.pageSize))
        self.mappedLength = length
        // Word-aligned shared memory used only through atomic operations.
        self.words = address.assumingMemoryBound(to: Atomic<UInt64>.self)
        self.stripes = .allocate(capacity: Self.stripeCount)
        for index in 0..<Self.stripeCount { pthread_mutex_init(self.stripes + index, nil) }
    }

    deinit {
        for index in 0..<Self.stripeCount { pthread_mutex_destroy(self.stripes + index) }
        self.stripes.deallocate()
        munmap(UnsafeMutableRawPointer(self.words), self.mappedLength)
        close(self.fileDescriptor)
    }
}
