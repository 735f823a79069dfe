/*
 * io_batch.c - several operations on guest memory in order (io.h): on a ring as one submission, so the device
 * pays one round trip to gmemd's poller for a whole step of its work instead of one per operation.
 */
#include <errno.h>

#include "io.h"

enum { REAP_BATCH = 64 };

/* One call at a time: the socket (libgmem's socket calls are synchronous) and the direct baseline. */
static void run_one(struct io *io, struct io_op *op)
{
    switch (op->kind) {
    case IO_OP_READV: op->result = io_readv(io, op->segments, op->count, op->buffer); break;
    case IO_OP_WRITEV: op->result = io_writev(io, op->segments, op->count, op->buffer); break;
    case IO_OP_PAGE_READ: op->result = io_page_read(io, op->page, op->offset, op->buffer, op->len); break;
    case IO_OP_PAGE_WRITE: op->result = io_page_write(io, op->page, op->offset, op->buffer, op->len); break;
    case IO_OP_PAGE_ATOMIC: op->result = io_page_atomic(io, op->page, op->offset, &op->atomic, &op->old); break;
    }
}

/* Publishes what is prepared and reaps every entry in flight into its op (user_data is the op's index): the
 * first error of an op wins; a scatter list's chunks add up. */
static int drain(struct io *io, struct io_op *ops, unsigned *in_flight)
{
    int rc = gmem_ring_submit(io->ring);
    if (rc < 0)
        return rc;
    struct gmem_completion done[REAP_BATCH];
    while (*in_flight) {
        int n = gmem_ring_reap(io->ring, done, REAP_BATCH, 1);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            struct io_op *op = &ops[done[i].user_data];
            if (done[i].status < 0 && op->result >= 0)
                op->result = done[i].status;
            else if (op->result >= 0)
                op->result += done[i].len;
            op->old = done[i].value;
        }
        *in_flight -= (unsigned)n;
    }
    return 0;
}

/* Prepares one entry of op (its chunk of `count` segments at `segments`, its bytes at `buffer`). */
static int prep(struct io *io, struct io_op *op, uint64_t index, const struct gmem_iov *segments, unsigned count,
                void *buffer)
{
    struct gmem_ring *r = io->ring;
    switch (op->kind) {
    case IO_OP_READV: return gmem_ring_prep_readv(r, segments, count, buffer, index);
    case IO_OP_WRITEV: return gmem_ring_prep_writev(r, segments, count, buffer, index);
    case IO_OP_PAGE_READ: return gmem_ring_prep_gpc_read(r, op->page->handle, op->offset, buffer, op->len, index);
    case IO_OP_PAGE_WRITE: return gmem_ring_prep_gpc_write(r, op->page->handle, op->offset, buffer, op->len, index);
    case IO_OP_PAGE_ATOMIC: return gmem_ring_prep_gpc_atomic(r, op->page->handle, op->offset, &op->atomic, index);
    }
    return -EINVAL;
}

int io_run(struct io *io, struct io_op *ops, unsigned count)
{
    if (io->transport != IO_RING) {
        for (unsigned i = 0; i < count; i++)
            run_one(io, &ops[i]);
        return 0;
    }
    unsigned in_flight = 0;
    for (unsigned i = 0; i < count; i++) {
        struct io_op *op = &ops[i];
        op->result = 0;
        int vector = op->kind == IO_OP_READV || op->kind == IO_OP_WRITEV;
        size_t done = 0, bytes = 0;
        for (unsigned first = 0, n = 1; vector ? first < op->count : first == 0; first += n, done += bytes) {
            if (vector)
                n = io_chunk(io, op->segments + first, op->count - first, &bytes);
            int rc;
            /* A full ring or data area: let what is in flight finish, then go on; the order stays. */
            while ((rc = prep(io, op, i, op->segments + first, n, (uint8_t *)op->buffer + done)) == -EBUSY)
                if ((rc = drain(io, ops, &in_flight)) < 0)
                    return rc;
            if (rc < 0) {
                op->result = rc;
                break;
            }
            in_flight++;
        }
    }
    int rc = drain(io, ops, &in_flight);
    if (rc < 0)
        return rc;
    /* A page whose GPC a conversion invalidated: refresh it and redo its operations, in their order. Operations
     * on other memory that ran in between did not depend on them (the device orders its steps so). */
    const struct io_page *refreshed = NULL;
    for (unsigned i = 0; i < count; i++)
        if (ops[i].result == -ESTALE && ops[i].kind >= IO_OP_PAGE_READ) {
            if (ops[i].page != refreshed && (rc = io_page_refresh(io, ops[i].page)) < 0)
                return rc;
            refreshed = ops[i].page;
            run_one(io, &ops[i]);
        }
    return 0;
}
