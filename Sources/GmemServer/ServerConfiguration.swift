import GmemProtocol
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Everything the server needs besides the guest memory itself.
public struct ServerConfiguration: Sendable {
    /// Where to listen, unless a listening socket is inherited.
    public var socketPath: String
    /// The socket file's mode, 0600 by default: guest memory is private.
    public var socketMode: UInt32 = 0o600
    /// At least ``minimumMaxPayload``; smaller values are raised to it.
    public var maxPayload: Int = WireProtocol.defaultMaxPayload
    /// The protocol's floor for max_payload: every fixed reply (HELLO, STATS) fits in it.
    public static let minimumMaxPayload = 4096
    public var maxCachesPerConnection: Int = 4096
    public var maxConnections: Int = 1024
    /// A frame left half-sent for longer than this closes its connection.
    public var frameTimeout: TimeAmount = .seconds(30)
    public var access: AccessPolicy = AccessPolicy()
    /// Set when the memory came back from systemd's fd store (HELLO's RECOVERED flag).
    public var recovered: Bool = false
    /// A stable random identity of the memory, kept across restarts.
    public var regionID: UInt64 = .random(in: 1...UInt64.max)
    /// Conversions and discards larger than this run on a thread pool so
    /// they do not stall the other connections of their event loop.
    public var offloadThreshold: UInt64 = 64 << 20
    /// Rings one connection may have open at once (RING_SETUP's -ENOSPC).
    public var maxRingsPerConnection: Int = 8
    /// How long a ring poller keeps polling after the last entry it found
    /// before it sleeps on the doorbells; 0 sleeps at once (doorbell only).
    public var ringPollMicroseconds: Int = 50
    /// Poller threads serving every connection's rings.
    public var ringThreads: Int = 1

    public init(socketPath: String) {
        self.socketPath = socketPath
    }
}

/// Who may connect, decided from the peer's credentials (SO_PEERCRED and
/// SO_PEERGROUPS) at accept.
public struct AccessPolicy: Sendable, Hashable {
    public var allowedUIDs: Set<UInt32> = []
    /// Peers with one of these as their primary or a supplementary group are allowed.
    public var allowedGIDs: Set<UInt32> = []
    /// Peers in this group (primary or supplementary) may only read, root included.
    public var readOnlyGID: UInt32? = nil
    /// The daemon's own uid, always allowed alongside root.
    public var ownUID: UInt32
    /// Peers with one of these uids may MAP_REGION (none by default, root included).
    public var mapUIDs: Set<UInt32> = []
    /// Peers with one of these as their primary or a supplementary group may MAP_REGION.
    public var mapGIDs: Set<UInt32> = []

    public enum Decision: Sendable, Hashable {
        case readWrite
        case readOnly
        case denied
    }

    public init(ownUID: UInt32 = UInt32(getuid())) {
        self.ownUID = ownUID
    }

    /// Whether ``decide(uid:gid:groups:)`` looks at supplementary groups, so
    /// that they are read at all.
    public var usesGroups: Bool {
        !self.allowedGIDs.isEmpty || self.readOnlyGID != nil || !self.mapGIDs.isEmpty
    }

    /// Whether a peer may receive the guest memfd (MAP_REGION): only one the
    /// map grants name, and never one that ``decide(uid:gid:groups:)`` makes
    /// read-only (a mapping can write). Unknown groups grant nothing.
    public func mayMap(uid: UInt32, gid: UInt32, groups: [UInt32]? = []) -> Bool {
        guard self.decide(uid: uid, gid: gid, groups: groups) == .readWrite else { return false }
        return self.mapUIDs.contains(uid) || self.mapGIDs.contains(gid)
            || (groups ?? []).contains(where: self.mapGIDs.contains)
    }

    /// Read-only membership wins over every grant; otherwise root, the
    /// daemon's own uid, an allowed uid or an allowed group admits.
    ///
    /// `groups` are the supplementary groups, `nil` when they could not be
    /// read. Unknown groups fail safe: they grant nothing, and with a
    /// read-only group configured an admitted peer only gets to read.
    public func decide(uid: UInt32, gid: UInt32, groups: [UInt32]? = []) -> Decision {
        if let readOnly = self.readOnlyGID, gid == readOnly || groups?.contains(readOnly) ?? true {
            let admitted = gid == readOnly || groups?.contains(readOnly) == true || self.grants(uid: uid, gid: gid, [])
            return admitted ? .readOnly : .denied
        }
        return self.grants(uid: uid, gid: gid, groups ?? []) ? .readWrite : .denied
    }

    private func grants(uid: UInt32, gid: UInt32, _ groups: [UInt32]) -> Bool {
        uid == 0 || uid == self.ownUID || self.allowedUIDs.contains(uid) || self.allowedGIDs.contains(gid)
            || groups.contains(where: self.allowedGIDs.contains)
    }
}
