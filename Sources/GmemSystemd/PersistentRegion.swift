import GmemCore
import GmemProtocol
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The guest memory one gmemd start serves: recovered from systemd's fd store
/// when the store handed it back, else a new region whose memfd and state
/// file go into the store, so a restart finds them.
///
/// Existing memory is never replaced silently: a region that does not match
/// the flags, or half of a region, is refused with a message naming what is
/// wrong, and only `--reset-region` discards it.
public struct PersistentRegion: Sendable {
    public let memory: GuestMemory
    public let state: StateFile
    public let regionID: UInt64
    /// True when the memory came back from the fd store (HELLO's RECOVERED flag).
    public let recovered: Bool

    /// Opens the region.
    ///
    /// - Parameters:
    ///   - configuration: the region the flags ask for.
    ///   - inherited: what LISTEN_FDS carried; its stored fds are consumed
    ///     (adopted, or closed when refused or reset).
    ///   - resetRegion: discard stored memory and start a new region.
    /// - Throws: a ``GmemError`` whose reason is the message for stderr.
    public static func open(
        configuration: GuestMemory.Configuration,
        inherited: InheritedDescriptors,
        resetRegion: Bool,
        notifier: any ServiceNotifier,
        logger: Logger
    ) throws(GmemError) -> PersistentRegion {
        switch (inherited.guest, inherited.state) {
        case (let guest?, let state?) where !resetRegion:
            return try Self.recover(guest: guest, state: state, configuration: configuration, logger: logger)
        case (nil, nil):
            return try Self.create(configuration: configuration, notifier: notifier, logger: logger)
        case (let guest, let state) where !resetRegion:
            for fd in [guest, state].compactMap({ $0 }) { close(fd) }
            let present = guest != nil ? InheritedDescriptors.guestName : InheritedDescriptors.stateName
            let missing = guest != nil ? InheritedDescriptors.stateName : InheritedDescriptors.guestName
            throw GmemError(
                .invalidArgument,
                "the fd store handed back \(present) without \(missing); refusing to serve half of a stored region. "
                    + "Nothing was changed. Start once with --reset-region to discard the stored memory"
            )
        case (let guest, let state):
            // --reset-region: the one way to give up stored memory.
            for fd in [guest, state].compactMap({ $0 }) { close(fd) }
            notifier.removeStored(name: InheritedDescriptors.guestName)
            notifier.removeStored(name: InheritedDescriptors.stateName)
            logger.warning("--reset-region: discarded the stored region; starting a new one")
            return try Self.create(configuration: configuration, notifier: notifier, logger: logger)
        }
    }

    private static func recover(
        guest: Int32,
        state stateDescriptor: Int32,
        configuration: GuestMemory.Configuration,
        logger: Logger
    ) throws(GmemError) -> PersistentRegion {
        let state: StateFile
        do {
            state = try StateFile.adopt(stateDescriptor)
        } catch {
            close(stateDescriptor)
            close(guest)
            throw Self.refusal(error)
        }
        let memory: GuestMemory
        do {
            memory = try GuestMemory.recover(guestDescriptor: guest, state: state, configuration: configuration)
        } catch {
            close(guest)  // The state file closes its own fd when released.
            throw Self.refusal(error)
        }
        logger.notice(
            "recovered the region from the fd store",
            metadata: [
                "region_id": "\(HelloReply.formatted(regionID: state.header.regionID))",
                "size": "\(state.header.regionSize)",
            ]
        )
        return PersistentRegion(memory: memory, state: state, regionID: state.header.regionID, recovered: true)
    }

    private static func create(
        configuration: GuestMemory.Configuration,
        notifier: any ServiceNotifier,
        logger: Logger
    ) throws(GmemError) -> PersistentRegion {
        let regionID = UInt64.random(in: 1...UInt64.max)
        let (memory, state) = try GuestMemory.makePersistent(configuration, regionID: regionID)
        // Both fds are stored before READY=1, so no client can have written
        // anything a crash in between could lose.
        let storedGuest = notifier.store(memory.region.fileDescriptor, name: InheritedDescriptors.guestName)
        let storedState = notifier.store(state.fileDescriptor, name: InheritedDescriptors.stateName)
        if storedGuest && storedState {
            logger.info(
                "stored the region in the fd store",
                metadata: ["region_id": "\(HelloReply.formatted(regionID: regionID))"]
            )
        } else {
            logger.info("no service manager took the region: it will not survive a restart")
        }
        return PersistentRegion(memory: memory, state: state, regionID: regionID, recovered: false)
    }

    private static func refusal(_ error: GmemError) -> GmemError {
        GmemError(
            error.code,
            "refusing the region from the fd store: \(error.reason). Nothing was changed. "
                + "Fix the flags, or start once with --reset-region to discard the stored memory"
        )
    }

}
