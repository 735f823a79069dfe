import NIOCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

extension GmemServer: Service {
    /// Serves until the service group shuts down gracefully, then drains.
    ///
    /// A shutdown that begins while the socket is still being bound (a signal
    /// during start-up) skips `onServing`: the socket is closed again at once
    /// and its file removed. Cancellation (the group's shutdown time is up, or
    /// a sibling service failed) cuts the drain short; the event loops'
    /// shutdown then closes what is still open.
    public func run() async throws {
        let listening = try await self.bind()
        if !Task.isShuttingDownGracefully { self.onServing(self) }
        // Returns at graceful shutdown; throws only when cancelled, which ends serving the same way.
        try? await gracefulShutdown()
        self.onShutdown(self)
        await self.drain(listening)
        // Every connection is closed: their rings stop with the pollers, whose
        // last pass releases every page the rings held.
        self.context.ringPollers.stop()
    }

    /// Stops accepting, lets every connection answer what it has received and
    /// close, then removes the socket file.
    private func drain(_ listening: Listening) async {
        let drained = listening.channel.eventLoop.makePromise(of: Void.self)
        // Closes the listening socket and fires ChannelShouldQuiesceEvent at
        // every open connection; succeeds once the last of them has closed.
        listening.quiescing.initiateShutdown(promise: drained)
        await withTaskCancellationHandler {
            do {
                try await drained.futureResult.get()
            } catch {
                self.context.logger.warning("connections did not close in time; closing them")
            }
        } onCancel: {
            // A promise completes once; the quiescing helper's later success is then ignored.
            drained.fail(CancellationError())
        }
        // The listening socket is closed before its file goes, so nobody connects to a vanished path.
        try? await listening.channel.closeFuture.get()
        // An inherited socket belongs to systemd; only our own file is removed.
        if listening.ownsSocketFile { unlink(self.context.configuration.socketPath) }
    }
}
