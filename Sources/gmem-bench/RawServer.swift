import ArgumentParser
import GmemProtocol
import GmemTesting
import NIOPosix
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
        /// SwiftNIO event loops (one per core) with a single handler: a diagnostic, the floor of any NIO server.
        case nio

        /// The mode of the two exclusive flags that choose one (the command lines validate that).
        init(epoll: Bool, nio: Bool) {
            self = epoll ? .epoll : nio ? .nio : .threads
        }

        /// How reports name the baseline.
        var label: String { self == .threads ? "raw" : "raw-\(self.rawValue)" }
        var summary: String {
            switch self {
            case .threads: "thread per connection"
            case .epoll: "epoll loops"
            case .nio: "SwiftNIO event loops"
            }
        }
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
    private var nioGroup: MultiThreadedEventLoopGroup?
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
            throw GmemError.systemCall("mmap of the raw server's \(size)-byte region", errno: errno)
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
        self.listenFD = try UnixSocket.listen(at: socketPath)
    }

    deinit {
        munmap(self.memory, self.size)
    }

    /// Starts accepting on a background thread.
    func start() throws {
        try self.startLoops()
        if self.mode == .nio { return }
        self.acceptThread = try PosixThread(stackSize: 256 << 10) { [self] in self.acceptLoop() }
    }

    /// Stops accepting and removes the socket file. Connection threads end as their clients hang up.
    func stop() {
        guard !self.stopping.exchange(true, ordering: .relaxed) else { return }
        if let group = self.nioGroup {
            // NIO owns the listening socket and closes it.
            try? group.syncShutdownGracefully()
            unlink(self.socketPath)
            return
        }
        shutdown(self.listenFD, Int32(SHUT_RDWR))
        self.acceptThread?.join()
        close(self.listenFD)
        unlink(self.socketPath)
    }

    /// Serves until stopped (for the `raw-server` command).
    func serveForever() throws {
        try self.startLoops()
        if self.mode == .nio {
            while true { pause() }
        }
        self.acceptLoop()
    }

    private func startLoops() throws {
        if self.mode == .nio, self.nioGroup == nil { self.nioGroup = try self.startNIO(listenFD: self.listenFD) }
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
                if !self.stopping.load(ordering: .relaxed) {
                    warn("raw-server: \(GmemError.systemCall("accept", errno: errno))")
                }
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
        var session = RawSession(maxPayload: self.maxPayload)
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        var start = 0
        var end = 0
        do {
            while true {
                if end == capacity {
                    // Compact the partial frame to the front.
                    memmove(buffer.baseAddress!, buffer.baseAddress! + start, end - start)
                    end -= start
                    start = 0
                }
                let count = try UnixSocket.readSome(
                    fd,
                    into: UnsafeMutableRawBufferPointer(start: buffer.baseAddress! + end, count: capacity - end)
                )
                if count == 0 { return }
                end += count
                let served = session.answerFrames(
                    UnsafeRawBufferPointer(rebasing: buffer[start..<end]),
                    server: self,
                    into: &out
                )
                start += served.consumed
                if served.mustClose {
                    try UnixSocket.writeAll(fd, out)
                    return
                }
                if start == end {
                    start = 0
                    end = 0
                }
                if !out.isEmpty {
                    try UnixSocket.writeAll(fd, out)
                    out.removeAll(keepingCapacity: true)
                }
            }
        } catch {
            // The client went away; nothing to report.
        }
    }

    @inline(__always)
    func answer(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
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

/// One connection's framing in every raw mode: frames are answered in order, and the first must be HELLO.
struct RawSession {
    private var decoder: FrameDecoder
    private var greeted = false

    init(maxPayload: Int) {
        self.decoder = FrameDecoder(maxPayload: maxPayload)
    }

    /// Answers every complete frame at the front of `bytes` into `out`. `consumed` bytes were used; with
    /// `mustClose`, `out` ends with the error that ends the connection.
    mutating func answerFrames(
        _ bytes: UnsafeRawBufferPointer,
        server: RawServer,
        into out: inout [UInt8]
    ) -> (consumed: Int, mustClose: Bool) {
        var start = 0
        while true {
            let pending = UnsafeRawBufferPointer(rebasing: bytes[start...])
            switch self.decoder.decodeNext(pending) {
            case .needMoreBytes:
                return (start, false)
            case .badLength(let header):
                Reply.encodeError(replyingTo: header, .messageTooLong, into: &out)
                return (start, true)
            case .frame(let header):
                let length = Int(header.length)
                let payload = UnsafeRawBufferPointer(rebasing: pending[FrameHeader.size..<length])
                start += length
                if !self.greeted && header.opcode != .hello {
                    Reply.encodeError(replyingTo: header, .protocolError, into: &out)
                    return (start, true)
                }
                self.greeted = true
                server.answer(header, payload, into: &out)
            }
        }
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

    @Flag(help: "Serve from SwiftNIO event loops with one minimal handler: a diagnostic baseline.")
    var nio = false

    func validate() throws {
        if self.epoll && self.nio { throw ValidationError("choose one of --epoll and --nio") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let mode = RawServer.Mode(epoll: self.epoll, nio: self.nio)
        let server = try RawServer(
            socketPath: self.socket,
            size: Int(self.size.bytes),
            maxPayload: Int(self.maxPayload.bytes),
            mode: mode
        )
        warn(
            "raw-server: listening on \(self.socket) (\(self.size), \(mode.summary))"
        )
        try server.serveForever()
    }
}
