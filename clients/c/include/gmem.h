/*
 * gmem.h - libgmem, the C client library of gmemd.
 *
 * gmemd owns a virtual machine's guest memory and serves it over a Unix socket (wire protocol:
 * proto/PROTOCOL.md). libgmem opens one connection per struct gmem and turns each call into one request and its
 * reply.
 *
 * Errors
 *   Functions that return int or ssize_t return a negative errno value on failure (-EFAULT, -ESTALE, ...); use
 *   strerror(-rc). Nothing is ever printed. Errors the daemon reports are passed through unchanged; the rules
 *   are in PROTOCOL.md section 4. The library adds only these:
 *     -EMSGSIZE     the request could not be framed (its payload would exceed max_payload); nothing was sent.
 *     -EINVAL       an argument cannot be encoded at all (a width or op over 255, a NULL buffer with a length).
 *     -ECONNRESET, -EPIPE
 *                   the daemon closed the connection or died; every later call on this struct gmem fails the
 *                   same way. Calls never hang on a dead daemon and never raise SIGPIPE.
 *     -EPROTO       the daemon sent a frame that breaks the protocol; the connection is closed and every later
 *                   call fails with -EPROTO.
 *     -ENOMEM       out of memory in the library.
 *
 * Threading
 *   A struct gmem is used by one thread at a time: the caller serialises every call on it, including
 *   gmem_next_event() and gmem_close(). Different struct gmem need no coordination. Polling the fd of
 *   gmem_event_fd() from another thread is safe; only the calls need serialising.
 *
 * Events
 *   gmem_connect() asks for EVENTS. The daemon sends a GPC_INVALIDATED event when a GPC of this connection loses
 *   its mapping, possibly while a call waits for its reply: the library then queues the event. gmem_event_fd()
 *   returns an fd that is readable whenever an event is queued or the socket has unread data; gmem_next_event()
 *   takes one event without blocking. See those functions.
 *
 * Partial progress
 *   A READ, WRITE, READV or WRITEV that fails after transferring some bytes returns the error, and
 *   gmem_last_progress() tells how far it got.
 */
#ifndef GMEM_H
#define GMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One connection to gmemd. Opaque. */
struct gmem;

/*
 * Constants shared with the wire (proto/gmem_wire.h); they are spelled exactly as there, so both headers can be
 * included together.
 */

/* gmem_atomic_op.kind: the wire's ATOMIC op codes (PROTOCOL.md 5.16). */
#define GMEM_ATOMIC_LOAD 0u      /* acquire load; *old_value = the value */
#define GMEM_ATOMIC_STORE 1u     /* release store of value; *old_value = 0 (the wire does not read) */
#define GMEM_ATOMIC_XCHG 2u      /* store value; *old_value = the value before */
#define GMEM_ATOMIC_CMPXCHG 3u   /* store value if the memory equals expected; *old_value = the value before */
#define GMEM_ATOMIC_FETCH_ADD 4u /* add value, wrapping at size bytes */
#define GMEM_ATOMIC_FETCH_OR 5u
#define GMEM_ATOMIC_FETCH_AND 6u

/* gmem_set_attributes(): the only attribute; 0 makes pages shared. */
#define GMEM_ATTRIBUTE_PRIVATE (1ull << 3)

/* gmem_info.features. gmem_connect() requests all three. */
#define GMEM_FEATURE_EVENTS (1u << 0)
#define GMEM_FEATURE_DEVICE_OPS (1u << 1) /* READV, WRITEV, ATOMIC, GPC_ATOMIC */
#define GMEM_FEATURE_RINGS (1u << 2)      /* the shared-memory transport: gmem_ring.h */

/* gmem_info.region_flags. */
#define GMEM_REGION_NO_DIRECT_MAP (1u << 0)
#define GMEM_REGION_SECRETMEM (1u << 1)
#define GMEM_REGION_READ_ONLY (1u << 2) /* this connection may only read: writes fail with -EPERM */
#define GMEM_REGION_RECOVERED (1u << 3)
#define GMEM_REGION_MAY_MAP (1u << 4)   /* this connection may call gmem_map_region() */

/* gmem_page_state.state bits. */
#define GMEM_PAGE_PRIVATE (1u << 0)
#define GMEM_PAGE_ACCESSIBLE (1u << 1)

/* gmem_event.reason for GMEM_EVENT_GPC_INVALIDATED. Treat any other reason as an invalidation too. */
#define GMEM_INVALIDATED_ATTRIBUTES_CHANGED 1u
#define GMEM_INVALIDATED_DISCARDED 2u

/* gmem_event.type: the wire's event opcodes, and one of the library's. */
#define GMEM_EVENT_GPC_INVALIDATED 0x80u /* handle, reason */
#define GMEM_EVENT_RING_FAILED 0x81u     /* ring_id, status; the daemon closes the connection right after it */
#define GMEM_EVENT_OVERFLOW 0xffffu      /* the queue was full and events were dropped: treat every GPC as stale */

/* The values of the HELLO reply (PROTOCOL.md 5.1). */
struct gmem_info {
    uint32_t version;      /* 1 */
    uint32_t features;     /* GMEM_FEATURE_* granted */
    uint32_t page_size;    /* alignment unit of set_attributes, discard, page_state; bound of a GPC */
    uint32_t folio_size;
    uint64_t region_size;  /* valid addresses: 0 <= gpa < region_size */
    uint64_t region_id;
    uint32_t max_payload;  /* largest frame payload: a read returns at most this, a write carries max_payload - 16 */
    uint32_t max_gpcs;     /* GPCs this connection may have active */
    uint32_t region_flags; /* GMEM_REGION_* */
    uint32_t max_segments; /* most segments of gmem_readv()/gmem_writev() */
};

/* One segment of gmem_readv() and gmem_writev(). */
struct gmem_iov {
    uint64_t gpa;
    uint32_t len;
};

/* An atomic operation on one naturally aligned value (PROTOCOL.md 5.16). */
struct gmem_atomic_op {
    uint32_t kind;     /* GMEM_ATOMIC_* */
    uint32_t size;     /* 1, 2, 4 or 8 bytes */
    uint64_t gpa;      /* a multiple of size; for gmem_gpc_atomic() ignored (the offset is used) */
    uint64_t value;    /* operand of STORE, XCHG, CMPXCHG, FETCH_*; must be 0 for LOAD; no bit above size bytes */
    uint64_t expected; /* CMPXCHG's comparand; must be 0 for every other kind */
};

/* A queued event. */
struct gmem_event {
    uint32_t type;    /* GMEM_EVENT_*; ignore types you do not know */
    uint32_t reason;  /* GPC_INVALIDATED: GMEM_INVALIDATED_* */
    uint64_t handle;  /* GPC_INVALIDATED: the GPC */
    uint32_t ring_id; /* RING_FAILED: the ring */
    int32_t status;   /* RING_FAILED: why, a negative errno */
};

/* How far the last failed gmem_read/write/readv/writev() got before its error. */
struct gmem_progress {
    uint64_t bytes_completed; /* bytes transferred, in segment order; 0 when nothing was */
    uint32_t segment;         /* the first segment not transferred whole (0 for read and write) */
    uint32_t segment_bytes;   /* bytes of that segment that were */
};

/* One page of gmem_page_state(). */
struct gmem_page_state {
    uint16_t refcount; /* references held (accesses in progress, GPCs); saturates at 65535 */
    uint8_t state;     /* GMEM_PAGE_* */
};

/* One counter of gmem_stats(). */
struct gmem_stat {
    char name[256]; /* NUL-terminated */
    uint64_t value;
};

/* ---- Connection -------------------------------------------------------------------------------------------- */

/*
 * Connects to gmemd and completes HELLO, requesting EVENTS, DEVICE_OPS and RINGS (granted only by a daemon
 * that serves them: see gmem_info.features).
 *
 * socket_path: the daemon's Unix socket; NULL resolves the default exactly as gmemctl does: $GMEMD_SOCKET if set
 * and non-empty, else $XDG_RUNTIME_DIR/gmemd.sock, else /run/gmemd/gmemd.sock when getuid() is 0, else
 * ./gmemd.sock.
 *
 * Returns the connection, or NULL with errno set: ENAMETOOLONG (path over 107 bytes), the errno of socket() or
 * connect() (ENOENT, ECONNREFUSED, EACCES, ...), or the daemon's HELLO refusal (EACCES: not admitted, EBUSY: too
 * many connections, EPROTONOSUPPORT), EPROTO (a malformed HELLO reply), ECONNRESET, ENOMEM.
 * The fd is close-on-exec. Thread-safe (it touches no shared state).
 */
struct gmem *gmem_connect(const char *socket_path);

/*
 * Closes the connection and frees g; the daemon deactivates every GPC it activated and closes its rings. Queued
 * events are dropped. Rings of g still open become dead (see gmem_ring.h) and must still be gmem_ring_close()d.
 * g may be NULL. Not to be called while another thread uses g or one of its rings.
 */
void gmem_close(struct gmem *g);

/* Copies the HELLO reply's values into *out. Returns 0. Sends nothing. */
int gmem_info(struct gmem *g, struct gmem_info *out);

/* PING: a round trip with an empty payload. Returns 0, or -ECONNRESET/-EPIPE/-EPROTO. */
int gmem_ping(struct gmem *g);

/*
 * PING with a payload of len bytes; the daemon echoes them into echo (len bytes, may equal data).
 * Returns len, or -EMSGSIZE (len > max_payload, nothing sent), -ECONNRESET, -EPIPE, -EPROTO.
 */
ssize_t gmem_echo(struct gmem *g, const void *data, size_t len, void *echo);

/* ---- Reads and writes ----------------------------------------------------------------------------------------- */

/*
 * READ: copies guest memory [gpa, gpa + len) into buf, in one request. The range may cross pages.
 * Returns len, or -EMSGSIZE (len > max_payload), -EFAULT (not inside the region; len 0 is fine when
 * gpa < region_size), a memory failure (-EIO, -ENOMEM) with gmem_last_progress() set; buf is then unspecified.
 */
ssize_t gmem_read(struct gmem *g, uint64_t gpa, void *buf, size_t len);

/*
 * WRITE: copies len bytes from buf to guest memory at gpa, in one request.
 * Returns len, or -EMSGSIZE (len > max_payload - 16; nothing sent), -EPERM (read-only connection), -EFAULT
 * (nothing written), a memory failure with gmem_last_progress() telling how many bytes from gpa were written.
 */
ssize_t gmem_write(struct gmem *g, uint64_t gpa, const void *buf, size_t len);

/*
 * READV: reads nsegs segments in one request into buf, back to back in segment order (buf holds the sum of their
 * lengths). Segments may overlap, repeat, cross pages; a len 0 segment still needs gpa < region_size.
 * Returns the total length, or -EINVAL (nsegs 0 or over max_segments), -EMSGSIZE (total over max_payload, or the
 * segment table does not fit a frame), -EFAULT (a segment outside the region; nothing read), a memory failure
 * with gmem_last_progress() set.
 */
ssize_t gmem_readv(struct gmem *g, const struct gmem_iov *segs, unsigned nsegs, void *buf);

/*
 * WRITEV: writes nsegs segments in one request; buf holds their bytes back to back. Later segments win where
 * segments overlap. Returns the total length, or READV's errors and -EPERM; -EFAULT writes nothing; a memory
 * failure sets gmem_last_progress().
 */
ssize_t gmem_writev(struct gmem *g, const struct gmem_iov *segs, unsigned nsegs, const void *buf);

/*
 * How far the last gmem_read/write/readv/writev() that failed got (PROTOCOL.md 3, "Error replies"): segments
 * 0 .. segment - 1 whole, then segment_bytes of segment. All zero when it failed before transferring anything.
 * Reset by each of those four calls. Returns 0.
 */
int gmem_last_progress(struct gmem *g, struct gmem_progress *out);

/* ---- Guest page caches (GPCs) --------------------------------------------------------------------------------- */

/*
 * GPC_ACTIVATE: a window [gpa, gpa + len) of 1 to page_size bytes inside one page, read and written by *handle
 * afterwards (never 0). Returns 0, or -EINVAL (len 0, window crossing a page), -EFAULT, -ENOSPC (max_gpcs
 * active, or the page's reference limit), -ENOMEM.
 */
int gmem_gpc_activate(struct gmem *g, uint64_t gpa, uint32_t len, uint64_t *handle);

/*
 * GPC_READ: len bytes from offset in the GPC's window into buf. Returns 0, or -EMSGSIZE (len > max_payload),
 * -ENOENT (no such active GPC on this connection), -EINVAL (offset + len beyond the window), -ESTALE (invalidated
 * since its last activation or refresh: gmem_gpc_refresh() it).
 */
int gmem_gpc_read(struct gmem *g, uint64_t handle, uint32_t offset, void *buf, uint32_t len);

/* GPC_WRITE: as gmem_gpc_read(), the other way; also -EPERM (read-only), -EMSGSIZE (len > max_payload - 16). */
int gmem_gpc_write(struct gmem *g, uint64_t handle, uint32_t offset, const void *buf, uint32_t len);

/*
 * GPC_REFRESH: re-points the GPC at [gpa, gpa + len) and makes it valid again. The window is checked before the
 * handle: -EINVAL, -EFAULT, then -ENOENT; also -ENOSPC, -ENOMEM. Returns 0 on success.
 */
int gmem_gpc_refresh(struct gmem *g, uint64_t handle, uint64_t gpa, uint32_t len);

/* GPC_DEACTIVATE: valid or invalidated. Returns 0 or -ENOENT. */
int gmem_gpc_deactivate(struct gmem *g, uint64_t handle);

/*
 * GPC_ATOMIC: op at offset in the GPC's window (op->gpa is ignored). Returns 0 and *old_value (may be NULL), or
 * -EINVAL (op rules as gmem_atomic(); offset + size beyond the window; the address not a multiple of size),
 * -EPERM (read-only, kind other than LOAD), -ENOENT, -ESTALE.
 */
int gmem_gpc_atomic(struct gmem *g, uint64_t handle, uint32_t offset, const struct gmem_atomic_op *op,
                    uint64_t *old_value);

/* ---- Region management ---------------------------------------------------------------------------------------- */

/*
 * SET_ATTRIBUTES: makes [gpa, gpa + size) private (attributes = GMEM_ATTRIBUTE_PRIVATE) or shared (0). Every GPC,
 * of any connection, on a page whose attribute changed is invalidated: its connection gets a GPC_INVALIDATED
 * event, queued before this call returns when the GPC is this connection's. Returns 0, or -EINVAL (other bits,
 * gpa or size not page-aligned, size 0), -EPERM, -EFAULT, -ENOMEM (a prefix may be converted).
 */
int gmem_set_attributes(struct gmem *g, uint64_t gpa, uint64_t size, uint64_t attributes);

/*
 * DISCARD: drops the contents of [gpa, gpa + size); later reads return zeros. Invalidates GPCs as
 * gmem_set_attributes() does (reason GMEM_INVALIDATED_DISCARDED). Returns 0, or -EINVAL, -EPERM, -EFAULT, -EIO.
 */
int gmem_discard(struct gmem *g, uint64_t gpa, uint64_t size);

/*
 * MAP_REGION: receives the guest memfd itself, for the one process that stands in for KVM (a vCPU process that
 * registers guest memory as a KVM memslot). That process sees all guest memory; no other client should ask.
 * On success *fd is a new close-on-exec descriptor the caller owns and must close, and *size the bytes to
 * mmap(MAP_SHARED) from offset 0 (the region's size). Returns 0, or -EPERM (gmemd names this peer with neither
 * --allow-map-uid nor --allow-map-group, or the connection is read-only; gmem_info's region_flags then lacks
 * GMEM_REGION_MAY_MAP), -EOPNOTSUPP (secretmem backing, which KVM cannot use), -EPROTO (no descriptor came).
 */
int gmem_map_region(struct gmem *g, int *fd, uint64_t *size);

/*
 * PAGE_STATE: the state of npages pages from gpa (page-aligned) into out[npages]. Returns 0, or -EINVAL,
 * -EMSGSIZE (npages * 4 > max_payload), -EFAULT.
 */
int gmem_page_state(struct gmem *g, uint64_t gpa, uint32_t npages, struct gmem_page_state *out);

/*
 * STATS: stores up to max counters in out (may be NULL when max is 0) and returns how many the daemon reported,
 * which may exceed max. Counter names and their order are the daemon's; see PROTOCOL.md 5.12.
 */
int gmem_stats(struct gmem *g, struct gmem_stat *out, unsigned max);

/* One STATS counter by name into *value. Returns 0, or -ENOENT when the daemon does not report it. */
int gmem_stat(struct gmem *g, const char *name, uint64_t *value);

/* ---- Atomics ------------------------------------------------------------------------------------------------ */

/*
 * ATOMIC: one atomic instruction on guest memory at op->gpa, atomic with respect to the guest and every other
 * client. Read-modify-write kinds are sequentially consistent; LOAD is acquire, STORE release. *old_value (may
 * be NULL) receives the value before the operation, zero-extended (LOAD: the value; STORE: 0). Returns 0, or
 * -EINVAL (unknown kind, size not 1/2/4/8, value or expected with bits the kind does not use, gpa not a multiple of
 * size), -EPERM (read-only and not LOAD), -EFAULT.
 */
int gmem_atomic(struct gmem *g, const struct gmem_atomic_op *op, uint64_t *old_value);

/* ---- Events ------------------------------------------------------------------------------------------------- */

/*
 * An fd for poll/select/epoll: readable whenever gmem_next_event() has something to return (an event is
 * queued) or may have (the socket has unread data). It is an epoll fd that watches an internal eventfd and the
 * socket, so one fd covers both. Owned by g: do not read it or close it. Valid until gmem_close().
 * Returns the fd (never fails).
 */
int gmem_event_fd(struct gmem *g);

/*
 * Takes the oldest event into *ev without blocking: first from the queue, else by reading whatever complete
 * event frames the socket holds. Returns 0 with *ev filled, -EAGAIN when there is none, or -ECONNRESET/-EPIPE/
 * -EPROTO when the connection is gone. Drain it until -EAGAIN after the event fd turns readable.
 */
int gmem_next_event(struct gmem *g, struct gmem_event *ev);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_H */
