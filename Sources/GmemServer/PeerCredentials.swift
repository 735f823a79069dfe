import CGmemSys
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connection, as the kernel recorded it when
/// the peer called connect(2): SO_PEERCRED and SO_PEERGROUPS.
struct PeerCredentials: Sendable, Hashable {
    var pid: Int32
    var uid: UInt32
    /// The primary gid.
    var gid: UInt32
    /// The supplementary groups (see ``supplementaryGroups(in:hasAny:)``);
    /// `nil` when they could not be read.
    var groups: [UInt32]?

    /// Reads the credentials of `channel`'s peer. The supplementary groups are
    /// read only when `withGroups` (a policy that names groups). For a peer
    /// with more than `CGMEM_PEER_GROUPS_MAX` of them they stay unknown (`nil`),
    /// with a warning in the log: ``AccessPolicy`` then fails safe.
    static func read(from channel: any Channel, withGroups: Bool, logger: Logger) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let level = SocketOptionLevel(SOL_SOCKET)
        let credentials: EventLoopFuture<cgmem_ucred> = provider.unsafeGetSocketOption(
            level: level,
            name: CGMEM_SO_PEERCRED
        )
        return credentials.flatMap { ucred in
            let peer = PeerCredentials(pid: ucred.pid, uid: ucred.uid, gid: ucred.gid, groups: nil)
            guard withGroups else { return channel.eventLoop.makeSucceededFuture(peer) }
            let groups: EventLoopFuture<cgmem_peer_groups> = provider.unsafeGetSocketOption(
                level: level,
                name: CGMEM_SO_PEERGROUPS
            )
            // The same option with no room: it succeeds only for a peer without
            // supplementary groups (otherwise ERANGE), which tells "no groups"
            // from "only group 0" in the zero-filled answer above.
            let none: EventLoopFuture<NoRoom> = provider.unsafeGetSocketOption(
                level: level,
                name: CGMEM_SO_PEERGROUPS
            )
            let hasAny = none.map { _ in false }.recover { _ in true }
            return groups.and(hasAny).map { groups, hasAny in
                var peer = peer
                peer.groups = Self.supplementaryGroups(in: groups, hasAny: hasAny)
                return peer
            }.recover { error in
                logger.warning(
                    "cannot read the peer's supplementary groups (\(error)); group grants are ignored, a read-only group applies",
                    metadata: ["pid": "\(peer.pid)", "uid": "\(peer.uid)", "gid": "\(peer.gid)"]
                )
                return peer
            }
        }
    }

    /// The groups in a SO_PEERGROUPS buffer. NIO zero-fills the buffer and
    /// does not report how much the kernel wrote, so unused room reads as
    /// gid 0. The kernel keeps a credential's groups sorted, so a real group 0
    /// comes first: it is real when a nonzero group follows, or, when every
    /// entry is 0, when the peer has any group at all (`hasAny`).
    static func supplementaryGroups(in buffer: cgmem_peer_groups, hasAny: Bool) -> [UInt32] {
        withUnsafeBytes(of: buffer.gids) { bytes in
            let entries = bytes.bindMemory(to: gid_t.self)
            let nonzero = entries.filter { $0 != 0 }.map { UInt32($0) }
            let hasZero = entries.first == 0 && (!nonzero.isEmpty || hasAny)
            return (hasZero ? [0] : []) + nonzero
        }
    }

    /// A zero-sized option value: getsockopt is given no room at all.
    private struct NoRoom: Sendable {}

    var description: String {
        let groups: String
        switch self.groups {
        case nil: groups = " groups=unknown"
        case let list? where list.isEmpty: groups = ""
        case let list?:
            // At most a few: a peer may have hundreds, and this goes on every log line.
            let shown = list.prefix(8).map(String.init).joined(separator: ",")
            groups = " groups=\(shown)\(list.count > 8 ? ",…(\(list.count))" : "")"
        }
        return "pid=\(self.pid) uid=\(self.uid) gid=\(self.gid)\(groups)"
    }
}
