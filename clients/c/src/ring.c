/*
 * ring.c - the shared-memory ring (PROTOCOL.md 10): set-up and teardown on the socket, the SQ/CQ protocol
 * (10.5), completions. Everything the daemon can write is read once into private memory and checked there
 * (indices, cookies, statuses, lengths), since the ring is shared with another process.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ring.h"

#define ROUND_PAGE(x) (((x) + 4095u) & ~(uint64_t)4095u)

int gmem_ring_fail(struct gmem_ring *r, int err)
{
    if (!r->dead)
        r->dead = err;
    return -r->dead;
}

void gmem_rings_detach(struct gmem *g)
{
    for (struct gmem_ring *r = g->rings; r; r = r->next) {
        r->g = NULL;
        gmem_ring_fail(r, ECONNRESET);
    }
    g->rings = NULL;
}

static int ring_close_request(struct gmem *g, uint32_t id)
{
    struct gmem_ring_close_request req = { .ring_id = htole32(id) };
    struct gmem_reply rep = { 0 };
    struct iovec iov = { &req, sizeof req };
    return gmem_call(g, GMEM_OP_RING_CLOSE, &iov, 1, &rep);
}

/* Maps the memfd and checks the header page against the layout of 10.1. Returns 0 or -EPROTO/-errno. */
static int map_ring(struct gmem_ring *r, uint64_t mmap_size)
{
    uint64_t cq_off = GMEM_RING_SQ_OFFSET + ROUND_PAGE((uint64_t)r->entries * GMEM_RING_SQE_SIZE);
    uint64_t data_off = cq_off + ROUND_PAGE((uint64_t)r->entries * GMEM_RING_CQE_SIZE);
    struct stat st;
    if (mmap_size != data_off + r->data_size)
        return -EPROTO;
    /* The memfd is sealed against shrinking, so a size checked now cannot turn into SIGBUS later. */
    if (fstat(r->memfd, &st) < 0 || (uint64_t)st.st_size < mmap_size)
        return -EPROTO;
    void *m = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
    if (m == MAP_FAILED)
        return -errno;
    r->map = m;
    r->map_size = mmap_size;

    struct gmem_ring_header h;
    memcpy(&h, m, sizeof h);
    if (le32toh(h.magic) != GMEM_RING_MAGIC || le32toh(h.version) != GMEM_RING_VERSION ||
        le32toh(h.entries) != r->entries || le32toh(h.sqe_size) != GMEM_RING_SQE_SIZE ||
        le32toh(h.cqe_size) != GMEM_RING_CQE_SIZE || le32toh(h.ring_id) != r->id ||
        le64toh(h.sq_offset) != GMEM_RING_SQ_OFFSET || le64toh(h.cq_offset) != cq_off ||
        le64toh(h.data_offset) != data_off || le64toh(h.data_size) != r->data_size)
        return -EPROTO;

    uint8_t *b = r->map;
    r->sq = b + GMEM_RING_SQ_OFFSET;
    r->cq = b + cq_off;
    r->data = b + data_off;
    r->sq_tail = (_Atomic uint32_t *)(b + offsetof(struct gmem_ring_header, sq_tail));
    r->cq_tail = (_Atomic uint32_t *)(b + offsetof(struct gmem_ring_header, cq_tail));
    r->cq_head = (_Atomic uint32_t *)(b + offsetof(struct gmem_ring_header, cq_head));
    r->server_flags = (_Atomic uint32_t *)(b + offsetof(struct gmem_ring_header, server_flags));
    r->client_flags = (_Atomic uint32_t *)(b + offsetof(struct gmem_ring_header, client_flags));
    /* Start where the daemon starts (0), whatever the page says: our indices are private from here on. */
    r->sq_next = r->sq_published = r->cq_next = 0;
    return 0;
}

static void free_ring(struct gmem_ring *r)
{
    if (r->map)
        munmap(r->map, r->map_size);
    if (r->memfd >= 0)
        close(r->memfd);
    if (r->submit_fd >= 0)
        close(r->submit_fd);
    if (r->complete_fd >= 0)
        close(r->complete_fd);
    free(r->slots);
    free(r->free_slots);
    free(r);
}

GMEM_EXPORT struct gmem_ring *gmem_ring_open(struct gmem *g, unsigned entries, size_t data_size)
{
    if (!(g->info.features & GMEM_FEATURE_RINGS)) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    struct gmem_ring *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->memfd = r->submit_fd = r->complete_fd = -1;

    struct gmem_ring_setup_request req = { .entries = htole32(entries), .data_size = htole64(data_size) };
    struct gmem_ring_setup_reply rep;
    int fds[3];
    struct gmem_reply reply = { .data = &rep, .len = sizeof rep, .fds = fds, .nfds_max = 3 };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_RING_SETUP, &iov, 1, &reply);
    if (status < 0) {
        free_ring(r);
        errno = -status;
        return NULL;
    }
    if (reply.nfds > 0)
        r->memfd = fds[0];
    if (reply.nfds > 1)
        r->submit_fd = fds[1];
    if (reply.nfds > 2)
        r->complete_fd = fds[2];
    r->id = le32toh(rep.ring_id);
    r->entries = le32toh(rep.entries);
    r->data_size = le64toh(rep.data_size);

    int err = -EPROTO;
    if (reply.nfds == 3 && r->entries == entries && r->data_size == data_size)
        err = map_ring(r, le64toh(rep.mmap_size));
    if (err == 0) {
        r->slots = calloc(entries, sizeof *r->slots);
        r->free_slots = malloc(entries * sizeof *r->free_slots);
        if (!r->slots || !r->free_slots)
            err = -ENOMEM;
    }
    if (err < 0) {
        ring_close_request(g, r->id); /* the daemon's side of a ring we cannot use */
        free_ring(r);
        errno = -err;
        return NULL;
    }
    for (uint32_t i = 0; i < entries; i++)
        r->free_slots[i] = entries - 1 - i;
    r->nfree = entries;
    r->g = g;
    r->sock_fd = g->fd;
    r->next = g->rings;
    g->rings = r;
    return r;
}

GMEM_EXPORT void gmem_ring_close(struct gmem_ring *r)
{
    if (!r)
        return;
    if (r->g) {
        for (struct gmem_ring **p = &r->g->rings; *p; p = &(*p)->next)
            if (*p == r) {
                *p = r->next;
                break;
            }
        ring_close_request(r->g, r->id); /* the daemon finishes what it consumed, then lets go */
    }
    free_ring(r);
}

struct gmem_ring_sqe *gmem_ring_prep(struct gmem_ring *r, uint16_t opcode, uint64_t table_bytes,
                                     uint64_t data_bytes, uint64_t user_data, struct gmem_ring_slot **slot,
                                     uint64_t *table_off, uint64_t *data_off, int *err)
{
    if (r->dead) {
        *err = -r->dead;
        return NULL;
    }
    uint64_t table = (table_bytes + 7) & ~7ull, bytes = (data_bytes + 7) & ~7ull;
    if (table_bytes > r->data_size || data_bytes > r->data_size || table + bytes > r->data_size) {
        *err = -EMSGSIZE; /* never fits this ring */
        return NULL;
    }
    if (r->inflight == r->entries || r->data_used + table + bytes > r->data_size) {
        *err = -EBUSY; /* fits once the entries in flight are reaped */
        return NULL;
    }
    /*
     * The SQ has room: an entry is in flight until its completion is reaped, and the daemon consumes an entry
     * before it completes it, so at most inflight < entries slots are unconsumed. sq_head is not read: it proves
     * nothing more, and its cache line, which the daemon writes for every entry, would cost a miss per entry.
     */
    uint32_t cookie = r->free_slots[--r->nfree];
    struct gmem_ring_slot *s = &r->slots[cookie];
    *s = (struct gmem_ring_slot){ .user_data = user_data, .opcode = opcode, .busy = true };
    *table_off = r->data_used;
    *data_off = r->data_used + table;
    r->data_used += table + bytes;
    r->inflight++;
    *slot = s;

    struct gmem_ring_sqe *e = (struct gmem_ring_sqe *)(r->sq + (size_t)(r->sq_next & (r->entries - 1)) *
                                                                    GMEM_RING_SQE_SIZE);
    memset(e, 0, sizeof *e);
    e->cookie = htole64(cookie);
    e->opcode = htole16(opcode);
    r->sq_next++;
    return e;
}

GMEM_EXPORT int gmem_ring_submit(struct gmem_ring *r)
{
    if (r->dead)
        return -r->dead;
    uint32_t n = r->sq_next - r->sq_published;
    if (n == 0)
        return 0;
    atomic_store_explicit(r->sq_tail, r->sq_next, memory_order_release);
    r->sq_published = r->sq_next;
    r->outstanding += n;
    /* The fence orders our tail store before the flag load; the poller does the mirror image (10.5). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(r->server_flags, memory_order_relaxed) & GMEM_RING_NEED_WAKEUP) {
        uint64_t one = 1;
        if (write(r->submit_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            return gmem_ring_fail(r, ECONNRESET);
    }
    return (int)n;
}

/* Turns one completion entry (already copied out of shared memory) into *out. 0, or -EPROTO. */
static int complete(struct gmem_ring *r, const struct gmem_ring_cqe *c, struct gmem_completion *out)
{
    uint64_t cookie = le64toh(c->cookie);
    if (cookie >= r->entries || !r->slots[cookie].busy)
        return -EPROTO;
    struct gmem_ring_slot *s = &r->slots[cookie];
    int32_t status = (int32_t)le32toh((uint32_t)c->status);
    uint32_t len = le32toh(c->len);
    uint64_t value = le64toh(c->value);
    uint32_t segment = le32toh(c->segment), segment_bytes = le32toh(c->segment_bytes);
    *out = (struct gmem_completion){ .user_data = s->user_data, .status = status };
    bool reads = s->opcode == GMEM_OP_READ || s->opcode == GMEM_OP_GPC_READ || s->opcode == GMEM_OP_READV;
    bool moves = reads || s->opcode == GMEM_OP_WRITE || s->opcode == GMEM_OP_GPC_WRITE ||
                 s->opcode == GMEM_OP_WRITEV;
    bool atomic = s->opcode == GMEM_OP_ATOMIC || s->opcode == GMEM_OP_GPC_ATOMIC;

    if (status > 0 || status < -4095)
        return -EPROTO;
    if (status == 0) {
        if (len != (moves ? s->len : 0) || (!atomic && value) || segment || segment_bytes)
            return -EPROTO;
        if (atomic && s->width < 8 && (value >> (s->width * 8)))
            return -EPROTO;
        if (reads && len)
            memcpy(s->dest, r->data + s->data_off, len);
        out->len = len;
        out->value = value;
    } else if (value || segment || segment_bytes) {
        /* A partial failure: only the four transfers report one, and never more than they asked for. */
        bool vector = s->opcode == GMEM_OP_READV || s->opcode == GMEM_OP_WRITEV;
        bool scalar = s->opcode == GMEM_OP_READ || s->opcode == GMEM_OP_WRITE;
        if (len || !(vector || scalar) || value > s->len || (scalar && segment) ||
            (vector && segment >= s->nsegs))
            return -EPROTO;
        out->progress = (struct gmem_progress){
            .bytes_completed = value,
            .segment = segment,
            .segment_bytes = scalar ? (uint32_t)value : segment_bytes,
        };
    }
    s->busy = false;
    r->free_slots[r->nfree++] = (uint32_t)cookie;
    r->inflight--;
    r->outstanding--;
    if (r->inflight == 0)
        r->data_used = 0; /* nothing refers to the data area any more */
    return 0;
}

/*
 * Polls of cq_tail before gmem_ring_reap() sleeps on the completion doorbell (PROTOCOL.md 10.5 lets a client
 * poll): while the daemon's poller is awake a completion comes within a few microseconds, and sleeping at once
 * would cost every call two system calls and a wake-up (about 16 us against 1 us at depth 1). With a pause
 * between polls this is some tens of microseconds of spinning at most.
 */
#define REAP_SPINS 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Sleeps until the completion doorbell rings or the connection hangs up. 0, or -ECONNRESET. */
static int wait_doorbell(struct gmem_ring *r)
{
    struct pollfd p[2] = { { r->complete_fd, POLLIN, 0 }, { r->sock_fd, POLLRDHUP, 0 } };
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (p[0].revents & POLLIN) {
            uint64_t v;
            (void)!read(r->complete_fd, &v, sizeof v); /* reset it */
            return 0;
        }
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return -ECONNRESET;
    }
}

GMEM_EXPORT int gmem_ring_reap(struct gmem_ring *r, struct gmem_completion *out, unsigned max,
                               unsigned min_wait)
{
    unsigned got = 0;
    unsigned want = min_wait < max ? min_wait : max;
    if (want > r->outstanding)
        want = r->outstanding;
    bool hung_up = false;
    unsigned spins = 0;
    for (;;) {
        if (r->dead && !hung_up)
            return got ? (int)got : -r->dead;
        uint32_t tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
        uint32_t avail = tail - r->cq_next;
        if (avail > r->entries || avail > r->outstanding)
            return gmem_ring_fail(r, EPROTO);
        unsigned before = got;
        while (avail-- && got < max) {
            struct gmem_ring_cqe c; /* one copy: the daemon's later writes cannot change what we checked */
            memcpy(&c, r->cq + (size_t)(r->cq_next & (r->entries - 1)) * GMEM_RING_CQE_SIZE, sizeof c);
            r->cq_next++;
            if (complete(r, &c, &out[got]) < 0)
                return gmem_ring_fail(r, EPROTO);
            got++;
        }
        if (got != before) {
            atomic_store_explicit(r->cq_head, r->cq_next, memory_order_release);
            spins = 0; /* more of a batch is likely close behind */
        }
        if (got >= want)
            return (int)got;
        if (hung_up)
            return got ? (int)got : gmem_ring_fail(r, ECONNRESET);
        if (spins < REAP_SPINS) {
            spins++;
            cpu_relax();
            continue;
        }

        /* Ask for the doorbell, then look once more: a completion published before our flag would not ring. */
        atomic_store_explicit(r->client_flags, GMEM_RING_WANT_WAKEUP, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(r->cq_tail, memory_order_acquire) != r->cq_next)
            continue;
        int w = wait_doorbell(r);
        if (w < 0) {
            gmem_ring_fail(r, -w);
            hung_up = true; /* collect what was completed before the daemon went away, then fail */
        }
    }
}
