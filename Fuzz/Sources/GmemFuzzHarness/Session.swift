import GmemServer
import NIOCore
import NIOEmbedded
import NIOPosix

/// One fuzz input's connection: drives the channel and matches what the
/// daemon sends against the requests delivered so far.
struct Session {
    let input: FuzzInput
    let setup: FuzzHarness.Setup
    var model: ProtocolModel
    var violations: [String] = []

    /// Start of the next request frame not yet answered.
    var cursor = 0
    /// Bytes of the stream handed to the channel so far.
    var delivered = 0
    var output: [UInt8] = []
    var frames: [OutputFrame] = []
    /// Pages a transient READ or WRITE touched in the current read batch: the
    /// daemon may hold their references until the batch ends.
    var touchedInBatch: Set<Int> = []

    init(input: FuzzInput, setup: FuzzHarness.Setup) {
        self.input = input
        self.setup = setup
        self.model = ProtocolModel(
            pageSize: setup.memory.geometry.pageSize,
            folioSize: setup.folioSize,
            regionSize: setup.memory.geometry.regionSize,
            directMap: setup.directMap,
            readOnly: input.readOnly,
            // The server raises a smaller max_payload to its floor, so that
            // every fixed reply (HELLO, STATS) fits; HELLO reports the result.
            maxPayload: max(input.maxPayload, ServerConfiguration.minimumMaxPayload),
            maxCaches: FuzzHarness.maxCaches
        )
    }

    mutating func violation(_ message: String) {
        self.violations.append(message)
    }

    // MARK: Driving the channel

    mutating func run() {
        var configuration = ServerConfiguration(socketPath: "/nonexistent/gmemd-fuzz.sock")
        configuration.maxPayload = self.input.maxPayload
        configuration.maxCachesPerConnection = FuzzHarness.maxCaches
        configuration.frameTimeout = FuzzHarness.frameTimeout
        // An EmbeddedEventLoop cannot take completions from a thread pool:
        // every conversion and discard runs inline (the real daemon offloads
        // those over 64 MiB; the fault campaign covers that path).
        configuration.offloadThreshold = .max
        // No socket to pass a ring's descriptors over (Session+Rings.swift).
        configuration.maxRingsPerConnection = 0
        let handler = GmemServer.makeConnectionHandler(
            memory: self.setup.memory,
            configuration: configuration,
            readOnly: self.input.readOnly,
            threadPool: FuzzHarness.threadPool
        )
        let channel = EmbeddedChannel(handler: handler)
        do {
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/nonexistent/gmemd-fuzz.sock")).wait()
        } catch {
            return self.violation("EmbeddedChannel connect failed: \(error)")
        }

        var start = 0
        for (index, size) in self.input.chunkSizes.enumerated() {
            guard channel.isActive else { break }
            var buffer = channel.allocator.buffer(capacity: size)
            buffer.writeBytes(self.input.stream[start..<(start + size)])
            start += size
            self.delivered = start
            self.touchedInBatch = []
            do {
                try channel.writeInbound(buffer)
                // A socket channel ends every read with channelReadComplete, where
                // the daemon flushes and drops the read burst's page references.
                channel.pipeline.fireChannelReadComplete()
            } catch {
                self.violation("the pipeline raised \(error) on read \(index)")
            }
            self.afterRead(channel, label: "read \(index)")
            guard self.violations.isEmpty else { break }

            if self.input.timeoutAfterChunk == index, channel.isActive {
                let partial = self.cursor < self.delivered
                channel.embeddedEventLoop.advanceTime(by: FuzzHarness.frameTimeout + .milliseconds(1))
                if partial {
                    self.model.phase = .closed
                }
                self.afterRead(channel, label: "the frame timeout after read \(index)")
                guard self.violations.isEmpty else { break }
            }
        }

        // The client goes away; the daemon releases everything it held.
        do {
            _ = try channel.finish(acceptAlreadyClosed: true)
        } catch {
            self.violation("closing the channel failed: \(error)")
        }
        channel.embeddedEventLoop.run()
    }

    /// Collects what the channel wrote and matches it against the requests delivered so far.
    mutating func afterRead(_ channel: EmbeddedChannel, label: String) {
        do {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                self.output += buffer.readableBytesView
            }
        } catch {
            return self.violation("reading the daemon's output failed after \(label): \(error)")
        }
        self.parseOutput(label: label)
        guard self.violations.isEmpty else { return }

        while self.model.phase != .closed, self.delivered - self.cursor >= 16 {
            let stream = self.input.stream
            let header = RequestHeader(
                length: stream.u32(self.cursor),
                opcode: stream.u16(self.cursor + 4),
                flags: stream.u16(self.cursor + 6),
                id: stream.u32(self.cursor + 8),
                status: Int32(bitPattern: stream.u32(self.cursor + 12))
            )
            if header.length < 16 || Int(header.length) > 16 + self.model.maxPayload {
                // Rule 1: -EMSGSIZE with the header's opcode and id, then close.
                guard let reply = self.nextReply(for: header) else { return }
                self.expectError(reply, -Errno.EMSGSIZE, "a frame length of \(header.length)")
                self.model.phase = .closed
                break
            }
            guard self.delivered - self.cursor >= Int(header.length) else { break }
            let payload = stream[(self.cursor + 16)..<(self.cursor + Int(header.length))]
            self.cursor += Int(header.length)
            guard let reply = self.nextReply(for: header) else { return }
            self.check(header, payload, reply)
            guard self.violations.isEmpty else { return }
        }
        if let extra = self.frames.first {
            return self.violation("after \(label): a frame no request explains: \(extra.summary)")
        }
        let shouldBeOpen = self.model.phase != .closed
        if channel.isActive != shouldBeOpen {
            self.violation(
                "after \(label): the connection is \(channel.isActive ? "open" : "closed"), but the protocol says it \(shouldBeOpen ? "stays open" : "closes")"
            )
        }
    }
}
