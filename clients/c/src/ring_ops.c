/*
 * ring_ops.c - the entries of a ring (PROTOCOL.md 10.2): one prep function per data-path opcode, and the
 * one-call functions built from a prep, a submit and a reap.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "ring.h"

GMEM_EXPORT int gmem_ring_prep_ping(struct gmem_ring *r, uint64_t user_data)
{
    struct gmem_ring_slot *s;
    uint64_t t, d;
    int err;
    return gmem_ring_prep(r, GMEM_OP_PING, 0, 0, user_data, &s, &t, &d, &err) ? 0 : err;
}

/* READ, WRITE, GPC_READ, GPC_WRITE: len bytes at data; addr is the gpa or the handle, aux the window offset. */
static int prep_bytes(struct gmem_ring *r, uint16_t opcode, uint64_t addr, uint64_t aux, void *dest,
                      const void *src, uint32_t len, uint64_t user_data)
{
    if (len && !dest && !src)
        return -EINVAL;
    struct gmem_ring_slot *s;
    uint64_t t, d;
    int err;
    struct gmem_ring_sqe *e = gmem_ring_prep(r, opcode, 0, len, user_data, &s, &t, &d, &err);
    if (!e)
        return err;
    e->len = htole32(len);
    e->addr = htole64(addr);
    e->data = htole64(d);
    e->aux = htole64(aux);
    s->dest = dest;
    s->data_off = d;
    s->len = len;
    if (src && len)
        memcpy(r->data + d, src, len);
    return 0;
}

GMEM_EXPORT int gmem_ring_prep_read(struct gmem_ring *r, uint64_t gpa, void *buf, uint32_t len,
                                    uint64_t user_data)
{
    return prep_bytes(r, GMEM_OP_READ, gpa, 0, buf, NULL, len, user_data);
}

GMEM_EXPORT int gmem_ring_prep_write(struct gmem_ring *r, uint64_t gpa, const void *buf, uint32_t len,
                                     uint64_t user_data)
{
    return prep_bytes(r, GMEM_OP_WRITE, gpa, 0, NULL, buf, len, user_data);
}

GMEM_EXPORT int gmem_ring_prep_gpc_read(struct gmem_ring *r, uint64_t handle, uint32_t offset, void *buf,
                                        uint32_t len, uint64_t user_data)
{
    return prep_bytes(r, GMEM_OP_GPC_READ, handle, offset, buf, NULL, len, user_data);
}

GMEM_EXPORT int gmem_ring_prep_gpc_write(struct gmem_ring *r, uint64_t handle, uint32_t offset, const void *buf,
                                         uint32_t len, uint64_t user_data)
{
    return prep_bytes(r, GMEM_OP_GPC_WRITE, handle, offset, NULL, buf, len, user_data);
}

/* READV, WRITEV: the segment table at aux, the bytes at data, both in the data area. */
static int prep_vector(struct gmem_ring *r, uint16_t opcode, const struct gmem_iov *segs, unsigned nsegs,
                       void *dest, const void *src, uint64_t user_data)
{
    if (nsegs && !segs)
        return -EINVAL;
    uint64_t total = 0;
    for (unsigned i = 0; i < nsegs; i++)
        total += segs[i].len;
    if (total && !dest && !src)
        return -EINVAL;
    struct gmem_ring_slot *s;
    uint64_t t, d;
    int err;
    struct gmem_ring_sqe *e =
        gmem_ring_prep(r, opcode, (uint64_t)nsegs * sizeof(struct gmem_segment), total, user_data, &s, &t, &d, &err);
    if (!e)
        return err;
    for (unsigned i = 0; i < nsegs; i++) {
        struct gmem_segment seg = { .gpa = htole64(segs[i].gpa), .len = htole32(segs[i].len) };
        memcpy(r->data + t + (size_t)i * sizeof seg, &seg, sizeof seg);
    }
    e->len = htole32(nsegs);
    e->data = htole64(d);
    e->aux = htole64(t);
    s->dest = dest;
    s->data_off = d;
    s->len = total;
    s->nsegs = nsegs;
    if (src && total)
        memcpy(r->data + d, src, total);
    return 0;
}

GMEM_EXPORT int gmem_ring_prep_readv(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, void *buf,
                                     uint64_t user_data)
{
    return prep_vector(r, GMEM_OP_READV, segs, nsegs, buf, NULL, user_data);
}

GMEM_EXPORT int gmem_ring_prep_writev(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs,
                                      const void *buf, uint64_t user_data)
{
    return prep_vector(r, GMEM_OP_WRITEV, segs, nsegs, NULL, buf, user_data);
}

/* ATOMIC, GPC_ATOMIC: as on the socket, the daemon judges kind, size and operands; only what a u8 cannot hold
 * is refused here. */
static int prep_atomic(struct gmem_ring *r, uint16_t opcode, uint64_t addr, uint64_t aux,
                       const struct gmem_atomic_op *op, uint64_t user_data)
{
    if (!op || op->kind > UINT8_MAX || op->size > UINT8_MAX)
        return -EINVAL;
    struct gmem_ring_slot *s;
    uint64_t t, d;
    int err;
    struct gmem_ring_sqe *e = gmem_ring_prep(r, opcode, 0, 0, user_data, &s, &t, &d, &err);
    if (!e)
        return err;
    e->addr = htole64(addr);
    e->aux = htole64(aux);
    e->operand = htole64(op->value);
    e->expected = htole64(op->expected);
    e->op = (uint8_t)op->kind;
    e->width = (uint8_t)op->size;
    s->width = (uint8_t)op->size;
    return 0;
}

GMEM_EXPORT int gmem_ring_prep_atomic(struct gmem_ring *r, const struct gmem_atomic_op *op, uint64_t user_data)
{
    return prep_atomic(r, GMEM_OP_ATOMIC, op ? op->gpa : 0, 0, op, user_data);
}

GMEM_EXPORT int gmem_ring_prep_gpc_atomic(struct gmem_ring *r, uint64_t handle, uint32_t offset,
                                          const struct gmem_atomic_op *op, uint64_t user_data)
{
    return prep_atomic(r, GMEM_OP_GPC_ATOMIC, handle, offset, op, user_data);
}

/* ---- One call at a time ---------------------------------------------------------------------------------- */

/* Refuses to run beside a batch: its reap would take the batch's completions. */
static int idle(struct gmem_ring *r)
{
    r->progress = (struct gmem_progress){ 0 };
    if (r->dead)
        return -r->dead;
    return r->inflight ? -EBUSY : 0;
}

/* Submits the one prepared entry and waits for it. Returns its status; *c receives the completion. */
static int run(struct gmem_ring *r, int prep_rc, struct gmem_completion *c)
{
    if (prep_rc < 0)
        return prep_rc;
    int n = gmem_ring_submit(r);
    if (n < 0)
        return n;
    n = gmem_ring_reap(r, c, 1, 1);
    if (n < 0)
        return n;
    r->progress = c->progress;
    return c->status;
}

GMEM_EXPORT ssize_t gmem_ring_read(struct gmem_ring *r, uint64_t gpa, void *buf, size_t len)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0 && len > UINT32_MAX)
        rc = -EMSGSIZE;
    if (rc == 0)
        rc = run(r, gmem_ring_prep_read(r, gpa, buf, (uint32_t)len, 0), &c);
    return rc < 0 ? rc : (ssize_t)len;
}

GMEM_EXPORT ssize_t gmem_ring_write(struct gmem_ring *r, uint64_t gpa, const void *buf, size_t len)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0 && len > UINT32_MAX)
        rc = -EMSGSIZE;
    if (rc == 0)
        rc = run(r, gmem_ring_prep_write(r, gpa, buf, (uint32_t)len, 0), &c);
    return rc < 0 ? rc : (ssize_t)len;
}

GMEM_EXPORT ssize_t gmem_ring_readv(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs, void *buf)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0)
        rc = run(r, gmem_ring_prep_readv(r, segs, nsegs, buf, 0), &c);
    return rc < 0 ? rc : (ssize_t)c.len;
}

GMEM_EXPORT ssize_t gmem_ring_writev(struct gmem_ring *r, const struct gmem_iov *segs, unsigned nsegs,
                                     const void *buf)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0)
        rc = run(r, gmem_ring_prep_writev(r, segs, nsegs, buf, 0), &c);
    return rc < 0 ? rc : (ssize_t)c.len;
}

GMEM_EXPORT int gmem_ring_gpc_read(struct gmem_ring *r, uint64_t handle, uint32_t offset, void *buf, uint32_t len)
{
    struct gmem_completion c;
    int rc = idle(r);
    return rc < 0 ? rc : run(r, gmem_ring_prep_gpc_read(r, handle, offset, buf, len, 0), &c);
}

GMEM_EXPORT int gmem_ring_gpc_write(struct gmem_ring *r, uint64_t handle, uint32_t offset, const void *buf,
                                   uint32_t len)
{
    struct gmem_completion c;
    int rc = idle(r);
    return rc < 0 ? rc : run(r, gmem_ring_prep_gpc_write(r, handle, offset, buf, len, 0), &c);
}

GMEM_EXPORT int gmem_ring_atomic(struct gmem_ring *r, const struct gmem_atomic_op *op, uint64_t *old_value)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0)
        rc = run(r, gmem_ring_prep_atomic(r, op, 0), &c);
    if (rc == 0 && old_value)
        *old_value = c.value;
    return rc;
}

GMEM_EXPORT int gmem_ring_gpc_atomic(struct gmem_ring *r, uint64_t handle, uint32_t offset,
                                    const struct gmem_atomic_op *op, uint64_t *old_value)
{
    struct gmem_completion c;
    int rc = idle(r);
    if (rc == 0)
        rc = run(r, gmem_ring_prep_gpc_atomic(r, handle, offset, op, 0), &c);
    if (rc == 0 && old_value)
        *old_value = c.value;
    return rc;
}

GMEM_EXPORT int gmem_ring_ping(struct gmem_ring *r)
{
    struct gmem_completion c;
    int rc = idle(r);
    return rc < 0 ? rc : run(r, gmem_ring_prep_ping(r, 0), &c);
}

GMEM_EXPORT int gmem_ring_last_progress(struct gmem_ring *r, struct gmem_progress *out)
{
    *out = r->progress;
    return 0;
}
