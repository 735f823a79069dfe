#if canImport(Glibc)
import Glibc
#endif

/// A test failure with a message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// sockaddr_un plumbing for the harness's sockets.
enum UnixAddress {
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8.prefix(buffer.count - 1))
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    static func bind(_ fd: Int32, path: String) throws {
        unlink(path)
        let result = Self.withAddress(path) { Glibc.bind(fd, $0, $1) }
        guard result == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
    }

    /// A listening Unix stream socket at `path`, as gmemd.socket would pass it.
    static func listeningSocket(path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        try Self.bind(fd, path: path)
        guard listen(fd, 64) == 0 else { throw TestFailure("listen: \(errno)") }
        return fd
    }

    /// A connected stream socket, or nil when nobody accepts at `path`.
    static func connect(path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let result = Self.withAddress(path) { Glibc.connect(fd, $0, $1) }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    static func send(_ fd: Int32, text: String, to path: String) throws {
        let sent = Self.withAddress(path) { address, length in
            Array(text.utf8).withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, address, length) }
        }
        guard sent >= 0 else { throw TestFailure("sendto \(path): \(errno)") }
    }
}

/// A private temporary directory, removed with its files by ``remove()``.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/gmemd-sd-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp: \(errno)")
        }
        self.path = String(cString: made)
    }

    /// Removes the files the tests made (flat directory) and the directory.
    func remove() {
        guard let directory = opendir(self.path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(self.path + "/" + name) }
        }
        closedir(directory)
        rmdir(self.path)
    }
}
