/*
 * io.h - how mpvmm-dev reaches guest memory: through gmemd over the socket, through gmemd over a shared-memory
 * ring, or (the unprotected baseline of the benchmark, the vhost-user way) by mapping the region itself.
 *
 * Two kinds of access. Buffers named by the guest go by readv/writev, one request per scatter list. A page the
 * device touches on every request (a queue's page) is cached: a GPC through gmemd, which a conversion of the page
 * invalidates; io_page_*() then refresh it and retry, so the caller never sees -ESTALE.
 * Errors are negative errno values, gmemd's own (-EFAULT for an address outside the region, and so on).
 */
#ifndef MPVMM_IO_H
#define MPVMM_IO_H

#include <stdint.h>
#include <sys/types.h>

#include <gmem.h>
#include <gmem_ring.h>

enum io_transport { IO_SOCKET, IO_RING, IO_DIRECT };

struct io {
    enum io_transport transport;
    struct gmem *gmem;
    struct gmem_ring *ring; /* IO_RING */
    uint8_t *memory;        /* IO_DIRECT: the whole region, mapped */
    uint64_t size;
    unsigned max_segments;  /* of one READV or WRITEV (HELLO) */
    unsigned long refreshes, invalidation_events;
};

/* A cached guest page. */
struct io_page {
    uint64_t gpa;    /* page-aligned */
    uint64_t handle; /* its GPC, unless IO_DIRECT */
};

/* Parses "socket", "ring" or "direct"; -1 for anything else. */
int io_transport_named(const char *name);
/* Connects to gmemd and sets the transport up (a ring, or MAP_REGION and a mapping). Returns 0 or a negative errno. */
int io_open(struct io *io, const char *socket_path, enum io_transport transport);
void io_close(struct io *io);
const char *io_transport_name(enum io_transport transport);

/* Any number of segments: a list longer than one request may carry goes as several, in order. On an error some
 * earlier requests may have completed; the caller retries per request to learn which segment was refused. */
ssize_t io_readv(struct io *io, const struct gmem_iov *segments, unsigned count, void *buffer);
ssize_t io_writev(struct io *io, const struct gmem_iov *segments, unsigned count, const void *buffer);

int io_page_open(struct io *io, struct io_page *page, uint64_t gpa);
void io_page_close(struct io *io, struct io_page *page);
int io_page_read(struct io *io, struct io_page *page, uint32_t offset, void *buffer, uint32_t len);
int io_page_write(struct io *io, struct io_page *page, uint32_t offset, const void *buffer, uint32_t len);
/* LOAD (acquire) and STORE (release) of 2 or 4 bytes are what the device uses; *old may be NULL. */
int io_page_atomic(struct io *io, struct io_page *page, uint32_t offset, const struct gmem_atomic_op *op,
                   uint64_t *old);

/* ---- Batches (io_batch.c): several operations in order, one submission on a ring ----------------------------- */

enum io_op_kind { IO_OP_READV, IO_OP_WRITEV, IO_OP_PAGE_READ, IO_OP_PAGE_WRITE, IO_OP_PAGE_ATOMIC };

struct io_op {
    enum io_op_kind kind;
    const struct gmem_iov *segments; /* READV, WRITEV */
    unsigned count;
    struct io_page *page;            /* page operations */
    uint32_t offset, len;
    struct gmem_atomic_op atomic;
    void *buffer;
    int64_t result; /* out: bytes (READV, WRITEV) or 0, else a negative errno */
    uint64_t old;   /* out: an atomic's value before */
};

/* Carries out ops in order: on a ring as one submission (gmemd consumes and completes a ring's entries in order,
 * PROTOCOL.md 10), otherwise one call after another. A page operation that finds its GPC stale is redone after a
 * refresh, in order with the other stale ones. Each op's outcome is in its result. Returns 0, or a negative errno
 * when the connection or the ring failed. */
int io_run(struct io *io, struct io_op *ops, unsigned count);

/* For io_batch.c: how many of the segments one READV or WRITEV takes, and their bytes; a GPC made valid again. */
unsigned io_chunk(const struct io *io, const struct gmem_iov *segments, unsigned count, size_t *bytes);
int io_page_refresh(struct io *io, struct io_page *page);

/* Counts the GPC invalidation events gmemd sent since the last call (they arrive on the connection). */
void io_drain_events(struct io *io);

#endif /* MPVMM_IO_H */
