/// The reference model's RING_SETUP, RING_CLOSE and MAP_REGION, written from
/// PROTOCOL.md sections 5.18 to 5.20. The harness runs the handler on an
/// EmbeddedChannel, which has no socket to pass descriptors over, so it allows
/// no rings (`--max-rings 0`): a well-formed RING_SETUP gets -ENOSPC, after
/// every shape rule; the rings themselves are fuzzed against the real daemon.
/// Its peer is named by no `--allow-map-*` option: a well-formed MAP_REGION
/// gets -EPERM.
extension Session {
    mutating func checkRingRequest(_ header: RequestHeader, _ q: ArraySlice<UInt8>, _ reply: OutputFrame) {
        let einval = -Errno.EINVAL
        if header.opcode == 20 {
            // Rule 4: {u32 flags = 0, u32 reserved = 0}; then rule 5 or the missing grant, both -EPERM.
            guard q.count == 8, q.u32(0) == 0, q.u32(4) == 0 else {
                return self.expectError(reply, einval, "MAP_REGION shape")
            }
            return self.expectError(reply, -Errno.EPERM, "MAP_REGION by a peer no --allow-map-* names")
        }
        if header.opcode == 18 {
            // Rule 4: {u32 entries, u32 flags = 0, u64 data_size}.
            guard q.count == 16, q.u32(4) == 0 else { return self.expectError(reply, einval, "RING_SETUP shape") }
            let entries = q.u32(0)
            let size = q.u64(8)
            guard entries >= 1, entries <= 4096, entries & (entries - 1) == 0 else {
                return self.expectError(reply, einval, "RING_SETUP entries")
            }
            guard size >= 4096, size <= 64 << 20, size % 4096 == 0 else {
                return self.expectError(reply, einval, "RING_SETUP data_size")
            }
            return self.expectError(reply, -Errno.ENOSPC, "RING_SETUP over --max-rings 0")
        }
        guard q.count == 8, q.u32(4) == 0 else { return self.expectError(reply, einval, "RING_CLOSE shape") }
        self.expectError(reply, -Errno.ENOENT, "RING_CLOSE of a ring that was never set up")
    }
}
