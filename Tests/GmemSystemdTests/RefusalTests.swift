import CGmemSys
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension DaemonTests {
    @Suite("stored fds that do not fit are refused, never silently replaced")
    struct Refusal {
        /// A harness whose fd store holds a real region of 8 MiB, daemon stopped.
        static func storedRegion() throws -> ServiceHarness {
            let harness = try ServiceHarness()
            let daemon = try harness.start()
            try harness.waitReady()
            daemon.signal(SIGTERM)
            #expect(daemon.waitForExit() == 0)
            harness.notify.clearMessages()
            return harness
        }

        static func storedFD(_ harness: ServiceHarness, _ name: String) -> Int32 {
            harness.notify.store.first { $0.name == name }!.fd
        }

        /// Starts gmemd with `stored`, expects exit status 1 and a message containing `expected`.
        static func expectRefusal(
            _ harness: ServiceHarness,
            stored: [(fd: Int32, name: String)],
            arguments: [String]? = nil,
            _ expected: String
        ) throws {
            let daemon = try harness.start(arguments: arguments, storedFDs: stored)
            let status = daemon.waitForExit()
            #expect(status == 1, "exit status \(String(describing: status)); log:\n\(daemon.log)")
            #expect(daemon.log.contains(expected), "log lacks \"\(expected)\":\n\(daemon.log)")
            #expect(!harness.notify.messages.contains { $0.has("READY=1") })
        }

        @Test("a guest memfd of the wrong size")
        func wrongSize() throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            let fake = cgmem_memfd_create("gmemd-guest", CGMEM_MFD_CLOEXEC | CGMEM_MFD_ALLOW_SEALING)
            #expect(ftruncate(fake, 4 << 20) == 0)
            #expect(cgmem_add_seals(fake, CGMEM_F_SEAL_GROW | CGMEM_F_SEAL_SHRINK) == 0)
            defer { close(fake) }
            try Self.expectRefusal(
                harness,
                stored: [(fake, "gmemd-guest"), (Self.storedFD(harness, "gmemd-state"), "gmemd-state")],
                "stored guest memory is 4194304 bytes but its state file records a region of 8388608 bytes"
            )
        }

        @Test("an unsealed guest memfd")
        func unsealed() throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            let fake = cgmem_memfd_create("gmemd-guest", CGMEM_MFD_CLOEXEC)
            #expect(ftruncate(fake, off_t(ServiceHarness.regionSize)) == 0)
            defer { close(fake) }
            try Self.expectRefusal(
                harness,
                stored: [(fake, "gmemd-guest"), (Self.storedFD(harness, "gmemd-state"), "gmemd-state")],
                "lacks the F_SEAL_GROW|F_SEAL_SHRINK seals"
            )
        }

        @Test("only one of the two fds", arguments: ["gmemd-guest", "gmemd-state"])
        func onlyOne(name: String) throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            let other = name == "gmemd-guest" ? "gmemd-state" : "gmemd-guest"
            try Self.expectRefusal(
                harness,
                stored: [(Self.storedFD(harness, name), name)],
                "handed back \(name) without \(other)"
            )
        }

        @Test("flags that do not match the stored geometry")
        func flagMismatch() throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            try Self.expectRefusal(
                harness,
                stored: harness.notify.store.map { ($0.fd, $0.name) },
                arguments: harness.arguments(size: 16 << 20, extra: ["--direct-map"]),
                "region size: stored 8388608 bytes, --size asks 16777216; direct-map: stored off, --direct-map is on"
            )
        }

        @Test("a state file whose header is corrupt")
        func corruptState() throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            let state = Self.storedFD(harness, "gmemd-state")
            var status = stat()
            fstat(state, &status)
            let fake = cgmem_memfd_create("gmemd-state", CGMEM_MFD_CLOEXEC | CGMEM_MFD_ALLOW_SEALING)
            defer { close(fake) }
            #expect(ftruncate(fake, status.st_size) == 0)
            var header = [UInt8](repeating: 0, count: 128)
            _ = pread(state, &header, 128, 0)
            header[20] ^= 0x55  // One bit pattern of the region_id.
            _ = pwrite(fake, header, 128, 0)
            _ = cgmem_add_seals(fake, CGMEM_F_SEAL_GROW | CGMEM_F_SEAL_SHRINK)
            try Self.expectRefusal(
                harness,
                stored: [(Self.storedFD(harness, "gmemd-guest"), "gmemd-guest"), (fake, "gmemd-state")],
                "state header checksum mismatch"
            )
        }

        @Test("--reset-region discards the stored region and stores a new one")
        func resetRegion() throws {
            let harness = try Self.storedRegion()
            defer { harness.tearDown() }
            let oldGuest = Self.storedFD(harness, "gmemd-guest")
            var oldStatus = stat()
            fstat(oldGuest, &oldStatus)
            // Mismatched flags would be refused; with --reset-region they start a new region.
            try harness.start(arguments: harness.arguments(size: 16 << 20, extra: ["--reset-region"]))
            try harness.waitReady()
            let hello = try WireClient(path: harness.socketPath).sayHello()
            #expect(hello.regionSize == 16 << 20)
            #expect(!hello.regionFlags.contains(.recovered))
            let removed = harness.notify.messages.filter { $0.has("FDSTOREREMOVE=1") }.compactMap {
                $0.fields["FDNAME"]
            }
            #expect(removed == ["gmemd-guest", "gmemd-state"])
            #expect(harness.notify.store.map(\.name) == ["gmemd-guest", "gmemd-state"])
            var newStatus = stat()
            fstat(Self.storedFD(harness, "gmemd-guest"), &newStatus)
            #expect(newStatus.st_ino != oldStatus.st_ino && newStatus.st_size == 16 << 20)
        }
    }
}
