/*
 * region.c - requests about the region rather than its bytes: SET_ATTRIBUTES, DISCARD, PAGE_STATE, STATS and
 * MAP_REGION (PROTOCOL.md 5.10 to 5.13, 5.20).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

GMEM_EXPORT int gmem_set_attributes(struct gmem *g, uint64_t gpa, uint64_t size, uint64_t attributes)
{
    struct gmem_set_attributes_request req = {
        .gpa = htole64(gpa), .size = htole64(size), .attributes = htole64(attributes)
    };
    struct gmem_reply r = { 0 };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_SET_ATTRIBUTES, &iov, 1, &r);
}

GMEM_EXPORT int gmem_discard(struct gmem *g, uint64_t gpa, uint64_t size)
{
    struct gmem_discard_request req = { .gpa = htole64(gpa), .size = htole64(size) };
    struct gmem_reply r = { 0 };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_DISCARD, &iov, 1, &r);
}

GMEM_EXPORT int gmem_map_region(struct gmem *g, int *fd, uint64_t *size)
{
    if (!fd || !size)
        return -EINVAL;
    struct gmem_map_region_request req = { 0 };
    struct gmem_map_region_reply rep;
    int fds[1] = { -1 };
    struct gmem_reply r = { .data = &rep, .len = sizeof rep, .fds = fds, .nfds_max = 1 };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_MAP_REGION, &iov, 1, &r);
    if (status < 0)
        return status;
    if (r.nfds != 1)
        return gmem_fail(g, EPROTO);
    *fd = fds[0];
    *size = le64toh(rep.mmap_size);
    return 0;
}

GMEM_EXPORT int gmem_page_state(struct gmem *g, uint64_t gpa, uint32_t npages, struct gmem_page_state *out)
{
    if (npages && !out)
        return -EINVAL;
    /* Over max_payload the daemon answers -EMSGSIZE without data, so the buffer is only needed on success. */
    size_t bytes = (size_t)npages * sizeof(struct gmem_page_state_entry);
    struct gmem_page_state_entry *e = bytes && gmem_fits(g, bytes) ? malloc(bytes) : NULL;
    if (bytes && gmem_fits(g, bytes) && !e)
        return -ENOMEM;
    struct gmem_page_state_request req = { .gpa = htole64(gpa), .npages = htole32(npages) };
    struct gmem_reply r = { .data = e, .len = bytes };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_PAGE_STATE, &iov, 1, &r);
    if (status == 0 && bytes && !e)
        status = gmem_fail(g, EPROTO); /* unreachable: a success over max_payload fails the length check */
    for (uint32_t i = 0; status == 0 && i < npages; i++)
        out[i] = (struct gmem_page_state){ .refcount = le16toh(e[i].refcount), .state = e[i].state };
    free(e);
    return status;
}

/* Calls fn for every STATS entry; the reply is checked whole first (PROTOCOL.md 5.12). */
static int stats(struct gmem *g, void (*fn)(void *ctx, const char *name, uint64_t value), void *ctx)
{
    uint8_t *buf = malloc(g->info.max_payload);
    if (!buf)
        return -ENOMEM;
    struct gmem_reply r = { .data = buf, .len = g->info.max_payload, .variable = true };
    int status = gmem_call(g, GMEM_OP_STATS, NULL, 0, &r);
    int count = 0;
    for (size_t at = 0; status == 0 && at < r.got; count++) {
        size_t name_len = buf[at];
        if (name_len == 0 || at + 1 + name_len + 8 > r.got) {
            status = gmem_fail(g, EPROTO);
            break;
        }
        char name[256];
        memcpy(name, buf + at + 1, name_len);
        name[name_len] = 0;
        uint64_t value;
        memcpy(&value, buf + at + 1 + name_len, sizeof value);
        fn(ctx, name, le64toh(value));
        at += 1 + name_len + 8;
    }
    free(buf);
    return status < 0 ? status : count;
}

struct collect {
    struct gmem_stat *out;
    unsigned max, n;
    const char *want;
    uint64_t *value;
    bool found;
};

static void collect_all(void *ctx, const char *name, uint64_t value)
{
    struct collect *c = ctx;
    if (c->n < c->max) {
        strcpy(c->out[c->n].name, name);
        c->out[c->n].value = value;
    }
    c->n++;
}

static void collect_one(void *ctx, const char *name, uint64_t value)
{
    struct collect *c = ctx;
    if (!c->found && strcmp(name, c->want) == 0) {
        *c->value = value;
        c->found = true;
    }
}

GMEM_EXPORT int gmem_stats(struct gmem *g, struct gmem_stat *out, unsigned max)
{
    if (max && !out)
        return -EINVAL;
    struct collect c = { .out = out, .max = max };
    return stats(g, collect_all, &c);
}

GMEM_EXPORT int gmem_stat(struct gmem *g, const char *name, uint64_t *value)
{
    if (!name || !value)
        return -EINVAL;
    struct collect c = { .want = name, .value = value };
    int r = stats(g, collect_one, &c);
    return r < 0 ? r : c.found ? 0 : -ENOENT;
}
