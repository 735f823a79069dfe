/*
 * atomic.c - ATOMIC and GPC_ATOMIC (PROTOCOL.md 5.16, 5.17). The library does not judge kind, size, value or
 * expected: the daemon applies the rules (-EINVAL) so every client agrees with it. Only what the wire cannot
 * carry (a kind or size over 255) is refused here, since truncating it could turn a bad size into a good one.
 */
#include <endian.h>
#include <errno.h>

#include "internal.h"

static int atomic_reply(struct gmem *g, int status, const struct gmem_atomic_reply *rep, uint32_t size,
                        uint64_t *old_value)
{
    if (status < 0)
        return status;
    uint64_t v = le64toh(rep->value);
    if (size < 8 && (v >> (size * 8)))
        return gmem_fail(g, EPROTO); /* the value is zero-extended from size bytes */
    if (old_value)
        *old_value = v;
    return 0;
}

GMEM_EXPORT int gmem_atomic(struct gmem *g, const struct gmem_atomic_op *op, uint64_t *old_value)
{
    if (!op || op->kind > UINT8_MAX || op->size > UINT8_MAX)
        return -EINVAL;
    struct gmem_atomic_request req = {
        .gpa = htole64(op->gpa),
        .operand = htole64(op->value),
        .expected = htole64(op->expected),
        .op = (uint8_t)op->kind,
        .width = (uint8_t)op->size,
    };
    struct gmem_atomic_reply rep;
    struct gmem_reply r = { .data = &rep, .len = sizeof rep };
    struct iovec iov = { &req, sizeof req };
    return atomic_reply(g, gmem_call(g, GMEM_OP_ATOMIC, &iov, 1, &r), &rep, op->size, old_value);
}

GMEM_EXPORT int gmem_gpc_atomic(struct gmem *g, uint64_t handle, uint32_t offset, const struct gmem_atomic_op *op,
                                uint64_t *old_value)
{
    if (!op || op->kind > UINT8_MAX || op->size > UINT8_MAX)
        return -EINVAL;
    struct gmem_gpc_atomic_request req = {
        .handle = htole64(handle),
        .operand = htole64(op->value),
        .expected = htole64(op->expected),
        .offset = htole32(offset),
        .op = (uint8_t)op->kind,
        .width = (uint8_t)op->size,
    };
    struct gmem_atomic_reply rep;
    struct gmem_reply r = { .data = &rep, .len = sizeof rep };
    struct iovec iov = { &req, sizeof req };
    return atomic_reply(g, gmem_call(g, GMEM_OP_GPC_ATOMIC, &iov, 1, &r), &rep, op->size, old_value);
}
