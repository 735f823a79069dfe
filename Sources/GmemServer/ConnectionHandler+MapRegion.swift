import GmemCore
import GmemProtocol

/// MAP_REGION: the guest memfd, for the one process that stands in for KVM.
///
/// A multi-process VMM's vCPU process registers guest memory as a KVM
/// memslot, so it must map the region itself (this kernel has no
/// guest_memfd). That peer sees all guest memory; every other client reaches
/// it only through the refcounted protocol. So the memfd goes only to peers
/// the operator named (`--allow-map-uid`, `--allow-map-group`), never to a
/// read-only connection (rule 5 answers those before this), and every hand-over
/// is logged.
extension ConnectionHandler {
    func mapRegion(_ header: FrameHeader) throws {
        guard self.mayMapRegion else { throw Errno.notPermitted }
        let memory = self.server.memory
        // secretmem pages cannot be pinned, so KVM could not use them.
        guard memory.configuration.backing != .secretmem else { throw Errno.operationNotSupported }
        self.logger.notice("handing the guest memfd to the peer (MAP_REGION)")
        self.replyWithDescriptors(
            header,
            payload: MapRegionReply(mmapSize: memory.geometry.regionSize, regionID: self.server.configuration.regionID),
            // The daemon's own descriptor: sendmsg duplicates it into the peer; it stays open here.
            descriptors: [memory.region.fileDescriptor]
        )
    }
}
