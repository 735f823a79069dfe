import GmemCommandLine
import GmemCore
import GmemProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Care of the socket file before binding: a stale file from a crashed
/// daemon is replaced, a live daemon's is never taken over.
enum SocketFile {
    static func prepare(path: String) throws {
        guard path.utf8.count <= SocketPath.maximumLength else {
            throw GmemError(.invalidArgument, "socket path \(path) is longer than \(SocketPath.maximumLength) bytes")
        }
        try Self.createParentDirectory(of: path)
        var status = stat()
        guard lstat(path, &status) == 0 else { return }  // Nothing there: bind creates it.
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw GmemError(.invalidArgument, "\(path) exists and is not a socket; refusing to replace it")
        }
        if Self.answers(path: path) {
            throw GmemError(Errno(rawValue: EADDRINUSE), "another gmemd is already serving on \(path)")
        }
        // Nobody listens: the file is left over from a daemon that died.
        guard unlink(path) == 0 || errno == ENOENT else {
            throw GmemError.systemCall("cannot remove the stale socket \(path)", errno: errno)
        }
    }

    /// Creates the socket's directory (one level, mode 0755) when it is
    /// missing, as for the default /run/gmemd outside systemd, whose socket
    /// unit creates it otherwise.
    static func createParentDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw GmemError.systemCall("cannot create the socket directory \(directory)", errno: errno)
        }
    }

    /// Whether a process accepts connections on the socket at `path`.
    static func answers(path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8.prefix(buffer.count - 1))
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
