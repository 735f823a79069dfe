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
    /// The supplementary groups, without gid 0 (see ``supplementaryGroups(in:)``).
    var groups: [UInt32]

    /// Reads the credentials of `channel`'s peer. The supplementary groups are
    /// read only when `withGroups` (a policy that names groups); a peer with
    /// more than `CGMEM_PEER_GROUPS_MAX` of them is judged by its primary gid,
    /// with a warning in the log.
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
            let peer = PeerCredentials(pid: ucred.pid, uid: ucred.uid, gid: ucred.gid, groups: [])
            guard withGroups else { return channel.eventLoop.makeSucceededFuture(peer) }
            let groups: EventLoopFuture<cgmem_peer_groups> = provider.unsafeGetSocketOption(
                level: level,
                name: CGMEM_SO_PEERGROUPS
            )
            return groups.map { groups in
                var peer = peer
                peer.groups = Self.supplementaryGroups(in: groups)
                return peer
            }.recover { error in
                logger.warning(
                    "cannot read the peer's supplementary groups (\(error)); judging it by its primary gid",
                    metadata: ["pid": "\(peer.pid)", "uid": "\(peer.uid)", "gid": "\(peer.gid)"]
                )
                return peer
            }
        }
    }

    /// The groups in a SO_PEERGROUPS buffer. NIO zero-fills the buffer and
    /// does not report how much the kernel wrote, so unused entries read as
    /// gid 0 and cannot be told apart from a real supplementary gid 0: every
    /// 0 is dropped. Root's group still counts as a *primary* gid.
    static func supplementaryGroups(in buffer: cgmem_peer_groups) -> [UInt32] {
        withUnsafeBytes(of: buffer.gids) { bytes in
            bytes.bindMemory(to: gid_t.self).filter { $0 != 0 }.map { UInt32($0) }
        }
    }

    var description: String {
        let groups = self.groups.isEmpty ? "" : " groups=\(self.groups.map(String.init).joined(separator: ","))"
        return "pid=\(self.pid) uid=\(self.uid) gid=\(self.gid)\(groups)"
    }
}
