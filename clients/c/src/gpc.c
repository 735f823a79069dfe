/*
 * gpc.c - guest page caches: GPC_ACTIVATE, GPC_READ, GPC_WRITE, GPC_REFRESH, GPC_DEACTIVATE (PROTOCOL.md
 * 5.5 to 5.9). GPC_ATOMIC lives with ATOMIC in atomic.c.
 */
#include <endian.h>
#include <errno.h>

#include "internal.h"

GMEM_EXPORT int gmem_gpc_activate(struct gmem *g, uint64_t gpa, uint32_t len, uint64_t *handle)
{
    struct gmem_gpc_activate_request req = { .gpa = htole64(gpa), .len = htole32(len) };
    struct gmem_gpc_activate_reply rep;
    struct gmem_reply r = { .data = &rep, .len = sizeof rep };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_GPC_ACTIVATE, &iov, 1, &r);
    if (status < 0)
        return status;
    if (rep.handle == 0)
        return gmem_fail(g, EPROTO); /* handles are never 0 */
    if (handle)
        *handle = le64toh(rep.handle);
    return 0;
}

GMEM_EXPORT int gmem_gpc_read(struct gmem *g, uint64_t handle, uint32_t offset, void *buf, uint32_t len)
{
    if (len && !buf)
        return -EINVAL;
    struct gmem_gpc_read_request req = { .handle = htole64(handle), .offset = htole32(offset), .len = htole32(len) };
    struct gmem_reply r = { .data = buf, .len = len };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_GPC_READ, &iov, 1, &r);
}

GMEM_EXPORT int gmem_gpc_write(struct gmem *g, uint64_t handle, uint32_t offset, const void *buf, uint32_t len)
{
    if (len && !buf)
        return -EINVAL;
    struct gmem_gpc_write_request req = { .handle = htole64(handle), .offset = htole32(offset), .len = htole32(len) };
    struct gmem_reply r = { 0 };
    struct iovec iov[2] = { { &req, sizeof req }, { (void *)buf, len } };
    return gmem_call(g, GMEM_OP_GPC_WRITE, iov, 2, &r); /* over max_payload - 16: -EMSGSIZE, not sent */
}

GMEM_EXPORT int gmem_gpc_refresh(struct gmem *g, uint64_t handle, uint64_t gpa, uint32_t len)
{
    struct gmem_gpc_refresh_request req = { .handle = htole64(handle), .gpa = htole64(gpa), .len = htole32(len) };
    struct gmem_reply r = { 0 };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_GPC_REFRESH, &iov, 1, &r);
}

GMEM_EXPORT int gmem_gpc_deactivate(struct gmem *g, uint64_t handle)
{
    struct gmem_gpc_deactivate_request req = { .handle = htole64(handle) };
    struct gmem_reply r = { 0 };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_GPC_DEACTIVATE, &iov, 1, &r);
}
