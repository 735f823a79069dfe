import GmemCore
import GmemProtocol
import NIOCore

/// Requests of a ready connection, mapped onto the core. Each case applies
/// the protocol's precedence: shape (-EINVAL, -EMSGSIZE) before bounds
/// (-EFAULT) before handles (-ENOENT) before cache state and resources.
extension ConnectionHandler {
    func dispatch(_ header: FrameHeader, payload: UnsafeRawBufferPointer, readOnly: Bool) {
        let request: Request
        do {
            request = try Request.decode(header: header, payload: payload)
        } catch {
            return self.fail(header, error)
        }
        if readOnly && request.isModifying {
            return self.fail(header, Errno.notPermitted)
        }
        let memory = self.server.memory
        let maxPayload = self.server.configuration.maxPayload
        do {
            switch request {
            case .hello:
                // The state machine answers every HELLO; this is unreachable but harmless.
                throw Errno.alreadyInProgress
            case .ping(let bytes):
                Reply.encode(replyingTo: header, payload: bytes, into: &self.outbound)
            case .read, .write, .gpcRead, .gpcWrite, .readv, .writev, .atomic, .gpcAtomic:
                try self.performDataPath(header, request)
            case .gpcActivate(let gpa, let length):
                try self.activateCache(header, gpa: gpa, length: Int(length))
            case .gpcDeactivate(let handle):
                guard let cache = self.caches.remove(handle: handle) else { throw Errno.noSuchEntry }
                memory.deactivate(cache)
                Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
            case .gpcRefresh(let handle, let gpa, let length):
                try memory.validateCacheTarget(at: GuestPhysicalAddress(gpa), length: Int(length))
                guard let cache = self.caches[handle] else { throw Errno.noSuchEntry }
                try memory.refresh(cache, to: GuestPhysicalAddress(gpa), length: Int(length))
                Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
            case .setAttributes(let gpa, let size, let attributes):
                let shared = attributes & WireProtocol.attributePrivate == 0
                try self.runMaybeOffloaded(header, size: size) { () throws(GmemError) in
                    try memory.setAttributes(at: GuestPhysicalAddress(gpa), size: size, shared: shared)
                }
            case .discard(let gpa, let size):
                try self.runMaybeOffloaded(header, size: size) { () throws(GmemError) in
                    try memory.discard(at: GuestPhysicalAddress(gpa), size: size)
                }
            case .stats:
                var entries: [StatsReply.Entry] = []
                for (name, value) in self.server.statisticsEntries() {
                    entries.append(try StatsReply.Entry(name: name, value: value))
                }
                Reply.encode(replyingTo: header, payload: try StatsReply(entries: entries), into: &self.outbound)
            case .pageState(let gpa, let pageCount):
                guard memory.geometry.isPageAligned(gpa) else { throw Errno.invalidArgument }
                guard PageStateReply.payloadLength(pageCount: pageCount) <= maxPayload else {
                    throw Errno.messageTooLong
                }
                let states = try memory.pageStates(at: GuestPhysicalAddress(gpa), pageCount: Int(pageCount))
                let entries = states.map {
                    PageStateEntry(
                        saturatingRefcount: Int($0.count),
                        isPrivate: $0.isPrivate,
                        isAccessible: $0.isAccessible
                    )
                }
                Reply.encode(replyingTo: header, payload: PageStateReply(entries: entries), into: &self.outbound)
            case .ringSetup(let entries, let dataSize):
                try self.setUpRing(header, entries: entries, dataSize: dataSize)
            case .ringClose(let ringID):
                try self.closeRing(ringID)
                Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
            case .mapRegion:
                try self.mapRegion(header)
            }
        } catch {
            self.fail(header, error)
        }
    }

    /// The data path, as the socket carries it: bytes a request reads go
    /// straight from guest memory into the reply (no intermediate copy); a
    /// READV or WRITEV that failed part way gets the progress payload.
    private func performDataPath(_ header: FrameHeader, _ request: Request) throws {
        let length = try self.dataPath.outputLength(of: request)
        do {
            switch request {
            case .read, .gpcRead, .readv:
                try self.replyWithCopy(header, length: length) { buffer in
                    _ = try self.dataPath.perform(request, output: buffer, holding: &self.held)
                }
            case .atomic, .gpcAtomic:
                let value = try self.dataPath.perform(request, output: .init(start: nil, count: 0), holding: &self.held)
                Reply.encode(replyingTo: header, payload: AtomicReply(value: value), into: &self.outbound)
            default:
                _ = try self.dataPath.perform(request, output: .init(start: nil, count: 0), holding: &self.held)
                Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
            }
        } catch let failure as VectorAccessError where failure.madeProgress {
            let progress = VectorProgressPayload(
                bytesCompleted: UInt64(failure.bytesCompleted),
                segment: UInt32(failure.segment),
                segmentBytes: UInt32(failure.segmentBytes)
            )
            Reply.encodeVectorPartialFailure(
                replyingTo: header,
                failure.error.code,
                progress: progress,
                into: &self.outbound
            )
            self.server.errors.wrappingAdd(1, ordering: .relaxed)
            self.logger.notice("\(header.opcode) failed after \(failure.bytesCompleted) bytes: \(failure.error)")
        }
    }

    /// Appends an error reply for any error the core or the decoder threw.
    func fail(_ header: FrameHeader, _ error: any Error) {
        let errno = DataPath.errno(of: error)
        Reply.encodeError(replyingTo: header, errno, into: &self.outbound)
        self.server.errors.wrappingAdd(1, ordering: .relaxed)
        if errno == .ioError || errno == .noMemory {
            self.logger.notice("\(header.opcode) failed: \(error)")
        }
    }

    /// Writes a reply of `length` bytes that `copy` fills straight from guest
    /// memory into the outbound buffer: no intermediate copy. On error the
    /// half-written reply is dropped before the error reply is appended.
    func replyWithCopy(
        _ header: FrameHeader,
        length: Int,
        _ copy: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        let start = self.outbound.buffer.writerIndex
        FrameHeader.reply(to: header, status: 0, payloadLength: length).write(to: &self.outbound)
        do {
            self.outbound.buffer.reserveCapacity(minimumWritableBytes: length)
            try self.outbound.buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
                try copy(UnsafeMutableRawBufferPointer(rebasing: bytes[..<length]))
                return length
            }
        } catch {
            self.outbound.buffer.moveWriterIndex(to: start)
            throw error
        }
    }

    private func activateCache(_ header: FrameHeader, gpa: UInt64, length: Int) throws {
        let memory = self.server.memory
        if self.caches.count >= self.server.configuration.maxCachesPerConnection {
            // Shape and bounds errors take precedence over the resource limit.
            try memory.validateCacheTarget(at: GuestPhysicalAddress(gpa), length: length)
            throw Errno.noSpace
        }
        let handle = self.nextHandle
        let cache = try memory.activateCache(
            at: GuestPhysicalAddress(gpa),
            length: length,
            tag: handle,
            onInvalidation: self.makeInvalidationHandler()
        )
        self.nextHandle += 1
        self.caches.insert(cache, handle: handle)
        Reply.encode(replyingTo: header, payload: GpcActivateReply(handle: handle), into: &self.outbound)
    }

    /// Runs a conversion or discard inline when small, else on the thread
    /// pool, pausing this connection (and only it) until the reply is queued.
    private func runMaybeOffloaded(
        _ header: FrameHeader,
        size: UInt64,
        _ operation: @escaping @Sendable () throws(GmemError) -> Void
    ) throws {
        guard size > self.server.configuration.offloadThreshold, let context = self.context else {
            try operation()
            Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
            return
        }
        self.carryOut(self.state.offloadStarted())
        self.logger.debug("running \(header.opcode) of \(size) bytes on the thread pool")
        self.server.threadPool.runIfActive(eventLoop: context.eventLoop) { try operation() }
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success: Reply.encodeEmpty(replyingTo: header, into: &self.outbound)
                case .failure(let error): self.fail(header, error)
                }
                if let flow = self.state.offloadDone() { self.carryOut(flow) }
            }
    }

    /// The callback a cache runs when a conversion or discard invalidates it,
    /// possibly on another connection's thread.
    private func makeInvalidationHandler() -> GuestPageCache.InvalidationHandler {
        let loop = self.context!.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        return { cache, reason in
            let handle = cache.tag
            let wireReason = GmemProtocol.InvalidationReason(rawValue: reason.rawValue)
            if loop.inEventLoop {
                handler.value.cacheInvalidated(handle: handle, reason: wireReason)
            } else {
                loop.execute { handler.value.cacheInvalidated(handle: handle, reason: wireReason) }
            }
        }
    }

    /// Sends GPC_INVALIDATED. During this connection's own dispatch it joins
    /// the batch, ahead of the reply to the request that caused it.
    func cacheInvalidated(handle: UInt64, reason: GmemProtocol.InvalidationReason) {
        guard self.caches[handle] != nil, let delivery = self.state.eventReady() else { return }
        let event = GpcInvalidatedEvent(handle: handle, reason: reason)
        switch delivery {
        case .joinBatch:
            Reply.encodeEvent(event, into: &self.outbound)
        case .send(let write):
            self.reuseOutbound()
            Reply.encodeEvent(event, into: &self.outbound)
            self.carryOut(write)
        }
    }
}
