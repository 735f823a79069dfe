/*
 * test_limits.c - rules that need a daemon configured differently from the others: a read-only connection
 * (-EPERM, rule 5) and a small max_payload (what the library refuses before sending, and what the daemon does).
 */
#include <stdlib.h>
#include <unistd.h>

#include "gmem.h"
#include "harness.h"

/* gmemd --read-only-gid <our gid>: "peers in this group may only read, root included". */
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
    CHECK(g != NULL);
    struct gmem_info i;
    gmem_info(g, &i);
    if (!(i.region_flags & GMEM_REGION_READ_ONLY)) {
        printf("SKIP read-only: gmemd did not make this connection read-only (gid %s)\n", gid);
    } else {
        char buf[8] = { 0 };
        uint64_t h, old;
        struct gmem_iov seg = { 0x1000, 4 };
        struct gmem_atomic_op store = { .kind = GMEM_ATOMIC_STORE, .size = 4, .gpa = 0x1000, .value = 1 };
        struct gmem_atomic_op load = { .kind = GMEM_ATOMIC_LOAD, .size = 4, .gpa = 0x1000 };
        CHECK_RC(gmem_write(g, 0x1000, buf, 4), -EPERM);
        CHECK_RC(gmem_writev(g, &seg, 1, buf), -EPERM);
        CHECK_RC(gmem_set_attributes(g, 0, 0x1000, 0), -EPERM);
        CHECK_RC(gmem_discard(g, 0, 0x1000), -EPERM);
        CHECK_RC(gmem_atomic(g, &store, &old), -EPERM);
        CHECK_RC(gmem_atomic(g, &load, &old), 0);
        CHECK_RC(gmem_read(g, 0x1000, buf, 8), 8);
        CHECK_RC(gmem_readv(g, &seg, 1, buf), 4);
        CHECK_RC(gmem_gpc_activate(g, 0x1000, 8, &h), 0);
        CHECK_RC(gmem_gpc_read(g, h, 0, buf, 8), 0);
        CHECK_RC(gmem_gpc_write(g, h, 0, buf, 8), -EPERM);
        CHECK_RC(gmem_gpc_atomic(g, h, 0, &store, &old), -EPERM);
        CHECK_RC(gmem_gpc_atomic(g, h, 0, &load, &old), 0);
        /* Rule 5 comes before rule 7: a read-only write outside the region is still -EPERM. */
        CHECK_RC(gmem_write(g, 1ull << 40, buf, 4), -EPERM);
    }
    gmem_close(g);
    daemon_stop(&d);
}

/* --max-payload 4096, the protocol's floor. */
static void small_payload(void)
{
    struct daemon d;
    const char *args[] = { "--size", "16M", "--max-payload", "4096", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    struct gmem_info i;
    gmem_info(g, &i);
    CHECK(i.max_payload == 4096);
    uint8_t *buf = calloc(1, 8192);
    uint64_t h;
    struct gmem_page_state *ps = calloc(1025, sizeof *ps);

    CHECK_RC(gmem_write(g, 0, buf, 4080), 4080);
    CHECK_RC(gmem_write(g, 0, buf, 4081), -EMSGSIZE); /* refused here: the frame would be over the limit */
    CHECK_RC(gmem_read(g, 0, buf, 4096), 4096);
    CHECK_RC(gmem_read(g, 0, buf, 4097), -EMSGSIZE); /* the daemon's answer */
    CHECK_RC(gmem_echo(g, buf, 4096, buf), 4096);
    CHECK_RC(gmem_echo(g, buf, 4097, buf), -EMSGSIZE);
    CHECK_RC(gmem_page_state(g, 0, 1024, ps), 0);
    CHECK_RC(gmem_page_state(g, 0, 1025, ps), -EMSGSIZE);
    CHECK_RC(gmem_gpc_activate(g, 0x1000, 4096, &h), 0);
    CHECK_RC(gmem_gpc_write(g, h, 0, buf, 4080), 0);
    CHECK_RC(gmem_gpc_write(g, h, 0, buf, 4081), -EMSGSIZE);
    CHECK_RC(gmem_gpc_read(g, h, 0, buf, 4096), 0);

    /* READV: 8 + 16 * 255 = 4088 bytes of table fit; 256 segments do not. WRITEV counts its data too. */
    struct gmem_iov segs[256];
    for (int k = 0; k < 256; k++)
        segs[k] = (struct gmem_iov){ 0x2000 + (uint64_t)k, 1 };
    unsigned fit = i.max_segments < 255 ? i.max_segments : 255;
    CHECK_RC(gmem_readv(g, segs, fit, buf), fit);
    CHECK_RC(gmem_readv(g, segs, 256, buf), -EMSGSIZE);
    struct gmem_iov one = { 0x2000, 4096 - 8 - 16 };
    CHECK_RC(gmem_writev(g, &one, 1, buf), 4096 - 8 - 16);
    one.len++;
    CHECK_RC(gmem_writev(g, &one, 1, buf), -EMSGSIZE);
    struct gmem_iov two[2] = { { 0x2000, 2048 }, { 0x3000, 2049 } };
    CHECK_RC(gmem_readv(g, two, 2, buf), -EMSGSIZE); /* 4097 bytes to return: the daemon's rule 6 */
    CHECK_RC(gmem_ping(g), 0);                         /* and the connection is intact */

    uint64_t reads;
    CHECK_RC(gmem_stat(g, "reads", &reads), 0); /* STATS fits the floor, as the protocol promises */
    free(ps);
    free(buf);
    gmem_close(g);
    daemon_stop(&d);
}

int main(void)
{
    guard(60);
    read_only();
    small_payload();
    return test_finish("test_limits");
}
