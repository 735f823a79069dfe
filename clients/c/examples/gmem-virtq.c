/*
 * gmem-virtq - a device model's loop over a virtio-style split queue in guest memory.
 *
 *   gmem-virtq [--socket PATH] [BASE]
 *
 * Playing the driver first, it lays out a queue at BASE (default 0x100000) with gmem_write: a descriptor table,
 * an available ring with two descriptor chains, their buffers. Then, as the device, it
 *   1. reads the available index with an acquire LOAD (the driver's release store pairs with it),
 *   2. walks each chain's descriptors and gathers all its buffers with one READV,
 *   3. writes the used element, then publishes the used index with a release STORE, so a driver that
 *      acquire-loads the index sees the element.
 * The layout is virtio's split ring, little-endian; guest memory is a gmemd region, not a real VM here.
 */
#include <endian.h>
#include <errno.h>
#include <gmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QSIZE 8
#define DESC_F_NEXT 1

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* Offsets from BASE. */
#define DESC_TABLE 0x0000
#define AVAIL 0x1000 /* {u16 flags, u16 idx, u16 ring[QSIZE]} */
#define USED 0x2000  /* {u16 flags, u16 idx, {u32 id, u32 len} ring[QSIZE]} */
#define BUFFERS 0x3000

static int check(const char *what, long rc)
{
    if (rc < 0) {
        fprintf(stderr, "gmem-virtq: %s: %s\n", what, strerror((int)-rc));
        exit(1);
    }
    return (int)rc;
}

static void put_desc(struct gmem *g, uint64_t base, uint16_t i, uint64_t addr, uint32_t len, uint16_t next)
{
    struct desc d = { htole64(addr), htole32(len), htole16(next ? DESC_F_NEXT : 0), htole16(next) };
    check("write descriptor", gmem_write(g, base + DESC_TABLE + i * sizeof d, &d, sizeof d));
}

/* The driver's side: two chains, {0 -> 1 -> 2} and {3 -> 4}, then avail.idx = 2 with a release store. */
static void driver_setup(struct gmem *g, uint64_t base)
{
    const char *parts[] = { "hello, ", "device ", "model", "second ", "chain" };
    uint64_t at = base + BUFFERS;
    for (uint16_t i = 0; i < 5; i++) {
        uint32_t len = (uint32_t)strlen(parts[i]);
        check("write buffer", gmem_write(g, at, parts[i], len));
        put_desc(g, base, i, at, len, i == 0 || i == 1 || i == 3 ? (uint16_t)(i + 1) : 0);
        at += 0x100;
    }
    uint16_t ring[2] = { htole16(0), htole16(3) };
    check("write avail ring", gmem_write(g, base + AVAIL + 4, ring, sizeof ring));
    struct gmem_atomic_op publish = { .kind = GMEM_ATOMIC_STORE, .size = 2, .gpa = base + AVAIL + 2, .value = 2 };
    check("publish avail.idx", gmem_atomic(g, &publish, NULL));
}

static uint16_t device_poll(struct gmem *g, uint64_t base, uint16_t last_avail, uint16_t *used_idx)
{
    uint64_t avail_idx;
    struct gmem_atomic_op load = { .kind = GMEM_ATOMIC_LOAD, .size = 2, .gpa = base + AVAIL + 2 };
    check("load avail.idx", gmem_atomic(g, &load, &avail_idx));

    for (; last_avail != (uint16_t)avail_idx; last_avail++) {
        uint16_t head;
        check("read avail ring", gmem_read(g, base + AVAIL + 4 + 2 * (last_avail % QSIZE), &head, 2));
        head = le16toh(head);

        /* Walk the chain (bounded: a hostile driver could make it cycle), then gather it in one request. */
        struct gmem_iov segs[QSIZE];
        unsigned n = 0;
        uint32_t total = 0;
        for (uint16_t i = head; n < QSIZE; n++) {
            struct desc d;
            check("read descriptor", gmem_read(g, base + DESC_TABLE + (i % QSIZE) * sizeof d, &d, sizeof d));
            segs[n] = (struct gmem_iov){ le64toh(d.addr), le32toh(d.len) };
            total += segs[n].len;
            if (!(le16toh(d.flags) & DESC_F_NEXT)) {
                n++;
                break;
            }
            i = le16toh(d.next);
        }
        char *data = calloc(1, total + 1);
        check("readv chain", gmem_readv(g, segs, n, data));
        printf("chain %u: %u descriptors, %u bytes: \"%s\"\n", head, n, total, data);
        free(data);

        uint32_t elem[2] = { htole32(head), htole32(total) };
        check("write used element", gmem_write(g, base + USED + 4 + 8 * (*used_idx % QSIZE), elem, sizeof elem));
        (*used_idx)++;
        /* Release: the element above is visible before the index that announces it. */
        struct gmem_atomic_op publish = { .kind = GMEM_ATOMIC_STORE, .size = 2, .gpa = base + USED + 2,
                                          .value = *used_idx };
        check("publish used.idx", gmem_atomic(g, &publish, NULL));
    }
    return last_avail;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    uint64_t base = 0x100000;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--socket") == 0) {
        socket_path = argv[a + 1];
        a += 2;
    }
    if (a < argc)
        base = strtoull(argv[a++], NULL, 0);
    if (a != argc || base % 4096) {
        fprintf(stderr, "usage: gmem-virtq [--socket PATH] [BASE, page-aligned]\n");
        return 2;
    }
    struct gmem *g = gmem_connect(socket_path);
    if (!g) {
        fprintf(stderr, "gmem-virtq: connect: %s\n", strerror(errno));
        return 1;
    }
    uint8_t zero[0x3000] = { 0 };
    check("clear queue", gmem_write(g, base, zero, sizeof zero));
    driver_setup(g, base);

    uint16_t used_idx = 0;
    device_poll(g, base, 0, &used_idx);

    /* The driver's view: acquire-load used.idx, then read the elements it covers. */
    uint64_t seen;
    struct gmem_atomic_op load = { .kind = GMEM_ATOMIC_LOAD, .size = 2, .gpa = base + USED + 2 };
    check("load used.idx", gmem_atomic(g, &load, &seen));
    printf("used.idx = %llu\n", (unsigned long long)seen);
    gmem_close(g);
    return seen == 2 ? 0 : 1;
}
