/*
 * ring.h - struct gmem_ring, shared by ring.c (set-up, submission, completion) and ring_ops.c (the entries).
 */
#ifndef GMEM_RING_INTERNAL_H
#define GMEM_RING_INTERNAL_H

#include <stdatomic.h>

#include "gmem_ring.h"
#include "internal.h"
#include "gmem_wire.h"

/* What the library remembers of an entry until its completion is reaped. Indexed by the entry's cookie. */
struct gmem_ring_slot {
    uint64_t user_data;
    void *dest;        /* READ, GPC_READ, READV: where the bytes go when reaped */
    uint64_t data_off; /* their offset in the data area */
    uint64_t len;      /* bytes the entry moves on success */
    uint32_t nsegs;    /* READV, WRITEV: for checking a partial failure */
    uint16_t opcode;
    uint8_t width;     /* atomics: the reply value has no bit above it */
    bool busy;
};

struct gmem_ring {
    struct gmem *g;          /* NULL once gmem_close() ran */
    struct gmem_ring *next;  /* in g->rings */
    int sock_fd;             /* g's socket, polled for hang-up while waiting; unused once dead */
    int memfd, submit_fd, complete_fd;
    int dead;                /* 0, or the positive errno every call fails with */

    uint32_t id, entries;
    uint8_t *map;
    size_t map_size;
    uint8_t *sq, *cq, *data; /* the entry arrays and the data area, inside map */
    uint64_t data_size;
    _Atomic uint32_t *sq_tail, *cq_tail, *cq_head, *server_flags, *client_flags; /* sq_head: never read */

    /* Private copies: the shared words are written by us and never read back (the daemon may scribble). */
    uint32_t sq_next;        /* the next SQ slot to fill; entries before it and after sq_published are prepared */
    uint32_t sq_published;   /* our last store to *sq_tail */
    uint32_t cq_next;        /* our last store to *cq_head */
    uint32_t inflight;       /* prepared or submitted, not reaped: at most entries */
    uint32_t outstanding;    /* submitted, not reaped */
    uint64_t data_used;      /* bump allocation of the data area, reset when nothing is in flight */

    struct gmem_ring_slot *slots; /* entries of them */
    uint32_t *free_slots;
    uint32_t nfree;

    struct gmem_progress progress; /* of the last one-call operation */
};

/*
 * Claims a slot, data-area room (table_bytes then data_bytes, each 8-byte aligned) and the next SQ entry, which
 * it returns zeroed with cookie and opcode set. *data_off, *table_off receive the offsets. NULL with *err set.
 */
struct gmem_ring_sqe *gmem_ring_prep(struct gmem_ring *r, uint16_t opcode, uint64_t table_bytes,
                                     uint64_t data_bytes, uint64_t user_data, struct gmem_ring_slot **slot,
                                     uint64_t *table_off, uint64_t *data_off, int *err);

/* Marks the ring dead with err (positive). Returns -err. */
int gmem_ring_fail(struct gmem_ring *r, int err);

#endif /* GMEM_RING_INTERNAL_H */
