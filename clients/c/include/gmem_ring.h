/*
 * gmem_ring.h - libgmem's shared-memory ring transport (PROTOCOL.md section 10).
 *
 * A ring is a memory area shared with gmemd: a submission queue, a completion queue and a data area. The data
 * path (read, write, readv, writev, GPC read and write, atomics, ping) runs through it with the socket's semantics
 * and error rules, without a system call per request while the daemon's poller is awake. Control stays on the
 * socket: GPCs are activated, refreshed and deactivated with gmem_gpc_*() on the connection, and their
 * invalidation events arrive on the connection's event fd.
 *
 * Two ways to use a ring:
 *   - one call at a time: gmem_ring_read() and friends submit one entry and wait for its completion;
 *   - batches: gmem_ring_prep_*() fill entries, gmem_ring_submit() publishes them all at once,
 *     gmem_ring_reap() collects completions (waiting for as many as asked).
 *   A ring with batch entries in flight refuses the one-call functions with -EBUSY.
 *
 * Data: the library copies what a write carries into the data area when the entry is prepared, and copies what a
 * read returns into the caller's buffer when its completion is reaped, so a read's buffer must stay valid until
 * then. The data area is handed out in order and reclaimed when nothing is in flight; an entry that does not fit
 * the data area at all is -EMSGSIZE, one that does not fit beside the entries in flight -EBUSY (reap first).
 *
 * Errors are negative errno values, as in gmem.h. Besides the daemon's (exactly those of the socket request):
 *   -EOPNOTSUPP  the daemon does not serve rings (HELLO did not grant GMEM_FEATURE_RINGS);
 *   -EBUSY       the ring has no room for another entry in flight (at most `entries`), or one-call use while a
 *                batch is in flight;
 *   -ECONNRESET  the connection is gone (the daemon died, closed it, or gmem_close() ran): the ring is dead;
 *   -EPROTO      the daemon left the ring's shared memory inconsistent: the ring is dead.
 *
 * Threads: one thread at a time per ring. Different rings, and a ring and its connection, need no coordination
 * with each other, except that gmem_ring_open() and gmem_ring_close() send requests on the connection and so count
 * as calls on it. Close a connection's rings before gmem_close(); a ring still open then is dead (-ECONNRESET)
 * and must still be closed with gmem_ring_close().
 */
#ifndef GMEM_RING_H
#define GMEM_RING_H

#include "gmem.h"

#ifdef __cplusplus
extern "C" {
#endif

struct gmem_ring;

/* One reaped completion. */
struct gmem_completion {
    uint64_t user_data;           /* as given to gmem_ring_prep_*() */
    int32_t status;               /* 0 or a negative errno */
    uint32_t len;                 /* bytes transferred on success (readv, writev: all segments) */
    uint64_t value;               /* atomics: the value before the operation */
    struct gmem_progress progress; /* a failed read/write/readv/writev that moved some bytes; else zero */
};

/*
 * RING_SETUP on g: a ring of entries slots (a power of two, 1 to 4096) and data_size bytes of data area (a
 * multiple of 4096, 4096 to 64 MiB), mapped into this process. A call on g (serialise it with g's others).
 * Returns the ring, or NULL with errno: EOPNOTSUPP (no RINGS), EINVAL (entries or data_size), ENOSPC (the
 * connection has --max-rings rings), ENOMEM, EPROTO (the descriptors or the header page are not as specified),
 * or the connection's error.
 */
struct gmem_ring *gmem_ring_open(struct gmem *g, unsigned entries, size_t data_size);

/*
 * RING_CLOSE (if the connection still lives; the daemon completes what it consumed first), then unmaps the ring
 * and frees r. Completions not reaped are lost. r may be NULL. A call on the ring's connection.
 */
void gmem_ring_close(struct gmem_ring *r);

/* One call at a time: as gmem_read() and the others in gmem.h, through the ring. */
ssize_t gmem_ring_read(struct gmem_ring *r, uint64_t gpa, void *buf, size_t len);
ssize_t gmem_ring_write(struct gmem_ring *r, uint64_t gpa, const void *buf, size_t len);
ssize_t gmem_ring_readv(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, void *buf);
ssize_t gmem_ring_writev(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, const void *buf);
int gmem_ring_gpc_read(struct gmem_ring *r, uint64_t handle, uint32_t offset, void *buf, uint32_t len);
int gmem_ring_gpc_write(struct gmem_ring *r, uint64_t handle, uint32_t offset, const void *buf, uint32_t len);
int gmem_ring_atomic(struct gmem_ring *r, const struct gmem_atomic_op *op, uint64_t *old_value);
int gmem_ring_gpc_atomic(struct gmem_ring *r, uint64_t handle, uint32_t offset, const struct gmem_atomic_op *op,
                         uint64_t *old_value);
int gmem_ring_ping(struct gmem_ring *r);

/* How far the last one-call read/write/readv/writev on r that failed got, as gmem_last_progress(). Returns 0. */
int gmem_ring_last_progress(struct gmem_ring *r, struct gmem_progress *out);

/*
 * Batches. Each prep function fills one entry (not yet visible to the daemon) and returns 0, or -EBUSY (no room:
 * submit and reap first), -EMSGSIZE (larger than the data area), -EINVAL (a NULL buffer with a length; a kind or
 * size over 255), or -ECONNRESET/-EPROTO (the ring is dead). Arguments the daemon judges (alignment, bounds,
 * handles) come back in the completion's status.
 */
int gmem_ring_prep_read(struct gmem_ring *r, uint64_t gpa, void *buf, uint32_t len, uint64_t user_data);
int gmem_ring_prep_write(struct gmem_ring *r, uint64_t gpa, const void *buf, uint32_t len, uint64_t user_data);
int gmem_ring_prep_readv(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, void *buf,
                         uint64_t user_data);
int gmem_ring_prep_writev(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, const void *buf,
                          uint64_t user_data);
int gmem_ring_prep_gpc_read(struct gmem_ring *r, uint64_t handle, uint32_t offset, void *buf, uint32_t len,
                            uint64_t user_data);
int gmem_ring_prep_gpc_write(struct gmem_ring *r, uint64_t handle, uint32_t offset, const void *buf, uint32_t len,
                             uint64_t user_data);
int gmem_ring_prep_atomic(struct gmem_ring *r, const struct gmem_atomic_op *op, uint64_t user_data);
int gmem_ring_prep_gpc_atomic(struct gmem_ring *r, uint64_t handle, uint32_t offset,
                              const struct gmem_atomic_op *op, uint64_t user_data);
int gmem_ring_prep_ping(struct gmem_ring *r, uint64_t user_data);

/*
 * Publishes every prepared entry with one release store of the SQ tail, and rings the submit doorbell only if
 * the daemon's poller sleeps. Returns the number of entries published (0 is fine), or -ECONNRESET/-EPROTO.
 */
int gmem_ring_submit(struct gmem_ring *r);

/*
 * Stores up to max completions in out (oldest first) and returns how many, waiting until at least
 * min(min_wait, entries in flight) are available; min_wait 0 never blocks. It waits by polling the completion
 * queue for a bounded time (some tens of microseconds) and only then sleeps on the completion doorbell, so a
 * call answered by an awake poller makes no system call. Returns -ECONNRESET when the connection died with
 * entries still in flight (completions the daemon wrote before are returned first), or -EPROTO.
 */
int gmem_ring_reap(struct gmem_ring *r, struct gmem_completion *out, unsigned max, unsigned min_wait);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_RING_H */
