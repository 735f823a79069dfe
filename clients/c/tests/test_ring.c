/*
 * test_ring.c - the ring API against a real gmemd: set-up limits, every one-call function (checked against the
 * socket), batches, the library's own limits (-EBUSY, -EMSGSIZE), -ESTALE with its event on the socket, -EPERM,
 * two rings on two threads, and a connection closed under an open ring. Runs twice: with the daemon's poller
 * spinning (default) and with --ring-poll-us 0, where every submit rings the doorbell and every wait sleeps.
 * (The whole conformance table also runs over a ring: test_conformance --ring.)
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gmem_ring.h"
#include "harness.h"

static void setup_limits(struct gmem *g)
{
    errno = 0;
    CHECK(gmem_ring_open(g, 3, 4096) == NULL && errno == EINVAL); /* not a power of two */
    errno = 0;
    CHECK(gmem_ring_open(g, 0, 4096) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(gmem_ring_open(g, 8192, 4096) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(gmem_ring_open(g, 8, 100) == NULL && errno == EINVAL); /* not a multiple of 4096 */
    errno = 0;
    CHECK(gmem_ring_open(g, 8, (64u << 20) + 4096) == NULL && errno == EINVAL);
    CHECK_RC(gmem_ping(g), 0); /* refusals leave the connection usable */
}

static void one_call(struct gmem *g, struct gmem_ring *r)
{
    uint8_t buf[256], back[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (uint8_t)(255 - i);
    CHECK_RC(gmem_ring_ping(r), 0);
    CHECK_RC(gmem_ring_write(r, 0x10000 - 100, buf, 256), 256); /* crosses a page */
    CHECK_RC(gmem_read(g, 0x10000 - 100, back, 256), 256);     /* the socket sees it */
    CHECK(memcmp(buf, back, 256) == 0);
    memset(back, 0, sizeof back);
    CHECK_RC(gmem_ring_read(r, 0x10000 - 100, back, 256), 256);
    CHECK(memcmp(buf, back, 256) == 0);
    CHECK_RC(gmem_ring_read(r, 0, NULL, 0), 0);

    struct gmem_iov segs[3] = { { 0x20000, 4 }, { 0x30000, 2 }, { 0x20002, 4 } };
    CHECK_RC(gmem_ring_writev(r, segs, 3, "abcdXYefgh"), 10);
    CHECK_RC(gmem_ring_readv(r, segs, 2, back), 6);
    CHECK(memcmp(back, "abefXY", 6) == 0); /* later segments win */

    uint64_t h, old = 0;
    CHECK_RC(gmem_gpc_activate(g, 0x40000, 64, &h), 0); /* control on the socket, data on the ring */
    CHECK_RC(gmem_ring_gpc_write(r, h, 8, "ring", 4), 0);
    CHECK_RC(gmem_gpc_read(g, h, 8, back, 4), 0);
    CHECK(memcmp(back, "ring", 4) == 0);
    CHECK_RC(gmem_ring_gpc_read(r, h, 8, back, 4), 0);
    CHECK_RC(gmem_ring_gpc_read(r, h, 62, back, 4), -EINVAL);

    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_STORE, .size = 8, .gpa = 0x50000, .value = 40 };
    CHECK_RC(gmem_ring_atomic(r, &op, &old), 0);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_FETCH_ADD, .size = 8, .gpa = 0x50000, .value = 2 };
    CHECK_RC(gmem_ring_atomic(r, &op, &old), 0);
    CHECK(old == 40);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_LOAD, .size = 8, .gpa = 0x50000 };
    CHECK_RC(gmem_atomic(g, &op, &old), 0);
    CHECK(old == 42);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_CMPXCHG, .size = 4, .value = 9, .expected = 0x676e6972 };
    CHECK_RC(gmem_ring_gpc_atomic(r, h, 8, &op, &old), 0); /* "ring" as a little-endian u32 */
    CHECK(old == 0x676e6972);

    /* The socket's error rules, through the ring. */
    CHECK_RC(gmem_ring_read(r, 64u << 20, back, 1), -EFAULT);
    CHECK_RC(gmem_ring_write(r, (64u << 20) - 2, buf, 4), -EFAULT);
    struct gmem_iov bad[2] = { { 0, 1 }, { 64u << 20, 1 } };
    CHECK_RC(gmem_ring_readv(r, bad, 2, back), -EFAULT);
    CHECK_RC(gmem_ring_readv(r, bad, 0, back), -EINVAL);
    CHECK_RC(gmem_ring_gpc_read(r, 0xdead, 0, back, 4), -ENOENT);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_LOAD, .size = 4, .gpa = 0x50002 };
    CHECK_RC(gmem_ring_atomic(r, &op, &old), -EINVAL);
    op.size = 3;
    CHECK_RC(gmem_ring_atomic(r, &op, &old), -EINVAL);
    struct gmem_progress p = { 1, 1, 1 };
    CHECK_RC(gmem_ring_last_progress(r, &p), 0);
    CHECK(p.bytes_completed == 0 && p.segment == 0);

    /* -ESTALE after a conversion; the event comes on the socket. */
    struct gmem_event ev;
    CHECK_RC(gmem_set_attributes(g, 0x40000, 0x1000, 0), 0);
    CHECK_RC(gmem_ring_gpc_read(r, h, 8, back, 4), -ESTALE);
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.handle == h && ev.reason == GMEM_INVALIDATED_ATTRIBUTES_CHANGED);
    CHECK_RC(gmem_gpc_refresh(g, h, 0x40000, 64), 0);
    CHECK_RC(gmem_ring_gpc_read(r, h, 8, back, 4), 0);
    CHECK_RC(gmem_gpc_deactivate(g, h), 0);
}

static void batch(struct gmem_ring *r, unsigned entries, size_t data_size)
{
    /* entries reads of 8 bytes, each of its own address, written first by a batch of writes. */
    uint64_t vals[64], got[64] = { 0 };
    struct gmem_completion c[64];
    for (unsigned i = 0; i < entries; i++) {
        vals[i] = 0x1111111111111111ull * (i % 15 + 1) + i;
        CHECK_RC(gmem_ring_prep_write(r, 0x60000 + 8 * (uint64_t)i, &vals[i], 8, 100 + i), 0);
    }
    CHECK_RC(gmem_ring_prep_ping(r, 999), -EBUSY); /* entries in flight already */
    CHECK_RC(gmem_ring_ping(r), -EBUSY);          /* one-call use beside a batch */
    CHECK_RC(gmem_ring_reap(r, c, 64, 0), 0);       /* nothing submitted, nothing to wait for */
    CHECK_RC(gmem_ring_submit(r), (int)entries);
    CHECK_RC(gmem_ring_submit(r), 0);
    CHECK_RC(gmem_ring_reap(r, c, 64, 64), (int)entries); /* min_wait is capped by what is in flight */
    for (unsigned i = 0; i < entries; i++)
        CHECK(c[i].status == 0 && c[i].len == 8 && c[i].user_data == 100 + i); /* in order, in version 1 */

    for (unsigned i = 0; i < entries; i++)
        CHECK_RC(gmem_ring_prep_read(r, 0x60000 + 8 * (uint64_t)i, &got[i], 8, i), 0);
    CHECK_RC(gmem_ring_submit(r), (int)entries);
    unsigned n = 0;
    while (n < entries) { /* reap in small bites */
        int k = gmem_ring_reap(r, c + n, 3, 1);
        CHECK(k > 0);
        if (k <= 0)
            break;
        n += (unsigned)k;
    }
    for (unsigned i = 0; i < entries; i++)
        CHECK(got[i] == vals[i]);

    /* Mixed, with one failure in the middle that does not disturb the others. */
    uint8_t b[4];
    struct gmem_iov seg = { 0x60000, 4 };
    struct gmem_atomic_op load = { .kind = GMEM_ATOMIC_LOAD, .size = 8, .gpa = 0x60000 };
    CHECK_RC(gmem_ring_prep_readv(r, &seg, 1, b, 1), 0);
    CHECK_RC(gmem_ring_prep_read(r, 1ull << 40, b, 4, 2), 0);
    CHECK_RC(gmem_ring_prep_atomic(r, &load, 3), 0);
    CHECK_RC(gmem_ring_submit(r), 3);
    CHECK_RC(gmem_ring_reap(r, c, 3, 3), 3);
    CHECK(c[0].user_data == 1 && c[0].status == 0 && c[0].len == 4 && memcmp(b, &vals[0], 4) == 0);
    CHECK(c[1].user_data == 2 && c[1].status == -EFAULT);
    CHECK(c[2].user_data == 3 && c[2].status == 0 && c[2].value == vals[0]);

    /* The data area: an entry larger than all of it, and one that fits only once others are reaped. */
    uint8_t *big = calloc(1, data_size + 8);
    CHECK_RC(gmem_ring_prep_write(r, 0, big, (uint32_t)data_size + 1, 0), -EMSGSIZE);
    CHECK_RC(gmem_ring_read(r, 0, big, data_size + 1), -EMSGSIZE);
    CHECK_RC(gmem_ring_prep_read(r, 0, big, (uint32_t)data_size / 2 + 8, 0), 0);
    CHECK_RC(gmem_ring_prep_read(r, 0, big, (uint32_t)data_size / 2, 0), -EBUSY);
    CHECK_RC(gmem_ring_submit(r), 1);
    CHECK_RC(gmem_ring_reap(r, c, 1, 1), 1);
    CHECK_RC(gmem_ring_prep_read(r, 0, big, (uint32_t)data_size / 2, 0), 0); /* reclaimed */
    CHECK_RC(gmem_ring_submit(r), 1);
    CHECK_RC(gmem_ring_reap(r, c, 1, 1), 1);
    free(big);
}

struct worker {
    struct gmem_ring *r;
    uint64_t base;
    int ok;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    w->ok = 1;
    for (uint32_t i = 0; i < 2000 && w->ok; i++) {
        uint32_t v = i * 2654435761u, back = 0;
        w->ok = gmem_ring_write(w->r, w->base + 4 * (i % 512), &v, 4) == 4 &&
                gmem_ring_read(w->r, w->base + 4 * (i % 512), &back, 4) == 4 && back == v;
    }
    return NULL;
}

/* One ring per thread, no coordination between them (gmem_ring.h's threading rule). */
static void two_threads(struct gmem *g)
{
    struct worker w[2] = { { gmem_ring_open(g, 4, 4096), 0x80000, 0 }, { gmem_ring_open(g, 4, 4096), 0x90000, 0 } };
    CHECK(w[0].r && w[1].r);
    if (!w[0].r || !w[1].r)
        return;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(w[0].ok && w[1].ok);
    gmem_ring_close(w[1].r);
    gmem_ring_close(w[0].r);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void suite(const char *name, const char *poll_us)
{
    struct daemon d;
    const char *args[] = { "--size", "64M", "--max-rings", "4", "--ring-poll-us", poll_us, "--log-level", "warning",
                           NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    struct gmem_info i;
    gmem_info(g, &i);
    if (!(i.features & GMEM_FEATURE_RINGS)) {
        printf("SKIP rings: this gmemd does not grant RINGS\n");
        gmem_close(g);
        daemon_stop(&d);
        return;
    }
    setup_limits(g);
    struct gmem_ring *r = gmem_ring_open(g, 16, 64 << 10);
    CHECK(r != NULL);
    if (r) {
        one_call(g, r);
        batch(r, 16, 64 << 10);

        uint32_t v;
        double t0 = now();
        for (int k = 0; k < 2000; k++)
            gmem_ring_read(r, 0, &v, 4);
        double ring_us = (now() - t0) / 2000 * 1e6;
        t0 = now();
        for (int k = 0; k < 2000; k++)
            gmem_read(g, 0, &v, 4);
        printf("%s: 4-byte read %.1f us on the ring, %.1f us on the socket\n", name, ring_us,
               (now() - t0) / 2000 * 1e6);
    }
    two_threads(g);

    /* --max-rings 4: r plus three more, then -ENOSPC. */
    struct gmem_ring *more[3];
    for (int k = 0; k < 3; k++)
        CHECK((more[k] = gmem_ring_open(g, 1, 4096)) != NULL);
    errno = 0;
    CHECK(gmem_ring_open(g, 1, 4096) == NULL && errno == ENOSPC);
    for (int k = 0; k < 3; k++)
        gmem_ring_close(more[k]);

    /* A ring outliving its connection is dead, not dangling; closing it afterwards is still right. */
    gmem_close(g);
    CHECK_RC(gmem_ring_ping(r), -ECONNRESET);
    struct gmem_completion c;
    CHECK_RC(gmem_ring_reap(r, &c, 1, 1), -ECONNRESET);
    gmem_ring_close(r);
    daemon_stop(&d);
}

static void read_only(void)
{
    struct daemon d;
    char gid[32];
    snprintf(gid, sizeof gid, "%u", (unsigned)getgid());
    const char *args[] = { "--size", "16M", "--read-only-gid", gid, "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    struct gmem_info i;
    gmem_info(g, &i);
    struct gmem_ring *r = (i.features & GMEM_FEATURE_RINGS) ? gmem_ring_open(g, 4, 4096) : NULL;
    if (!(i.region_flags & GMEM_REGION_READ_ONLY) || !r) {
        printf("SKIP ring read-only: no read-only connection with rings\n");
    } else {
        char b[4] = { 0 };
        struct gmem_atomic_op store = { .kind = GMEM_ATOMIC_STORE, .size = 4, .gpa = 0, .value = 1 };
        CHECK_RC(gmem_ring_write(r, 0, b, 4), -EPERM);
        CHECK_RC(gmem_ring_atomic(r, &store, NULL), -EPERM);
        CHECK_RC(gmem_ring_read(r, 0, b, 4), 4);
    }
    gmem_ring_close(r);
    gmem_close(g);
    daemon_stop(&d);
}

int main(void)
{
    guard(60);
    suite("polling", "50");
    suite("doorbells", "0");
    read_only();
    return test_finish("test_ring");
}
