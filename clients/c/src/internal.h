/*
 * internal.h - the parts of libgmem shared between its source files: struct gmem and the request/reply call.
 *
 * Layering: frame.c moves frames (send, receive, event queueing) and knows nothing about opcodes beyond framing;
 * each op file (connect.c, memory.c, gpc.c, region.c, atomic.c) encodes a request, describes where its reply goes
 * (struct gmem_reply) and calls gmem_call(). The ring transport (ring.c, ring_ops.c) sets up and closes rings
 * with the same call; its RING_SETUP reply brings fds, which frame.c receives (struct gmem_reply.fds).
 */
#ifndef GMEM_INTERNAL_H
#define GMEM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "gmem.h"
#include "gmem_wire.h"

#define GMEM_EXPORT __attribute__((visibility("default")))

/* Events kept while nobody drains them; beyond this they are dropped and GMEM_EVENT_OVERFLOW is reported. */
#define GMEM_EVENT_QUEUE_MAX 65536u

/* File descriptors one frame may carry (RING_SETUP: memfd and two doorbells). */
#define GMEM_MAX_RX_FDS 3

/*
 * A frame being received. It survives between calls because gmem_next_event() reads without blocking and may
 * stop in the middle of a frame; the next read of any kind resumes it.
 */
struct gmem_rx {
    struct gmem_header hdr; /* host byte order once hdr_got == 16 */
    size_t hdr_got;
    size_t payload_len;
    size_t payload_got;
    uint8_t *dest;     /* where the payload goes; NULL: into scratch, wrapping (an unknown event's payload) */
    uint8_t scratch[64];
    int fds[GMEM_MAX_RX_FDS]; /* descriptors that came with this frame */
    unsigned nfds;
};

struct gmem {
    int fd;      /* the Unix socket */
    int evfd;    /* eventfd, non-zero exactly while an event is queued */
    int epfd;    /* gmem_event_fd(): epoll over evfd and fd */
    int dead;    /* 0, or the positive errno every call fails with from now on */
    uint32_t next_id;
    struct gmem_info info;
    struct gmem_progress progress;
    struct gmem_rx rx;

    struct gmem_ring *rings; /* open rings, detached by gmem_close() */

    /* Event queue: a ring buffer of cap entries (a power of two), grown on demand. */
    struct gmem_event *evq;
    uint32_t evq_cap, evq_head, evq_len;
    bool evq_overflow;
};

/* Where a reply's payload goes. Zero-initialise, then set what the request needs. */
struct gmem_reply {
    void *data;        /* success payload */
    size_t len;        /* its exact size; with variable, the most it may be */
    bool variable;     /* success payload of 0 .. len bytes (STATS, PING into a buffer) */
    size_t got;        /* out: bytes of success payload received */
    size_t err_len;    /* the size of the one non-empty error payload this request allows (0: none) */
    uint8_t err[16];   /* out: that payload */
    size_t err_got;    /* out: 0 or err_len */
    int *fds;          /* NULL: descriptors arriving with the reply are closed; else room for nfds_max */
    unsigned nfds_max;
    unsigned nfds;     /* out */
};

/*
 * Sends one request (the header is built here from opcode and the iovec's total) and waits for its reply,
 * queueing any events that arrive first. Returns the reply's status (0 or -errno from the daemon), or a negative
 * errno of the connection (-ECONNRESET, -EPIPE, -EPROTO), after which g is dead.
 */
int gmem_call(struct gmem *g, uint16_t opcode, const struct iovec *iov, int iovcnt, struct gmem_reply *reply);

/* Marks g dead with err (positive errno) and shuts the socket down, so pollers see it. Returns -err. */
int gmem_fail(struct gmem *g, int err);

/* Receives frames without blocking until the socket would block, queueing events. 0, or -errno (g dead). */
int gmem_pump_events(struct gmem *g);

/* Marks every ring of g dead and forgets g in them (ring.c); gmem_close() calls it. */
void gmem_rings_detach(struct gmem *g);

/* Event queue (event.c). */
void gmem_event_push(struct gmem *g, const struct gmem_event *ev);

/* The payload bound the daemon enforces, so that the library refuses what it cannot frame. */
static inline bool gmem_fits(const struct gmem *g, uint64_t payload)
{
    return payload <= g->info.max_payload;
}

#endif /* GMEM_INTERNAL_H */
