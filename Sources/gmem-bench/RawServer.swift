import ArgumentParser
import GmemProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The physical limit: a minimal server on plain blocking syscalls, one thread per connection, speaking protocol
/// v1's framing for HELLO, PING, READ (memcpy from an always-accessible shared anonymous mapping) and STATS (all
/// counters zero). Everything else is answered `-EOPNOTSUPP`. No protection changes, no locks, no event loop.
final class RawServer: @unchecked Sendable {
    /// How connections are served.
    enum Mode: String, Sendable {
        /// A thread per connection blocked in read(2): the physical limit.
        case threads
        /// Event loops like the daemon's shape (one per core): epoll_wait, then one read and one write per ready
        /// connection. A diagnostic: what an event-loop server costs over plain blocking threads.
        case epoll
    }

    let socketPath: String
    let mode: Mode
    let size: Int
    let maxPayload: Int
    private let listenFD: Int32
    private let memory: UnsafeMutableRawPointer
    private let hello: HelloReply
    private let stopping = Atomic<Bool>(false)
    private var acceptThread: PosixThread?
    private var loops: [EpollLoop] = []
    private var nextLoop = 0

    init(
        socketPath: String,
        size: Int = 64 << 20,
        maxPayload: Int = WireProtocol.defaultMaxPayload,
        mode: Mode = .threads
    ) throws {
        self.mode = mode
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard size >= pageSize, size % pageSize == 0 else {
            throw BenchError("raw server size must be a multiple of \(pageSize)")
        }
        // MAP_SHARED | MAP_ANONYMOUS is shmem, like gmemd's memfd; every page is touched so none faults later.
        guard let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
            mapping != MAP_FAILED
        else {
            throw SystemError("mmap of the raw server's \(size)-byte region")
        }
        memset(mapping, 0xA5, size)
        self.memory = mapping
        self.size = size
        self.maxPayload = maxPayload
        self.socketPath = socketPath
        self.hello = HelloReply(
            features: [],
            pageSize: UInt32(pageSize),
            folioSize: UInt32(pageSize),
            regionSize: UInt64(size),
            regionID: 0x7261_775f_6261_7365,
            maxPayload: UInt32(maxPayload),
            maxGpcs: 0,
            regionFlags: []
        )
        self.listenFD = try UnixSocket.listen(path: socketPath)
    }

    deinit {
        munmap(self.memory, self.size)
    }

    /// Starts accepting on a background thread.
    func start() throws {
        try self.startLoops()
        self.acceptThread = try PosixThread(stackSize: 256 << 10) { [self] in self.acceptLoop() }
    }

    /// Stops accepting and removes the socket file. Connection threads end as their clients hang up.
    func stop() {
        guard !self.stopping.exchange(true, ordering: .relaxed) else { return }
        shutdown(self.listenFD, Int32(SHUT_RDWR))
        self.acceptThread?.join()
        close(self.listenFD)
        unlink(self.socketPath)
    }

    /// Serves until stopped (for the `raw-server` command).
    func serveForever() throws {
        try self.startLoops()
        self.acceptLoop()
    }

    private func startLoops() throws {
        guard self.mode == .epoll, self.loops.isEmpty else { return }
        let count = max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        for _ in 0..<count { self.loops.append(try EpollLoop(server: self)) }
    }

    private func acceptLoop() {
        while !self.stopping.load(ordering: .relaxed) {
            // accept4 (SOCK_CLOEXEC) is hidden behind _GNU_SOURCE; a gmemd spawned later may inherit a copy of
            // a baseline connection, which is harmless.
            let fd = accept(self.listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if !self.stopping.load(ordering: .relaxed) { warn("raw-server: \(SystemError("accept"))") }
                return
            }
            do {
                if self.mode == .epoll {
                    self.loops[self.nextLoop % self.loops.count].adopt(fd)
                    self.nextLoop += 1
                    continue
                }
                let thread = try PosixThread(stackSize: 256 << 10) { [self] in self.serve(fd) }
                thread.detach()
            } catch {
                warn("raw-server: \(error)")
                close(fd)
            }
        }
    }

    /// One connection: read whatever arrived, answer every complete frame, write all replies at once.
    private func serve(_ fd: Int32) {
        defer { close(fd) }
        let capacity = FrameHeader.size + self.maxPayload + (64 << 10)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
        defer { buffer.deallocate() }
        var decoder = FrameDecoder(maxPayload: self.maxPayload)
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        var start = 0
        var end = 0
        var greeted = false
        do {
            while true {
                if end == capacity {
                    // Compact the partial frame to the front.
                    memmove(buffer.baseAddress!, buffer.baseAddress! + start, end - start)
                    end -= start
                    start = 0
                }
                let count = try readSome(fd, buffer.baseAddress! + end, capacity - end)
                if count == 0 { return }
                end += count
                frames: while true {
                    let pending = UnsafeRawBufferPointer(rebasing: buffer[start..<end])
                    switch decoder.decodeNext(pending) {
                    case .needMoreBytes:
                        break frames
                    case .badLength(let header):
                        Reply.encodeError(replyingTo: header, .messageTooLong, into: &out)
                        try writeAll(fd, out)
                        return
                    case .frame(let header):
                        let length = Int(header.length)
                        let payload = UnsafeRawBufferPointer(rebasing: pending[FrameHeader.size..<length])
                        start += length
                        if !greeted && header.opcode != .hello {
                            Reply.encodeError(replyingTo: header, .protocolError, into: &out)
                            try writeAll(fd, out)
                            return
                        }
                        greeted = true
                        self.answer(header, payload, into: &out)
                    }
                }
                if start == end {
                    start = 0
                    end = 0
                }
                if !out.isEmpty {
                    try writeAll(fd, out)
                    out.removeAll(keepingCapacity: true)
                }
            }
        } catch {
            // The client went away; nothing to report.
        }
    }

    @inline(__always)
    fileprivate func answer(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let request: Request
        do throws(Errno) {
            request = try Request.decode(header: header, payload: payload)
        } catch {
            Reply.encodeError(replyingTo: header, error, into: &out)
            return
        }
        switch request {
        case .hello:
            Reply.encode(replyingTo: header, payload: self.hello, into: &out)
        case .ping(let bytes):
            Reply.encode(replyingTo: header, payload: bytes, into: &out)
        case .read(let gpa, let length):
            guard Int(length) <= self.maxPayload else {
                Reply.encodeError(replyingTo: header, .messageTooLong, into: &out)
                return
            }
            guard gpa <= UInt64(self.size), UInt64(length) <= UInt64(self.size) - gpa else {
                Reply.encodeError(replyingTo: header, .badAddress, into: &out)
                return
            }
            let bytes = UnsafeRawBufferPointer(start: self.memory + Int(gpa), count: Int(length))
            Reply.encode(replyingTo: header, payload: bytes, into: &out)
        case .stats:
            let names = StatsReply.requiredNames.map { (name: $0, value: UInt64(0)) }
            if let stats = try? StatsReply(names) {
                Reply.encode(replyingTo: header, payload: stats, into: &out)
            } else {
                Reply.encodeError(replyingTo: header, .ioError, into: &out)
            }
        default:
            Reply.encodeError(replyingTo: header, .operationNotSupported, into: &out)
        }
    }
}

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
    var decoder: FrameDecoder
    var greeted = false
    var out: [UInt8] = []

    init(fd: Int32, maxPayload: Int) {
        self.fd = fd
        self.buffer = .allocate(byteCount: FrameHeader.size + maxPayload + (64 << 10), alignment: 64)
        self.decoder = FrameDecoder(maxPayload: maxPayload)
    }

    deinit {
        self.buffer.deallocate()
        close(self.fd)
    }
}

/// One event loop of the epoll flavour of ``RawServer``: level-triggered epoll, one recv(MSG_DONTWAIT) and one
/// write per ready connection, as an event-loop server does.
private final class EpollLoop: @unchecked Sendable {
    unowned let server: RawServer
    let epollFD: Int32

    init(server: RawServer) throws {
        self.server = server
        self.epollFD = sys_epoll_create1(EpollEvent.closeOnExec)
        guard self.epollFD >= 0 else { throw SystemError("epoll_create1") }
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
            let count = sys_epoll_wait(self.epollFD, events.baseAddress, 64, -1)
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
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
        frames: while true {
            let pending = UnsafeRawBufferPointer(rebasing: connection.buffer[connection.start..<connection.end])
            switch connection.decoder.decodeNext(pending) {
            case .needMoreBytes:
                break frames
            case .badLength(let header):
                Reply.encodeError(replyingTo: header, .messageTooLong, into: &connection.out)
                try? writeAll(connection.fd, connection.out)
                return false
            case .frame(let header):
                let length = Int(header.length)
                let payload = UnsafeRawBufferPointer(rebasing: pending[FrameHeader.size..<length])
                connection.start += length
                if !connection.greeted && header.opcode != .hello {
                    Reply.encodeError(replyingTo: header, .protocolError, into: &connection.out)
                    try? writeAll(connection.fd, connection.out)
                    return false
                }
                connection.greeted = true
                self.server.answer(header, payload, into: &connection.out)
            }
        }
        if connection.start == connection.end {
            connection.start = 0
            connection.end = 0
        }
        if !connection.out.isEmpty {
            // Blocking write: the replies of one read fit the socket buffer, so it never waits in practice.
            do { try writeAll(connection.fd, connection.out) } catch { return false }
            connection.out.removeAll(keepingCapacity: true)
        }
        return true
    }
}

/// `gmem-bench raw-server`: the baseline server, in the foreground.
struct RawServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw-server",
        abstract:
            "Serve HELLO, PING and READ from a plain, always-accessible mapping: the baseline of `run` and `suite`."
    )

    @Option(help: "The Unix socket to listen on.")
    var socket: String

    @Option(help: "Bytes of memory READ serves (K, M, G suffixes).")
    var size = ByteSize(bytes: 64 << 20)

    @Option(help: "The max_payload the HELLO reply announces.")
    var maxPayload = ByteSize(bytes: UInt64(WireProtocol.defaultMaxPayload))

    @Flag(
        help: "Serve from epoll event loops (one per core) instead of a thread per connection: a diagnostic baseline."
    )
    var epoll = false

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let mode: RawServer.Mode = self.epoll ? .epoll : .threads
        let server = try RawServer(
            socketPath: self.socket,
            size: Int(self.size.bytes),
            maxPayload: Int(self.maxPayload.bytes),
            mode: mode
        )
        warn(
            "raw-server: listening on \(self.socket) (\(self.size), \(self.epoll ? "epoll loops" : "thread per connection"))"
        )
        try server.serveForever()
    }
}
