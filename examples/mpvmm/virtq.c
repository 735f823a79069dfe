/*
 * virtq.c - mpvmm-dev's side of a virtio 1.x split virtqueue in guest memory, reached only through gmemd: it
 * finds the queue from the guest's config page, takes what the guest made available, checks every chain in a
 * private copy, hands the batch to the block side, and publishes the completions.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dev.h"

/* Reads the queue's addresses from the config page and caches its page; its used index says where to resume. */
int queue_setup(struct device *d, struct queue *q, unsigned index)
{
    struct mpvmm_queue_config config;
    struct gmem_iov at = { MPVMM_CONFIG + offsetof(struct mpvmm_config, queue[index]), sizeof config };
    ssize_t n = io_readv(&d->io, &at, 1, &config);
    if (n < 0)
        return (int)n;
    uint64_t page = config.desc & ~(uint64_t)(PAGE - 1);
    /* This device caches one page per queue: the three parts must share it, aligned as virtio requires. */
    if (config.avail - page > PAGE - sizeof(struct virtq_avail) || config.used - page > PAGE - sizeof(struct virtq_used)
        || config.desc - page > PAGE - MPVMM_QUEUE_SIZE * sizeof(struct virtq_desc) || config.desc % 16
        || config.avail % 2 || config.used % 4)
        return -EINVAL;
    q->desc_offset = (uint32_t)(config.desc - page);
    q->avail_offset = (uint32_t)(config.avail - page);
    q->used_offset = (uint32_t)(config.used - page);
    int rc = io_page_open(&d->io, &q->page, page);
    if (rc < 0)
        return rc;
    struct gmem_atomic_op load = { .kind = GMEM_ATOMIC_LOAD, .size = 2 };
    uint64_t used;
    rc = io_page_atomic(&d->io, &q->page, q->used_offset + offsetof(struct virtq_used, idx), &load, &used);
    if (rc < 0)
        return rc;
    q->next = (uint16_t)used;
    q->ready = 1;
    return 0;
}

/* Walks one chain in the private snapshot: header (readable, 16 bytes), data, status (writable, last). A chain
 * that breaks a rule is malformed; its status byte is known (and answered UNSUPP) only if the rule broken was one
 * about its data. */
static int parse_chain(const uint8_t *snapshot, const struct queue *q, uint16_t head, struct request *r)
{
    const struct virtq_desc *table = (const struct virtq_desc *)(snapshot + q->desc_offset);
    struct virtq_desc chain[MAX_CHAIN];
    unsigned length = 0;
    *r = (struct request){ .head = head, .malformed = 1 };
    for (uint16_t i = head;; i = chain[length - 1].next) {
        if (i >= MPVMM_QUEUE_SIZE || length == MAX_CHAIN)
            return -1; /* an index past the table, or a chain too long (a loop among them) */
        chain[length++] = table[i];
        if (!(chain[length - 1].flags & VIRTQ_DESC_F_NEXT))
            break;
    }
    if (length < 2 || chain[0].len != sizeof r->h || chain[0].flags & VIRTQ_DESC_F_WRITE
        || !(chain[length - 1].flags & VIRTQ_DESC_F_WRITE) || chain[length - 1].len < 1)
        return -1;
    r->header = (struct gmem_iov){ chain[0].addr, chain[0].len };
    r->status = (struct gmem_iov){ chain[length - 1].addr, 1 };
    for (unsigned i = 1; i + 1 < length; i++) {
        int writable = (chain[i].flags & VIRTQ_DESC_F_WRITE) != 0;
        if (i > 1 && writable != r->data_writable)
            return -1; /* one direction per request */
        r->data_writable = writable;
        /* Each length is checked before it is added: two lengths the guest chose must not wrap the sum. */
        if (chain[i].len > MPVMM_MAX_REQUEST - r->data_len)
            return -1;
        r->data[r->data_count++] = (struct gmem_iov){ chain[i].addr, chain[i].len };
        r->data_len += chain[i].len;
    }
    r->malformed = 0;
    return 0;
}

/* Serves everything available on queue q. Returns 0, or a negative errno when gmemd failed the queue itself. */
int serve(struct device *d, struct queue *q)
{
    static uint8_t snapshot[PAGE];
    static struct request requests[MPVMM_QUEUE_SIZE];
    d->batch_phase = -1;
    /* An acquire LOAD of the available index, then one copy of the page into private memory, checked from there
     * (the guest cannot change what was checked). gmemd carries them out in this order, so the copy holds every
     * chain the guest published before its release of the index. */
    struct io_op look[2] = {
        { .kind = IO_OP_PAGE_ATOMIC, .page = &q->page, .offset = q->avail_offset + offsetof(struct virtq_avail, idx),
          .atomic = { .kind = GMEM_ATOMIC_LOAD, .size = 2 } },
        { .kind = IO_OP_PAGE_READ, .page = &q->page, .offset = 0, .len = PAGE, .buffer = snapshot },
    };
    int rc = io_run(&d->io, look, 2);
    if (rc < 0 || (rc = (int)look[0].result) < 0 || (rc = (int)look[1].result) < 0)
        return rc;
    uint16_t count = (uint16_t)((uint16_t)look[0].old - q->next);
    if (count == 0)
        return 0;
    if (count > MPVMM_QUEUE_SIZE) {
        fprintf(stderr, "mpvmm-dev: the guest made %u entries available on a %u-entry queue: queue broken\n", count,
                MPVMM_QUEUE_SIZE);
        q->broken = 1;
        return 0;
    }
    const struct virtq_avail *ring = (const struct virtq_avail *)(snapshot + q->avail_offset);
    for (uint16_t k = 0; k < count; k++)
        parse_chain(snapshot, q, ring->ring[(uint16_t)(q->next + k) % MPVMM_QUEUE_SIZE], &requests[k]);
    if ((rc = execute(d, requests, count)) < 0)
        return rc;

    const struct request *first_request = &requests[0];
    if (!first_request->malformed && (first_request->data_len == 4096 || first_request->data_len == MPVMM_MAX_REQUEST))
        d->batch_phase = (first_request->data_len == MPVMM_MAX_REQUEST) * 2 + (first_request->h.type == VIRTIO_BLK_T_IN);
    struct virtq_used_elem used[MPVMM_QUEUE_SIZE];
    for (uint16_t k = 0; k < count; k++) {
        const struct request *r = &requests[k];
        d->requests++;
        d->failed += r->status_value != VIRTIO_BLK_S_OK;
        if (r->status_value == VIRTIO_BLK_S_OK)
            d->bytes += r->data_len;
        used[k] = (struct virtq_used_elem){ .id = r->head, .len = r->status_written ? r->used_len : 1 };
    }
    /* The used elements (one or two runs: the ring wraps), then the used index with a release STORE, in one
     * submission after the status bytes: the guest sees everything before the index that announces it. */
    uint16_t first = q->next % MPVMM_QUEUE_SIZE;
    uint16_t run = count < MPVMM_QUEUE_SIZE - first ? count : (uint16_t)(MPVMM_QUEUE_SIZE - first);
    uint32_t ring_at = q->used_offset + offsetof(struct virtq_used, ring);
    q->next = (uint16_t)(q->next + count);
    struct io_op publish[3] = {
        { .kind = IO_OP_PAGE_WRITE, .page = &q->page, .offset = ring_at + first * 8u, .len = run * 8u, .buffer = used },
        { .kind = IO_OP_PAGE_WRITE, .page = &q->page, .offset = ring_at, .len = (count - run) * 8u, .buffer = used + run },
        { .kind = IO_OP_PAGE_ATOMIC, .page = &q->page, .offset = q->used_offset + offsetof(struct virtq_used, idx),
          .atomic = { .kind = GMEM_ATOMIC_STORE, .size = 2, .value = q->next } },
    };
    if (run == count)
        publish[1] = publish[2];
    unsigned n = run == count ? 2 : 3;
    if ((rc = io_run(&d->io, publish, n)) < 0)
        return rc;
    for (unsigned i = 0; i < n; i++)
        if (publish[i].result < 0)
            return (int)publish[i].result;
    return 0;
}
