/*
 * memory.c - READ, WRITE, READV, WRITEV and the progress of their partial failures (PROTOCOL.md 3, 5.3, 5.4,
 * 5.14, 5.15). Each call is exactly one request: splitting would turn one failure into a partial success that
 * the protocol's progress payload already describes.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A failed READ or WRITE: record its {u64 bytes_completed}, if the daemon sent one. */
static int scalar_failure(struct gmem *g, const struct gmem_reply *r, int status, size_t len)
{
    if (r->err_got) {
        uint64_t done;
        memcpy(&done, r->err, sizeof done);
        done = le64toh(done);
        if (done > len)
            return gmem_fail(g, EPROTO);
        g->progress = (struct gmem_progress){ .bytes_completed = done, .segment_bytes = (uint32_t)done };
    }
    return status;
}

GMEM_EXPORT ssize_t gmem_read(struct gmem *g, uint64_t gpa, void *buf, size_t len)
{
    g->progress = (struct gmem_progress){ 0 };
    if (len && !buf)
        return -EINVAL;
    if (len > UINT32_MAX)
        return -EMSGSIZE; /* more than any max_payload; the daemon would say the same */
    struct gmem_read_request req = { .gpa = htole64(gpa), .len = htole32((uint32_t)len) };
    struct gmem_reply r = { .data = buf, .len = len, .err_len = sizeof(struct gmem_partial_progress) };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_READ, &iov, 1, &r);
    return status < 0 ? scalar_failure(g, &r, status, len) : (ssize_t)len;
}

GMEM_EXPORT ssize_t gmem_write(struct gmem *g, uint64_t gpa, const void *buf, size_t len)
{
    g->progress = (struct gmem_progress){ 0 };
    if (len && !buf)
        return -EINVAL;
    if (len > UINT32_MAX || !gmem_fits(g, sizeof(struct gmem_write_request) + (uint64_t)len))
        return -EMSGSIZE;
    struct gmem_write_request req = { .gpa = htole64(gpa), .len = htole32((uint32_t)len) };
    struct gmem_reply r = { .err_len = sizeof(struct gmem_partial_progress) };
    struct iovec iov[2] = { { &req, sizeof req }, { (void *)buf, len } };
    int status = gmem_call(g, GMEM_OP_WRITE, iov, 2, &r);
    return status < 0 ? scalar_failure(g, &r, status, len) : (ssize_t)len;
}

/*
 * Builds the READV/WRITEV head (nsegs, flags, segment table) in a new buffer. *total receives the sum of the
 * lengths. Returns NULL with *err set.
 */
static struct gmem_readv_request *vector_head(struct gmem *g, const struct gmem_iov *segs, unsigned nsegs,
                                              uint64_t extra_payload_per_byte, size_t *head_len, uint64_t *total,
                                              int *err)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < nsegs; i++)
        sum += segs[i].len;
    *total = sum;
    *head_len = sizeof(struct gmem_readv_request) + (size_t)nsegs * sizeof(struct gmem_segment);
    if (!gmem_fits(g, *head_len + extra_payload_per_byte * sum)) {
        *err = -EMSGSIZE; /* the frame could not be sent */
        return NULL;
    }
    struct gmem_readv_request *head = malloc(*head_len);
    if (!head) {
        *err = -ENOMEM;
        return NULL;
    }
    head->nsegs = htole32(nsegs);
    head->flags = 0;
    for (unsigned i = 0; i < nsegs; i++) {
        struct gmem_segment s = { .gpa = htole64(segs[i].gpa), .len = htole32(segs[i].len) };
        memcpy((uint8_t *)head + sizeof *head + i * sizeof s, &s, sizeof s);
    }
    return head;
}

/* A failed READV or WRITEV: record its {bytes_completed, segment, segment_bytes}, checked for consistency. */
static int vector_failure(struct gmem *g, const struct gmem_reply *r, int status, const struct gmem_iov *segs,
                          unsigned nsegs)
{
    if (!r->err_got)
        return status;
    struct gmem_vector_progress p;
    memcpy(&p, r->err, sizeof p);
    uint64_t done = le64toh(p.bytes_completed);
    uint32_t seg = le32toh(p.segment), seg_bytes = le32toh(p.segment_bytes);
    uint64_t before = 0;
    for (unsigned i = 0; i < seg && i < nsegs; i++)
        before += segs[i].len;
    if (seg >= nsegs || seg_bytes > segs[seg].len || before + seg_bytes != done)
        return gmem_fail(g, EPROTO);
    g->progress = (struct gmem_progress){ .bytes_completed = done, .segment = seg, .segment_bytes = seg_bytes };
    return status;
}

GMEM_EXPORT ssize_t gmem_readv(struct gmem *g, const struct gmem_iov *segs, unsigned nsegs, void *buf)
{
    g->progress = (struct gmem_progress){ 0 };
    if (nsegs && !segs)
        return -EINVAL;
    size_t head_len;
    uint64_t total;
    int err;
    struct gmem_readv_request *head = vector_head(g, segs, nsegs, 0, &head_len, &total, &err);
    if (!head)
        return err;
    if (total && !buf) {
        free(head);
        return -EINVAL;
    }
    /* A total over max_payload is the daemon's -EMSGSIZE to report; the reply then carries no data. */
    struct gmem_reply r = { .data = buf, .len = (size_t)total, .err_len = sizeof(struct gmem_vector_progress) };
    struct iovec iov = { head, head_len };
    int status = gmem_call(g, GMEM_OP_READV, &iov, 1, &r);
    free(head);
    return status < 0 ? vector_failure(g, &r, status, segs, nsegs) : (ssize_t)total;
}

GMEM_EXPORT ssize_t gmem_writev(struct gmem *g, const struct gmem_iov *segs, unsigned nsegs, const void *buf)
{
    g->progress = (struct gmem_progress){ 0 };
    if (nsegs && !segs)
        return -EINVAL;
    size_t head_len;
    uint64_t total;
    int err;
    struct gmem_readv_request *head = vector_head(g, segs, nsegs, 1, &head_len, &total, &err);
    if (!head)
        return err;
    if (total && !buf) {
        free(head);
        return -EINVAL;
    }
    struct gmem_reply r = { .err_len = sizeof(struct gmem_vector_progress) };
    struct iovec iov[2] = { { head, head_len }, { (void *)buf, (size_t)total } };
    int status = gmem_call(g, GMEM_OP_WRITEV, iov, 2, &r);
    free(head);
    return status < 0 ? vector_failure(g, &r, status, segs, nsegs) : (ssize_t)total;
}

GMEM_EXPORT int gmem_last_progress(struct gmem *g, struct gmem_progress *out)
{
    *out = g->progress;
    return 0;
}
