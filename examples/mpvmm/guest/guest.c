/*
 * guest.c - the mpvmm guest: freestanding C, no OS, run by mpvmm-vcpu in 64-bit mode at CPL 3 (kvm.c says why).
 *
 * Each vCPU is the driver of its own virtio-blk-style device queue (a virtio 1.x split virtqueue in its I/O
 * window, layout.h). In test mode it runs `rounds` rounds: a batch of write requests of mixed sizes (512 bytes to
 * 64 KiB, larger ones split over two descriptors, some batches ending in a FLUSH), one kick, then a batch that
 * reads the same sectors back, one kick, and a word-by-word comparison. Halfway it asks for its I/O window to be
 * converted to shared, and later back to private, so gmemd invalidates the device's cache of its queue page
 * while requests keep flowing; at the end it leaves the window shared. Every round it reads its clock (a pvclock-style structure kept current by another
 * process) and checks that time never goes back. A last round writes its whole disk area with a pattern the host
 * checks in the disk file afterwards. In bench mode it times batches of 4 KiB and 64 KiB requests instead; in
 * hostile mode it sends the device broken chains and buffers outside guest memory, and checks every answer.
 * It prints one result line through the debug port and reports its verdict through the verdict port.
 */
#include "../layout.h"

#define barrier() __asm__ volatile("" ::: "memory")

/* gcc may call these for copies and fills even in freestanding code. */
void *memset(void *dst, int c, unsigned long n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, unsigned long n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

static void out32(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static void print(const char *s)
{
    while (*s)
        out32(MPVMM_PORT_DEBUG, (uint8_t)*s++);
}

static void print_u32(uint32_t n)
{
    char digits[11];
    int i = 10;
    digits[i] = 0;
    do
        digits[--i] = (char)('0' + n % 10);
    while (n /= 10);
    print(digits + i);
}

static _Noreturn void verdict(int failed, const char *why)
{
    if (why)
        print(why);
    out32(MPVMM_PORT_VERDICT, (uint32_t)failed); /* the VMM stops this vCPU here */
    for (;;)
        ;
}

/* ---- The clock: a seqlock reader, as a pvclock reader is ----------------------------------------------------- */

struct clock_reader {
    volatile struct mpvmm_clock *clock;
    uint64_t last;
    uint32_t readings, changes;
};

static uint64_t clock_now(struct clock_reader *r)
{
    for (uint32_t spins = 0; spins < 2000000000u; spins++) { /* seconds: mpvmm-clock may be descheduled */
        uint32_t before = r->clock->version;
        barrier(); /* x86 keeps loads in order; the compiler must too */
        uint64_t ns = r->clock->ns;
        barrier();
        if (before & 1 || before == 0 || r->clock->version != before)
            continue;
        if (ns < r->last)
            verdict(1, "guest: the clock went back\n");
        r->changes += ns != r->last;
        r->readings++;
        r->last = ns;
        return ns;
    }
    verdict(1, "guest: the clock never settled (is mpvmm-clock running?)\n");
}

/* ---- The driver's side of the queue -------------------------------------------------------------------------- */

struct request {
    uint32_t type;   /* VIRTIO_BLK_T_* */
    uint64_t sector; /* of the whole disk */
    uint32_t len;    /* bytes; 0 for FLUSH */
    uint8_t *buffer;
};

struct queue {
    volatile struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
    volatile struct virtio_blk_req_header *headers;
    volatile uint8_t *status;
    uint16_t next_avail;
    uint32_t requests, bytes;
};

static void put_desc(struct queue *q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    q->desc[i].addr = addr;
    q->desc[i].len = len;
    q->desc[i].flags = flags;
    q->desc[i].next = (uint16_t)(i + 1);
}

/* Publishes the n chains written after the last batch with one release of avail->idx and kicks once. The kick
 * returns once the device has answered, so every chain must be used by now. Returns the used index before them. */
static uint16_t publish_and_kick(struct queue *q, unsigned n)
{
    barrier(); /* the chains before the index that publishes them (a release store on x86) */
    uint16_t used_before = q->used->idx;
    q->next_avail = (uint16_t)(q->next_avail + n);
    q->avail->idx = q->next_avail;
    out32(MPVMM_PORT_KICK, 0);
    if (q->used->idx != q->next_avail)
        verdict(1, "guest: the device did not use every request it was kicked for\n");
    barrier(); /* the used index before the elements it publishes */
    return used_before;
}

/* Makes n requests available with one release of avail->idx, kicks once, and checks every completion. */
static void submit(struct queue *q, const struct request *requests, unsigned n)
{
    for (unsigned j = 0; j < n; j++) {
        const struct request *req = &requests[j];
        unsigned d = j * 4; /* slot j owns descriptors 4j to 4j + 3 */
        q->headers[j].type = req->type;
        q->headers[j].reserved = 0;
        q->headers[j].sector = req->sector;
        q->status[j] = 0xff;
        put_desc(q, d++, (uintptr_t)&q->headers[j], sizeof q->headers[j], VIRTQ_DESC_F_NEXT);
        uint16_t data_flags = VIRTQ_DESC_F_NEXT | (req->type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0);
        /* Larger buffers go as two descriptors, so the device gathers real scatter lists. */
        uint32_t first = req->len > 4096 ? req->len / 2 : req->len;
        if (first)
            put_desc(q, d++, (uintptr_t)req->buffer, first, data_flags);
        if (req->len > first)
            put_desc(q, d++, (uintptr_t)req->buffer + first, req->len - first, data_flags);
        put_desc(q, d, (uintptr_t)&q->status[j], 1, VIRTQ_DESC_F_WRITE);
        q->desc[d].next = 0;
        q->avail->ring[(uint16_t)(q->next_avail + j) % MPVMM_QUEUE_SIZE] = (uint16_t)(j * 4);
    }
    uint16_t used_before = publish_and_kick(q, n);
    uint32_t seen = 0;
    for (unsigned k = 0; k < n; k++) {
        volatile struct virtq_used_elem *e = &q->used->ring[(uint16_t)(used_before + k) % MPVMM_QUEUE_SIZE];
        uint32_t j = e->id / 4;
        if (e->id % 4 || j >= n || seen & 1u << j)
            verdict(1, "guest: a used element names no request of the batch\n");
        seen |= 1u << j;
        uint32_t expected = 1 + (requests[j].type == VIRTIO_BLK_T_IN ? requests[j].len : 0);
        if (e->len != expected || q->status[j] != VIRTIO_BLK_S_OK)
            verdict(1, "guest: a request failed or reported a wrong length\n");
        q->requests++;
        q->bytes += requests[j].len;
    }
}

/* ---- The test ------------------------------------------------------------------------------------------------ */

static const uint32_t sizes[] = { 512, 4096, 1536, 65536, 8192, 2048, 32768, 4096, 12288, 512, 16384, 1024 };

static void fill(uint8_t *buffer, uint64_t sector, uint32_t len, uint32_t seed)
{
    uint32_t *words = (uint32_t *)buffer, first = (uint32_t)(sector * MPVMM_SECTOR / 4);
    for (uint32_t w = 0; w < len / 4; w++)
        words[w] = mpvmm_pattern(first + w, seed);
}

static int matches(const uint8_t *buffer, uint64_t sector, uint32_t len, uint32_t seed)
{
    const uint32_t *words = (const uint32_t *)buffer;
    uint32_t first = (uint32_t)(sector * MPVMM_SECTOR / 4);
    for (uint32_t w = 0; w < len / 4; w++)
        if (words[w] != mpvmm_pattern(first + w, seed))
            return 0;
    return 1;
}

/* Writes n requests' worth of pattern, reads it back into poisoned buffers, compares. */
static void write_and_check(struct queue *q, struct request *requests, unsigned n, uint32_t seed, int flush)
{
    for (unsigned j = 0; j < n; j++) {
        requests[j].type = VIRTIO_BLK_T_OUT;
        fill(requests[j].buffer, requests[j].sector, requests[j].len, seed);
    }
    /* A FLUSH rides in the same batch when a slot is free. */
    struct request flush_request = { .type = VIRTIO_BLK_T_FLUSH };
    if (flush && n < MPVMM_BATCH) {
        requests[n] = flush_request;
        submit(q, requests, n + 1);
    } else {
        submit(q, requests, n);
        if (flush)
            submit(q, &flush_request, 1);
    }
    for (unsigned j = 0; j < n; j++) {
        requests[j].type = VIRTIO_BLK_T_IN;
        memset(requests[j].buffer, 0xa5, requests[j].len);
    }
    submit(q, requests, n);
    for (unsigned j = 0; j < n; j++)
        if (!matches(requests[j].buffer, requests[j].sector, requests[j].len, seed))
            verdict(1, "guest: data read back differs from what was written\n");
}

static void run_test(struct queue *q, uint32_t index, uint32_t rounds, uint8_t *data, struct clock_reader *clock)
{
    struct request requests[MPVMM_BATCH];
    uint64_t area = (uint64_t)index * (MPVMM_DISK_AREA / MPVMM_SECTOR);
    for (uint32_t r = 1; r <= rounds; r++) {
        if (r == rounds / 2)
            out32(MPVMM_PORT_CONVERT, 0); /* the window to shared: the device's cached queue page goes stale */
        if (r == rounds * 3 / 4)
            out32(MPVMM_PORT_CONVERT, 8); /* and back to private */
        /* vCPU 0 does the same to the clock page: every clock's cache goes stale, in the middle of updates. */
        if (index == 0 && r == rounds / 2 + 1)
            out32(MPVMM_PORT_CONVERT, 1);
        if (index == 0 && r == rounds * 3 / 4 + 1)
            out32(MPVMM_PORT_CONVERT, 9);
        unsigned n = 1 + r % 8;
        uint64_t sector = area + (r * 97) % 1536;
        for (unsigned j = 0; j < n; j++) {
            uint32_t len = sizes[(r + j) % (sizeof sizes / sizeof *sizes)];
            requests[j] = (struct request){ .sector = sector, .len = len, .buffer = data + j * MPVMM_MAX_REQUEST };
            sector += len / MPVMM_SECTOR;
        }
        write_and_check(q, requests, n, r * 0x01000193u ^ (index + 1), r % 3 == 0);
        clock_now(clock);
    }
    /* The last round covers the whole area, with the seed the host checks the disk file against. */
    for (unsigned j = 0; j < MPVMM_BATCH; j++)
        requests[j] = (struct request){ .sector = area + j * (MPVMM_MAX_REQUEST / MPVMM_SECTOR),
                                        .len = MPVMM_MAX_REQUEST, .buffer = data + j * MPVMM_MAX_REQUEST };
    write_and_check(q, requests, MPVMM_BATCH, MPVMM_FINAL_SEED, 1);
    clock_now(clock);
    /* Leave the window shared, so that the host's check after the run covers both kinds of page. */
    out32(MPVMM_PORT_CONVERT, 0);
}

/* ---- A hostile driver ---------------------------------------------------------------------------------------- */

enum { OUTSIDE = 0x7ff00000 }; /* far past the region's end: gmemd refuses it with -EFAULT */

/* One batch of broken requests next to good ones: the device must answer each as the rules say, and go on. */
static void run_hostile(struct queue *q, uint32_t index, uint8_t *data)
{
    enum { BROKEN = 10 };
    uint64_t sector = (uint64_t)index * (MPVMM_DISK_AREA / MPVMM_SECTOR);
    for (unsigned j = 0; j < BROKEN; j++) {
        q->headers[j] = (struct virtio_blk_req_header){ .type = VIRTIO_BLK_T_OUT, .sector = sector + j };
        q->status[j] = 0xff;
        unsigned d = j * 4;
        put_desc(q, d, (uintptr_t)&q->headers[j], 16, VIRTQ_DESC_F_NEXT);
        put_desc(q, d + 1, (uintptr_t)data + j * 512, 512, VIRTQ_DESC_F_NEXT);
        put_desc(q, d + 2, (uintptr_t)&q->status[j], 1, VIRTQ_DESC_F_WRITE);
        q->desc[d + 2].next = 0;
        q->avail->ring[(uint16_t)(q->next_avail + j) % MPVMM_QUEUE_SIZE] = (uint16_t)d;
    }
    q->desc[5].next = 4;                       /* 1: a loop */
    q->desc[8].len = 15;                       /* 2: a header that is not 16 bytes */
    q->desc[13].addr = OUTSIDE;                /* 3: data outside guest memory */
    q->desc[17].next = 200;                    /* 4: an index past the table */
    q->headers[5].type = VIRTIO_BLK_T_IN;      /* 5: a read into a buffer the device may not write */
    q->desc[26].addr = OUTSIDE;                /* 6: a status byte outside guest memory */
    q->desc[30].flags = 0;                     /* 7: a last descriptor the device may not write */
    put_desc(q, 34, (uintptr_t)data, 0xffff0000u, VIRTQ_DESC_F_NEXT); /* 8: lengths whose 32-bit sum wraps */
    q->desc[33].len = 0x10000;
    put_desc(q, 35, (uintptr_t)&q->status[8], 1, VIRTQ_DESC_F_WRITE);
    q->desc[35].next = 0;
    q->headers[9].type = 7;                    /* 9: a request type virtio-blk does not have */
    uint16_t used_before = publish_and_kick(q, BROKEN);
    /* 0xff: the status byte was not touched. */
    static const uint8_t expected[BROKEN] = { VIRTIO_BLK_S_OK, 0xff, 0xff, VIRTIO_BLK_S_IOERR, 0xff,
                                              VIRTIO_BLK_S_IOERR, 0xff, 0xff, VIRTIO_BLK_S_UNSUPP,
                                              VIRTIO_BLK_S_UNSUPP };
    uint32_t seen = 0;
    for (unsigned k = 0; k < BROKEN; k++) {
        volatile struct virtq_used_elem *e = &q->used->ring[(uint16_t)(used_before + k) % MPVMM_QUEUE_SIZE];
        uint32_t j = e->id / 4;
        if (j >= BROKEN || q->status[j] != expected[j] || e->len != 1) {
            print("guest: broken request ");
            print_u32(j);
            verdict(1, " got the wrong answer\n");
        }
        seen |= 1u << j;
    }
    if (seen != (1u << BROKEN) - 1)
        verdict(1, "guest: a broken request was not used exactly once\n");
    q->requests += BROKEN;

    /* The queue still works. */
    struct request requests[MPVMM_BATCH];
    for (unsigned j = 0; j < 4; j++)
        requests[j] = (struct request){ .sector = sector + j * 8, .len = 4096, .buffer = data + j * 4096 };
    write_and_check(q, requests, 4, 0x5eed ^ index, 1);

    /* A runaway index, far more than a queue ahead: the device gives up on this queue, not on everything. */
    used_before = q->used->idx;
    q->avail->idx = (uint16_t)(q->next_avail + 1000);
    out32(MPVMM_PORT_KICK, 0);
    if (q->used->idx != used_before)
        verdict(1, "guest: the device served a runaway index\n");
}

/* ---- The benchmark ------------------------------------------------------------------------------------------- */

static void run_bench(struct queue *q, uint32_t index, volatile struct mpvmm_config *config, uint8_t *data,
                      struct clock_reader *clock)
{
    struct request requests[MPVMM_BATCH];
    uint64_t area = (uint64_t)index * (MPVMM_DISK_AREA / MPVMM_SECTOR);
    for (uint32_t phase = 0; phase < MPVMM_PHASES; phase++) {
        uint32_t len = phase < 2 ? 4096 : MPVMM_MAX_REQUEST;
        uint32_t type = phase % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
        /* Buffers back to back, as a driver's buffer pool hands them out: gmemd restores a run of contiguous
         * private pages with one protection call. */
        for (unsigned j = 0; j < MPVMM_BATCH; j++)
            requests[j] = (struct request){ .type = type, .sector = area + j * (len / MPVMM_SECTOR), .len = len,
                                            .buffer = data + j * len };
        uint32_t requests_before = q->requests, bytes_before = q->bytes;
        out32(MPVMM_PORT_MARK, phase);
        uint64_t start = clock_now(clock);
        for (uint32_t b = 0; b < config->rounds; b++)
            submit(q, requests, MPVMM_BATCH);
        uint64_t end = clock_now(clock);
        config->result[index][phase].requests = q->requests - requests_before;
        config->result[index][phase].bytes = q->bytes - bytes_before;
        config->result[index][phase].ns = end - start;
    }
    out32(MPVMM_PORT_MARK, MPVMM_PHASES);
}

void guest_main(uint32_t index)
{
    volatile struct mpvmm_config *config = (volatile struct mpvmm_config *)(uintptr_t)MPVMM_CONFIG;
    uint8_t *window = (uint8_t *)(uintptr_t)(MPVMM_WINDOWS + index * MPVMM_WINDOW_SIZE);
    struct queue q = {
        .desc = (volatile struct virtq_desc *)(window + MPVMM_Q_DESC),
        .avail = (volatile struct virtq_avail *)(window + MPVMM_Q_AVAIL),
        .used = (volatile struct virtq_used *)(window + MPVMM_Q_USED),
        .headers = (volatile struct virtio_blk_req_header *)(window + MPVMM_Q_HEADERS),
        .status = window + MPVMM_Q_STATUS,
    };
    /* Set up the queue as a virtio driver does: empty rings, then the addresses into the transport's registers. */
    memset(window, 0, 0x1000);
    config->queue[index].desc = (uintptr_t)q.desc;
    config->queue[index].avail = (uintptr_t)q.avail;
    config->queue[index].used = (uintptr_t)q.used;
    struct clock_reader clock = { .clock = (volatile struct mpvmm_clock *)(uintptr_t)MPVMM_CLOCK + index };
    uint64_t start = clock_now(&clock);

    if (config->mode == MPVMM_MODE_BENCH)
        run_bench(&q, index, config, window + MPVMM_DATA, &clock);
    else if (config->mode == MPVMM_MODE_HOSTILE)
        run_hostile(&q, index, window + MPVMM_DATA);
    else
        run_test(&q, index, config->rounds, window + MPVMM_DATA, &clock);

    uint64_t elapsed_us = (clock.last - start) / 1000;
    print("guest: ");
    print_u32(q.requests);
    print(" requests, ");
    print_u32(q.bytes >> 10);
    print(" KiB, checked; clock read ");
    print_u32(clock.readings);
    print(" times, advanced ");
    print_u32(clock.changes);
    print(" times, never back; ");
    print_u32((uint32_t)elapsed_us);
    print(" us\n");
    /* A hostile run is too short to see the clock move. */
    int stalled = clock.changes == 0 && config->mode != MPVMM_MODE_HOSTILE;
    verdict(stalled, stalled ? "guest: the clock never advanced\n" : 0);
}
