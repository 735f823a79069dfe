import GmemErrno
import GmemProtocol
import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

// The raw-epoll baseline (`run --raw --raw-epoll`): the same answers as RawServer, served from one epoll loop per
// core. Not a target baseline; it shows what an event-loop design costs over blocking threads.

// epoll(7) is not in the Glibc module Swift imports (sys/epoll.h is not part of it), and this target may not
// depend on NIO's shims: the three calls are bound by symbol name. Their arguments are plain integers and pointers,
// which the Swift and C calling conventions pass alike on x86_64 and arm64.
@_silgen_name("epoll_create1") private func sys_epoll_create1(_ flags: Int32) -> Int32
@_silgen_name("epoll_ctl") private func sys_epoll_ctl(
    _ epfd: Int32,
    _ op: Int32,
    _ fd: Int32,
    _ event: UnsafeMutableRawPointer?
) -> Int32
@_silgen_name("epoll_wait") private func sys_epoll_wait(
    _ epfd: Int32,
    _ events: UnsafeMutableRawPointer?,
    _ maxEvents: Int32,
    _ timeout: Int32
) -> Int32

/// struct epoll_event: {u32 events; u64 data}, packed on x86_64 (12 bytes), naturally aligned elsewhere (16).
private enum EpollEvent {
    #if arch(x86_64)
    static let size = 12
    static let dataOffset = 4
    #else
    static let size = 16
    static let dataOffset = 8
    #endif
    static let epollIn: UInt32 = 0x001
    static let add: Int32 = 1
    static let delete: Int32 = 2
    static let closeOnExec: Int32 = 0o2000000
}

/// The state of one connection of an ``EpollLoop``.
private final class EpollConnection {
    let fd: Int32
    let buffer: UnsafeMutableRawBufferPointer
    var start = 0
    var end = 0
    var session: RawSession
    var out: [UInt8] = []

    init(fd: Int32, maxPayload: Int) {
        self.fd = fd
        self.buffer = .allocate(byteCount: FrameHeader.size + maxPayload + (64 << 10), alignment: 64)
        self.session = RawSession(maxPayload: maxPayload)
    }

    deinit {
        self.buffer.deallocate()
        close(self.fd)
    }
}

/// One event loop of the epoll flavour of ``RawServer``: level-triggered epoll, one recv(MSG_DONTWAIT) and one
/// write per ready connection, as an event-loop server does.
final class EpollLoop: @unchecked Sendable {
    unowned let server: RawServer
    let epollFD: Int32

    init(server: RawServer) throws {
        self.server = server
        self.epollFD = sys_epoll_create1(EpollEvent.closeOnExec)
        guard self.epollFD >= 0 else { throw GmemError.systemCall("epoll_create1", errno: errno) }
        let thread = try PosixThread(stackSize: 256 << 10) { [self] in self.run() }
        thread.detach()
    }

    /// Registers a new connection (called from the accept thread; epoll_ctl is thread-safe).
    func adopt(_ fd: Int32) {
        let connection = Unmanaged.passRetained(EpollConnection(fd: fd, maxPayload: self.server.maxPayload))
        var event = [UInt8](repeating: 0, count: EpollEvent.size)
        let added = event.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: EpollEvent.epollIn, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(
                of: UInt64(UInt(bitPattern: connection.toOpaque())),
                toByteOffset: EpollEvent.dataOffset,
                as: UInt64.self
            )
            return sys_epoll_ctl(self.epollFD, EpollEvent.add, fd, raw.baseAddress)
        }
        if added != 0 { connection.release() }
    }

    private func run() {
        let events = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * EpollEvent.size, alignment: 16)
        defer { events.deallocate() }
        while true {
            let count = SystemCall.retryingOnInterrupt { sys_epoll_wait(self.epollFD, events.baseAddress, 64, -1) }
            guard count >= 0 else { return }
            for index in 0..<Int(count) {
                let data = events.loadUnaligned(
                    fromByteOffset: index * EpollEvent.size + EpollEvent.dataOffset,
                    as: UInt64.self
                )
                let pointer = UnsafeMutableRawPointer(bitPattern: UInt(data))!
                let connection = Unmanaged<EpollConnection>.fromOpaque(pointer).takeUnretainedValue()
                if !self.service(connection) {
                    _ = sys_epoll_ctl(self.epollFD, EpollEvent.delete, connection.fd, nil)
                    Unmanaged<EpollConnection>.fromOpaque(pointer).release()
                }
            }
        }
    }

    /// One read and the replies to every complete frame; false when the connection is done.
    private func service(_ connection: EpollConnection) -> Bool {
        let capacity = connection.buffer.count
        if connection.end == capacity {
            memmove(
                connection.buffer.baseAddress!,
                connection.buffer.baseAddress! + connection.start,
                connection.end - connection.start
            )
            connection.end -= connection.start
            connection.start = 0
        }
        let count = recv(
            connection.fd,
            connection.buffer.baseAddress! + connection.end,
            capacity - connection.end,
            Int32(MSG_DONTWAIT)
        )
        if count < 0 { return errno == EAGAIN || errno == EINTR }
        if count == 0 { return false }
        connection.end += count
        let served = connection.session.answerFrames(
            UnsafeRawBufferPointer(rebasing: connection.buffer[connection.start..<connection.end]),
            server: self.server,
            into: &connection.out
        )
        connection.start += served.consumed
        if served.mustClose {
            try? UnixSocket.writeAll(connection.fd, connection.out)
            return false
        }
        if connection.start == connection.end {
            connection.start = 0
            connection.end = 0
        }
        if !connection.out.isEmpty {
            // Blocking write: the replies of one read fit the socket buffer, so it never waits in practice.
            do { try UnixSocket.writeAll(connection.fd, connection.out) } catch { return false }
            connection.out.removeAll(keepingCapacity: true)
        }
        return true
    }
}
