import CGmemSys
import GmemCore

#if canImport(Glibc)
import Glibc
#endif

/// Guest memory whose attributes outlive the process: a fresh region with a
/// new state file, or a region recovered from a stored guest file and state file.
extension GuestMemory {
    /// Creates a new region (every page private) and its state file.
    public static func makePersistent(
        _ configuration: Configuration,
        regionID: UInt64,
        protection: any PageProtection = KernelPageProtection()
    ) throws(GmemError) -> (memory: GuestMemory, state: StateFile) {
        let geometry = try RegionGeometry(
            regionSize: configuration.size,
            pageSize: Self.systemPageSize,
            folioSize: configuration.folioSize
        )
        let state = try StateFile.create(
            StateFileHeader(
                regionID: regionID,
                geometry: geometry,
                backing: configuration.backing,
                directMap: configuration.directMap
            )
        )
        let memory = try GuestMemory(configuration, protection: protection, attributeRecorder: state)
        return (memory, state)
    }

    /// Serves a region recovered from systemd's fd store.
    ///
    /// Checks, in order, that the state file's geometry matches
    /// `configuration` (the daemon's flags), that the guest file has exactly
    /// the region's size (fstat) and, for memfd backing, carries the
    /// F_SEAL_GROW|F_SEAL_SHRINK seals; secretmem cannot be sealed, so only its
    /// size is checked. Then it maps the file and re-applies every shared run
    /// of the bitmap. Every refusal says what does not match. On failure
    /// `guestDescriptor` stays open and the caller's; on success the memory owns it.
    public static func recover(
        guestDescriptor: Int32,
        state: StateFile,
        configuration: Configuration,
        protection: any PageProtection = KernelPageProtection()
    ) throws(GmemError) -> GuestMemory {
        let header = state.header
        let mismatches = header.mismatches(
            regionSize: configuration.size,
            pageSize: Self.systemPageSize,
            folioSize: configuration.folioSize,
            backing: configuration.backing,
            directMap: configuration.directMap
        )
        guard mismatches.isEmpty else {
            throw GmemError(
                .invalidArgument,
                "the stored region does not match this gmemd's flags: \(mismatches.joined(separator: "; "))"
            )
        }
        try Self.validateGuestFile(guestDescriptor, header: header)
        let geometry = try RegionGeometry(
            regionSize: header.regionSize,
            pageSize: Int(header.pageSize),
            folioSize: Int(header.folioSize)
        )
        let region = try Region(
            adopting: guestDescriptor,
            geometry: geometry,
            backing: configuration.backing,
            initiallyAccessible: configuration.directMap
        )
        let memory = GuestMemory(
            region: region,
            configuration: configuration,
            protection: protection,
            attributeRecorder: state
        )
        // Whole 2 MiB chunks of a run convert in one protection call each
        // (their metadata stays unallocated); only ragged ends go page by page.
        try state.forEachSharedRun { (run: Range<Int>) throws(GmemError) in
            let address = GuestPhysicalAddress(UInt64(run.lowerBound) << UInt64(geometry.pageShift))
            try memory.setAttributes(at: address, size: UInt64(run.count) << UInt64(geometry.pageShift), shared: true)
        }
        return memory
    }

    /// The guest file's size and seals against the state header.
    static func validateGuestFile(_ fd: Int32, header: StateFileHeader) throws(GmemError) {
        var status = stat()
        // fstat: the size the file really has, whatever anybody claims.
        guard fstat(fd, &status) == 0 else { throw .systemCall("fstat of the stored guest fd", errno: errno) }
        guard UInt64(status.st_size) == header.regionSize else {
            throw GmemError(
                .invalidArgument,
                "stored guest memory is \(status.st_size) bytes but its state file records a region of \(header.regionSize) bytes"
            )
        }
        guard header.backing == .memfd else { return }  // secretmem refuses F_ADD_SEALS; its size is all there is.
        // A memfd that could grow or shrink could fault the mapping (SIGBUS) later.
        let seals = cgmem_get_seals(fd)
        guard seals >= 0 else {
            throw GmemError(
                .invalidArgument,
                "stored guest fd is not a sealable memfd: F_GET_SEALS failed (\(String(cString: strerror(errno))))"
            )
        }
        guard seals & Region.requiredSeals == Region.requiredSeals else {
            throw GmemError(
                .invalidArgument,
                "stored guest memfd lacks the F_SEAL_GROW|F_SEAL_SHRINK seals (seals 0x\(String(seals, radix: 16)))"
            )
        }
    }
}
