import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One sd_notify datagram as the service manager sees it.
struct NotifyMessage: Sendable {
    var fields: [String: String]
    var descriptors: [Int32]
    var time: ContinuousClock.Instant

    func has(_ assignment: String) -> Bool {
        let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
        return parts.count == 2 && self.fields[parts[0]] == parts[1]
    }
}

/// The test's stand-in for systemd's notification socket: a datagram socket
/// at NOTIFY_SOCKET that records READY/STATUS/WATCHDOG/STOPPING and keeps an
/// fd store (FDSTORE=1 with SCM_RIGHTS, FDSTOREREMOVE=1) like PID 1 does.
final class NotifyListener: @unchecked Sendable {  // Mutable state behind `state`; the fd is immutable.
    let path: String
    private let fd: Int32
    private let state = Mutex<(messages: [NotifyMessage], store: [(name: String, fd: Int32)], closed: Bool)>(
        ([], [], false)
    )
    private var thread: pthread_t? = nil

    init(directory: String) throws {
        self.path = directory + "/notify.sock"
        // SOCK_DGRAM like systemd's: one datagram per notification.
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        self.fd = fd
        try UnixAddress.bind(fd, path: self.path)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(
            &thread,
            nil,
            { argument in
                let listener = Unmanaged<NotifyListener>.fromOpaque(argument!).takeRetainedValue()
                listener.receiveLoop()
                return nil
            },
            box.toOpaque()
        )
        self.thread = thread
    }

    /// Stops receiving and closes the socket and every stored fd.
    func close() {
        let stored = self.state.withLock { state -> [Int32] in
            state.closed = true
            defer { state.store = [] }
            return state.store.map(\.fd)
        }
        for fd in stored { Glibc.close(fd) }
        // A datagram to ourselves wakes the receive loop so it sees `closed`.
        let wake = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try? UnixAddress.send(wake, text: "X_WAKE=1", to: self.path)
        Glibc.close(wake)
        if let thread { pthread_join(thread, nil) }
        Glibc.close(self.fd)
        unlink(self.path)
    }

    private func receiveLoop() {
        while true {
            guard let (text, fds) = self.receive() else { continue }
            let done = self.state.withLock { state -> Bool in
                if state.closed { return true }
                var fields: [String: String] = [:]
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                let message = NotifyMessage(fields: fields, descriptors: fds, time: .now)
                state.messages.append(message)
                // What systemd does with the fd store, for the two requests gmemd sends.
                if fields["FDSTORE"] == "1" {
                    let name = fields["FDNAME"] ?? "stored"
                    for fd in fds { state.store.append((name, fd)) }
                } else {
                    for fd in fds { Glibc.close(fd) }
                }
                if fields["FDSTOREREMOVE"] == "1", let name = fields["FDNAME"] {
                    for entry in state.store where entry.name == name { Glibc.close(entry.fd) }
                    state.store.removeAll { $0.name == name }
                }
                return false
            }
            if done {
                for fd in fds { Glibc.close(fd) }
                return
            }
        }
    }

    /// One datagram and the fds it carried (SCM_RIGHTS).
    private func receive() -> (String, [Int32])? {
        var data = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 512)
        var controlLength = 0
        let received: Int = data.withUnsafeMutableBytes { dataBytes in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: dataBytes.baseAddress, iov_len: dataBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var header = msghdr()
                    header.msg_iov = vectorPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBytes.baseAddress
                    header.msg_controllen = controlBytes.count
                    // MSG_CMSG_CLOEXEC: stored fds must not leak into unrelated children.
                    let count = recvmsg(self.fd, &header, Int32(MSG_CMSG_CLOEXEC))
                    controlLength = Int(header.msg_controllen)
                    return count
                }
            }
        }
        control.removeSubrange(min(controlLength, control.count)...)
        guard received >= 0 else { return nil }
        return (String(decoding: data[..<received], as: UTF8.self), Self.rights(in: control))
    }

    /// Parses SCM_RIGHTS out of a control buffer (CMSG_* are macros Swift cannot call).
    private static func rights(in control: [UInt8]) -> [Int32] {
        var fds: [Int32] = []
        var offset = 0
        let headerSize = MemoryLayout<cmsghdr>.size
        while offset + headerSize <= control.count {
            let (length, level, type) = control.withUnsafeBytes { bytes in
                (
                    bytes.loadUnaligned(fromByteOffset: offset, as: Int.self),
                    bytes.loadUnaligned(fromByteOffset: offset + 8, as: Int32.self),
                    bytes.loadUnaligned(fromByteOffset: offset + 12, as: Int32.self)
                )
            }
            guard length >= headerSize, offset + length <= control.count else { break }
            if level == SOL_SOCKET && type == Int32(SCM_RIGHTS) {
                let count = (length - headerSize) / 4
                for index in 0..<count {
                    fds.append(
                        control.withUnsafeBytes {
                            $0.loadUnaligned(fromByteOffset: offset + headerSize + 4 * index, as: Int32.self)
                        }
                    )
                }
            }
            offset += (length + 7) & ~7
        }
        return fds
    }

    var messages: [NotifyMessage] { self.state.withLock { $0.messages } }

    /// The fd store's entries, in the order they were stored.
    var store: [(name: String, fd: Int32)] { self.state.withLock { $0.store } }

    /// Forgets the messages so far (the store is kept, as across a restart).
    func clearMessages() { self.state.withLock { $0.messages.removeAll() } }

    /// Waits until a message satisfies `predicate`; returns it, or nil on timeout.
    func waitFor(timeout: Duration = .seconds(10), _ predicate: (NotifyMessage) -> Bool) -> NotifyMessage? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = self.messages.first(where: predicate) { return found }
            usleep(10_000)
        }
        return nil
    }
}
