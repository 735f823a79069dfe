/*
 * test_api.c - every public function of libgmem against a real gmemd: results, a sample of each error rule,
 * the default socket path, and the library's own limits. Events have test_events.c, read-only connections and
 * a small max_payload test_limits.c.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gmem.h"
#include "harness.h"

static void connecting(const struct daemon *d)
{
    struct gmem *g = gmem_connect(d->sock);
    CHECK(g != NULL);
    gmem_close(g);

    /* NULL resolves like gmemctl: $GMEMD_SOCKET first... */
    setenv("GMEMD_SOCKET", d->sock, 1);
    setenv("XDG_RUNTIME_DIR", "/nonexistent", 1);
    g = gmem_connect(NULL);
    CHECK(g != NULL);
    gmem_close(g);
    /* ...then $XDG_RUNTIME_DIR/gmemd.sock; an empty variable counts as unset. */
    setenv("GMEMD_SOCKET", "", 1);
    setenv("XDG_RUNTIME_DIR", d->dir, 1);
    g = gmem_connect(NULL);
    CHECK(g != NULL);
    gmem_close(g);
    unsetenv("GMEMD_SOCKET");
    unsetenv("XDG_RUNTIME_DIR");

    char path[256];
    snprintf(path, sizeof path, "%s/absent.sock", d->dir);
    errno = 0;
    CHECK(gmem_connect(path) == NULL && errno == ENOENT);
    memset(path, 'x', sizeof path - 1);
    path[sizeof path - 1] = 0;
    errno = 0;
    CHECK(gmem_connect(path) == NULL && errno == ENAMETOOLONG);
    gmem_close(NULL); /* harmless */
}

static void info_and_ping(struct gmem *g)
{
    struct gmem_info i;
    CHECK_RC(gmem_info(g, &i), 0);
    CHECK(i.version == 1);
    CHECK((i.features & (GMEM_FEATURE_EVENTS | GMEM_FEATURE_DEVICE_OPS)) == (GMEM_FEATURE_EVENTS | GMEM_FEATURE_DEVICE_OPS));
    CHECK(i.page_size == 4096);
    CHECK(i.region_size == 64u << 20);
    CHECK(i.max_payload == 1u << 20);
    CHECK(i.max_segments >= 64);
    CHECK(i.folio_size % i.page_size == 0);
    CHECK(!(i.region_flags & GMEM_REGION_READ_ONLY));

    CHECK_RC(gmem_ping(g), 0);
    char echo[8] = { 0 };
    CHECK_RC(gmem_echo(g, "gmemd", 5, echo), 5);
    CHECK(memcmp(echo, "gmemd", 5) == 0);
    static char big[(1u << 20) + 1];
    CHECK_RC(gmem_echo(g, big, sizeof big - 1, big), sizeof big - 1); /* a whole max_payload */
    CHECK_RC(gmem_echo(g, big, sizeof big, big), -EMSGSIZE);           /* one more cannot be framed */
    CHECK_RC(gmem_ping(g), 0);                                         /* and nothing was sent */
}

static void reads_and_writes(struct gmem *g)
{
    uint8_t buf[64], back[64];
    struct gmem_progress p;
    for (unsigned i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    CHECK_RC(gmem_write(g, 0x10000 - 32, buf, sizeof buf), sizeof buf); /* crosses a page */
    CHECK_RC(gmem_read(g, 0x10000 - 32, back, sizeof back), sizeof back);
    CHECK(memcmp(buf, back, sizeof buf) == 0);
    CHECK_RC(gmem_read(g, 0, NULL, 0), 0);
    CHECK_RC(gmem_write(g, 0, NULL, 0), 0);

    CHECK_RC(gmem_read(g, 64u << 20, back, 1), -EFAULT);
    CHECK_RC(gmem_last_progress(g, &p), 0);
    CHECK(p.bytes_completed == 0 && p.segment == 0 && p.segment_bytes == 0); /* nothing was transferred */
    CHECK_RC(gmem_write(g, (64u << 20) - 1, buf, 2), -EFAULT);
    CHECK_RC(gmem_read(g, UINT64_MAX - 3, back, 8), -EFAULT);
    CHECK_RC(gmem_read(g, 0, NULL, 4), -EINVAL);
    CHECK_RC(gmem_read(g, 0, back, (size_t)UINT32_MAX + 1), -EMSGSIZE);

    uint8_t *big = calloc(1, (1u << 20) + 1);
    CHECK_RC(gmem_read(g, 0, big, 1u << 20), 1u << 20);
    CHECK_RC(gmem_read(g, 0, big, (1u << 20) + 1), -EMSGSIZE); /* the daemon's rule 6 */
    CHECK_RC(gmem_write(g, 0x200000, big, (1u << 20) - 16), (1u << 20) - 16);
    CHECK_RC(gmem_write(g, 0x200000, big, (1u << 20) - 15), -EMSGSIZE); /* refused before sending */
    free(big);
}

static void vectors(struct gmem *g)
{
    struct gmem_info i;
    gmem_info(g, &i);
    struct gmem_iov w[3] = { { 0x20000, 3 }, { 0x30ffe, 4 }, { 0x20001, 1 } }; /* crosses a page; overlaps */
    CHECK_RC(gmem_writev(g, w, 3, "abcDEFGz"), 8);
    char out[16] = { 0 };
    struct gmem_iov r[3] = { { 0x20000, 3 }, { 0x30ffe, 4 }, { 0x20000, 0 } };
    CHECK_RC(gmem_readv(g, r, 3, out), 7);
    CHECK(memcmp(out, "azcDEFG", 7) == 0); /* later segments win */

    struct gmem_progress p;
    struct gmem_iov bad[2] = { { 0x20000, 1 }, { 64u << 20, 1 } };
    CHECK_RC(gmem_readv(g, bad, 2, out), -EFAULT);
    CHECK_RC(gmem_writev(g, bad, 2, "xy"), -EFAULT);
    CHECK_RC(gmem_readv(g, r, 1, out), 3);
    CHECK(memcmp(out, "azc", 3) == 0); /* -EFAULT wrote nothing */
    CHECK_RC(gmem_last_progress(g, &p), 0);
    CHECK(p.bytes_completed == 0);
    CHECK_RC(gmem_readv(g, r, 0, out), -EINVAL);
    CHECK_RC(gmem_writev(g, NULL, 0, NULL), -EINVAL);
    CHECK_RC(gmem_readv(g, NULL, 2, out), -EINVAL);

    /* max_segments is the daemon's limit; beyond it -EINVAL, and a table beyond a frame -EMSGSIZE. */
    unsigned n = i.max_segments + 1;
    struct gmem_iov *many = calloc((1u << 16) + 1, sizeof *many);
    for (unsigned k = 0; k < (1u << 16) + 1; k++)
        many[k] = (struct gmem_iov){ 0x1000, 1 };
    char *sink = calloc(1, i.max_segments);
    CHECK_RC(gmem_readv(g, many, i.max_segments, sink), i.max_segments);
    free(sink);
    CHECK_RC(gmem_readv(g, many, n, out), -EINVAL);
    CHECK_RC(gmem_readv(g, many, (1u << 16) + 1, out), -EMSGSIZE); /* 8 + 16 * 65537 > max_payload */
    free(many);
}

static void gpcs(struct gmem *g)
{
    uint64_t h = 0, h2 = 0, old = 0;
    char buf[16];
    CHECK_RC(gmem_gpc_activate(g, 0x40000, 4096, &h), 0);
    CHECK(h != 0);
    CHECK_RC(gmem_gpc_activate(g, 0x40010, 16, &h2), 0);
    CHECK(h2 != h);
    CHECK_RC(gmem_gpc_write(g, h, 16, "0123456789abcdef", 16), 0);
    CHECK_RC(gmem_gpc_read(g, h2, 0, buf, 16), 0); /* two GPCs over the same bytes */
    CHECK(memcmp(buf, "0123456789abcdef", 16) == 0);
    CHECK_RC(gmem_gpc_read(g, h2, 8, buf, 9), -EINVAL);
    CHECK_RC(gmem_gpc_read(g, h2, 0, NULL, 1), -EINVAL);
    CHECK_RC(gmem_gpc_write(g, h, 0, buf, (1u << 20) - 15), -EMSGSIZE);

    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_FETCH_ADD, .size = 8, .value = 5 };
    CHECK_RC(gmem_gpc_write(g, h, 0, "\x01\0\0\0\0\0\0\0", 8), 0);
    CHECK_RC(gmem_gpc_atomic(g, h, 0, &op, &old), 0);
    CHECK(old == 1);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_LOAD, .size = 8 };
    CHECK_RC(gmem_gpc_atomic(g, h, 0, &op, &old), 0);
    CHECK(old == 6);
    CHECK_RC(gmem_gpc_atomic(g, h, 4092, &op, &old), -EINVAL); /* beyond the window */
    CHECK_RC(gmem_gpc_atomic(g, 0xdead, 0, &op, &old), -ENOENT);
    op.size = 256; /* does not fit the wire's u8: refused before it could be truncated to 0 */
    CHECK_RC(gmem_gpc_atomic(g, h, 0, &op, &old), -EINVAL);

    CHECK_RC(gmem_gpc_refresh(g, h2, 0x41000, 8), 0);
    CHECK_RC(gmem_gpc_read(g, h2, 0, buf, 8), 0);
    CHECK_RC(gmem_gpc_deactivate(g, h2), 0);
    CHECK_RC(gmem_gpc_deactivate(g, h2), -ENOENT);
    CHECK_RC(gmem_gpc_refresh(g, h2, 0x41000, 8), -ENOENT);
    CHECK_RC(gmem_gpc_refresh(g, h2, 0x41ffc, 8), -EINVAL); /* the window is checked before the handle */

    /* -ESTALE after a conversion, until a refresh. */
    CHECK_RC(gmem_set_attributes(g, 0x40000, 4096, 0), 0);
    CHECK_RC(gmem_gpc_read(g, h, 0, buf, 1), -ESTALE);
    CHECK_RC(gmem_gpc_write(g, h, 0, buf, 1), -ESTALE);
    CHECK_RC(gmem_gpc_refresh(g, h, 0x40000, 4096), 0);
    CHECK_RC(gmem_gpc_read(g, h, 16, buf, 4), 0);
    CHECK(memcmp(buf, "0123", 4) == 0); /* a conversion keeps the contents */
    CHECK_RC(gmem_gpc_deactivate(g, h), 0);
    struct gmem_event ev;
    while (gmem_next_event(g, &ev) == 0) {
    }
}

static void region(struct gmem *g)
{
    struct gmem_page_state ps[3];
    CHECK_RC(gmem_write(g, 0x50000, "data", 4), 4);
    CHECK_RC(gmem_set_attributes(g, 0x50000, 0x2000, 0), 0); /* shared */
    CHECK_RC(gmem_page_state(g, 0x50000, 3, ps), 0);
    CHECK(ps[0].state == GMEM_PAGE_ACCESSIBLE && ps[1].state == GMEM_PAGE_ACCESSIBLE);
    CHECK(ps[2].state & GMEM_PAGE_PRIVATE); /* pages start private */
    CHECK(ps[0].refcount == 0);
    CHECK_RC(gmem_set_attributes(g, 0x50000, 0x2000, GMEM_ATTRIBUTE_PRIVATE), 0);
    CHECK_RC(gmem_page_state(g, 0x50000, 1, ps), 0);
    CHECK(ps[0].state & GMEM_PAGE_PRIVATE);
    CHECK_RC(gmem_set_attributes(g, 0x50000, 0x1000, 1), -EINVAL);
    CHECK_RC(gmem_set_attributes(g, 0x50001, 0x1000, 0), -EINVAL);
    CHECK_RC(gmem_set_attributes(g, 0x50000, 0, 0), -EINVAL);
    CHECK_RC(gmem_set_attributes(g, 64u << 20, 0x1000, 0), -EFAULT);

    char buf[4];
    CHECK_RC(gmem_discard(g, 0x50000, 0x1000), 0);
    CHECK_RC(gmem_read(g, 0x50000, buf, 4), 4);
    CHECK(memcmp(buf, "\0\0\0\0", 4) == 0);
    CHECK_RC(gmem_discard(g, 0x50000, 0x800), -EINVAL);
    CHECK_RC(gmem_discard(g, (64u << 20) - 0x1000, 0x2000), -EFAULT);

    CHECK_RC(gmem_page_state(g, 0x50000, 0, NULL), 0);
    CHECK_RC(gmem_page_state(g, 0x50000, 1, NULL), -EINVAL);
    CHECK_RC(gmem_page_state(g, 0x50008, 1, ps), -EINVAL);
    CHECK_RC(gmem_page_state(g, 0, (1u << 18) + 1, ps), -EMSGSIZE); /* no buffer needed: nothing comes back */
    CHECK_RC(gmem_page_state(g, (64u << 20) - 0x1000, 2, ps), -EFAULT);

    struct gmem_stat st[64];
    int n = gmem_stats(g, st, 64);
    CHECK(n >= 14);
    uint64_t reads = 0, active = 99;
    CHECK_RC(gmem_stat(g, "reads", &reads), 0);
    CHECK(reads > 0);
    CHECK_RC(gmem_stat(g, "gpc_active", &active), 0);
    CHECK(active == 0);
    CHECK_RC(gmem_stat(g, "no_such_counter", &reads), -ENOENT);
    CHECK_RC(gmem_stats(g, NULL, 0), n);
    bool named = false;
    for (int k = 0; k < n && k < 64; k++)
        named |= strcmp(st[k].name, "bytes_written") == 0;
    CHECK(named);
}

static void atomics(struct gmem *g)
{
    uint64_t old = 99;
    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_STORE, .size = 4, .gpa = 0x60000, .value = 10 };
    CHECK_RC(gmem_atomic(g, &op, &old), 0);
    CHECK(old == 0);
    const struct {
        uint32_t kind;
        uint64_t value, expected, old, after;
    } steps[] = {
        { GMEM_ATOMIC_FETCH_ADD, 5, 0, 10, 15 },      { GMEM_ATOMIC_FETCH_OR, 0x100, 0, 15, 0x10f },
        { GMEM_ATOMIC_FETCH_AND, 0xff, 0, 0x10f, 15 }, { GMEM_ATOMIC_XCHG, 7, 0, 15, 7 },
        { GMEM_ATOMIC_CMPXCHG, 9, 8, 7, 7 },           { GMEM_ATOMIC_CMPXCHG, 9, 7, 7, 9 },
        { GMEM_ATOMIC_FETCH_ADD, 0xffffffff, 0, 9, 8 }, /* wraps at 4 bytes */
    };
    for (unsigned k = 0; k < sizeof steps / sizeof *steps; k++) {
        op = (struct gmem_atomic_op){ steps[k].kind, 4, 0x60000, steps[k].value, steps[k].expected };
        CHECK_RC(gmem_atomic(g, &op, &old), 0);
        CHECK(old == steps[k].old);
        op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_LOAD, .size = 4, .gpa = 0x60000 };
        CHECK_RC(gmem_atomic(g, &op, &old), 0);
        CHECK(old == steps[k].after);
    }
    CHECK_RC(gmem_atomic(g, &op, NULL), 0);
    op.gpa = 0x60002;
    CHECK_RC(gmem_atomic(g, &op, &old), -EINVAL);
    op.gpa = 64u << 20;
    CHECK_RC(gmem_atomic(g, &op, &old), -EFAULT);
    op = (struct gmem_atomic_op){ .kind = 7, .size = 4, .gpa = 0x60000 };
    CHECK_RC(gmem_atomic(g, &op, &old), -EINVAL);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_STORE, .size = 2, .gpa = 0x60000, .value = 0x10000 };
    CHECK_RC(gmem_atomic(g, &op, &old), -EINVAL);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_LOAD, .size = 257, .gpa = 0x60000 };
    CHECK_RC(gmem_atomic(g, &op, &old), -EINVAL);
    CHECK_RC(gmem_atomic(g, NULL, &old), -EINVAL);
}

/* Closing a connection deactivates its GPCs (PROTOCOL.md 2). */
static void close_releases(const struct daemon *d, struct gmem *g)
{
    struct gmem *other = gmem_connect(d->sock);
    uint64_t h, active = 0;
    CHECK_RC(gmem_gpc_activate(other, 0x70000, 8, &h), 0);
    CHECK_RC(gmem_stat(g, "gpc_active", &active), 0);
    CHECK(active == 1);
    gmem_close(other);
    for (int tries = 0; tries < 100 && active; tries++) {
        usleep(10000); /* the daemon notices the close asynchronously */
        CHECK_RC(gmem_stat(g, "gpc_active", &active), 0);
    }
    CHECK(active == 0);
}

/* MAP_REGION: refused by default; a peer named by --allow-map-uid gets the memfd, which holds what gmemd serves. */
static void map_region(struct gmem *unnamed)
{
    struct gmem_info i;
    int fd = -1;
    uint64_t size = 0;
    CHECK_RC(gmem_info(unnamed, &i), 0);
    CHECK(!(i.region_flags & GMEM_REGION_MAY_MAP));
    CHECK_RC(gmem_map_region(unnamed, &fd, &size), -EPERM);
    CHECK(fd == -1);
    CHECK_RC(gmem_map_region(unnamed, NULL, &size), -EINVAL);

    char uid[16];
    snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
    struct daemon d;
    const char *args[] = { "--size", "16M", "--log-level", "warning", "--allow-map-uid", uid, NULL };
    if (daemon_start(&d, args) < 0) {
        CHECK(!"the daemon with --allow-map-uid started");
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    if (g) {
        CHECK_RC(gmem_info(g, &i), 0);
        CHECK(i.region_flags & GMEM_REGION_MAY_MAP);
        CHECK_RC(gmem_write(g, 0x7000, "via gmemd", 9), 9);
        CHECK_RC(gmem_map_region(g, &fd, &size), 0);
        CHECK(size == 16u << 20);
        struct stat st;
        CHECK(fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == size);
        CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
        uint8_t *m = fd >= 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
        CHECK(m != MAP_FAILED);
        if (m != MAP_FAILED) {
            CHECK(memcmp(m + 0x7000, "via gmemd", 9) == 0);
            memcpy(m + 0x8000, "via the map", 11);
            char back[11];
            CHECK_RC(gmem_read(g, 0x8000, back, sizeof back), 11);
            CHECK(memcmp(back, "via the map", 11) == 0);
            munmap(m, size);
        }
        if (fd >= 0)
            close(fd);
        gmem_close(g);
    }
    daemon_stop(&d);
}

int main(void)
{
    guard(60);
    struct daemon d;
    const char *args[] = { "--size", "64M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0)
        return 1;
    connecting(&d);
    struct gmem *g = gmem_connect(d.sock);
    if (!g) {
        fprintf(stderr, "gmem_connect: %s\n", strerror(errno));
        daemon_stop(&d);
        return 1;
    }
    info_and_ping(g);
    reads_and_writes(g);
    vectors(g);
    gpcs(g);
    region(g);
    atomics(g);
    map_region(g);
    close_releases(&d, g);
    gmem_close(g);
    daemon_stop(&d);
    return test_finish("test_api");
}
