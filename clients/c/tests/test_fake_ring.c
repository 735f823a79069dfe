/*
 * test_fake_ring.c - libgmem's rings against a scripted daemon that owns the shared memory, for what gmemd never
 * does: a header page that breaks the layout, a set-up reply without its descriptors, completions with a foreign
 * cookie, a wrong length or impossible indices (all -EPROTO, the ring dead, nothing read out of bounds), and the
 * partial-progress completions of READ and WRITEV. A responder thread plays the poller: it consumes entries and
 * writes completions as the current scenario says, ringing the completion doorbell when asked (10.5).
 */
#include <stdbool.h>
#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gmem_ring.h"
#include "harness.h"
#include "gmem_wire.h"

enum scenario { GOOD, BAD_MAGIC, NO_FDS, FOREIGN_COOKIE, WRONG_LEN, TAIL_JUMP, PARTIAL };

static enum scenario scenario;
static char sock_path[108];
static int listen_fd;
static volatile int ring_closes; /* RING_CLOSE requests seen */

/* The daemon's side of the one ring of a session. */
static struct {
    uint8_t *map;
    size_t size;
    uint32_t entries;
    uint64_t cq_off, data_off;
    int submit_fd, complete_fd;
    volatile int stop;
} ring;

static _Atomic uint32_t *word(size_t off)
{
    return (_Atomic uint32_t *)(ring.map + off);
}

static void send_reply(int fd, uint16_t opcode, uint32_t id, int32_t status, const void *p, size_t len, int *fds,
                       int nfds)
{
    uint8_t buf[16 + 64];
    struct gmem_header h = { htole32((uint32_t)(16 + len)), htole16(opcode), htole16(GMEM_FLAG_REPLY), htole32(id),
                             (int32_t)htole32((uint32_t)status) };
    memcpy(buf, &h, 16);
    if (len)
        memcpy(buf + 16, p, len);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(3 * sizeof(int))];
    } control = { 0 };
    struct iovec iov = { buf, 16 + len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0)
        perror("fake daemon: sendmsg");
}

static void ring_setup(int fd, uint32_t id, const struct gmem_ring_setup_request *req)
{
    uint32_t entries = le32toh(req->entries);
    uint64_t data_size = le64toh(req->data_size);
    ring.entries = entries;
    ring.cq_off = 4096 + ((entries * 64 + 4095) & ~4095u);
    ring.data_off = ring.cq_off + ((entries * 32 + 4095) & ~4095u);
    ring.size = ring.data_off + data_size;
    int memfd = memfd_create("fake-ring", MFD_CLOEXEC);
    if (ftruncate(memfd, (off_t)ring.size) < 0)
        perror("ftruncate");
    ring.map = mmap(NULL, ring.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    struct gmem_ring_header h = {
        .magic = htole32(scenario == BAD_MAGIC ? 0x12345678 : GMEM_RING_MAGIC),
        .version = htole32(1), .entries = htole32(entries), .sqe_size = htole32(64), .cqe_size = htole32(32),
        .ring_id = htole32(7), .sq_offset = htole64(4096), .cq_offset = htole64(ring.cq_off),
        .data_offset = htole64(ring.data_off), .data_size = htole64(data_size),
    };
    memcpy(ring.map, &h, sizeof h);
    ring.submit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ring.complete_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct gmem_ring_setup_reply rep = { htole32(7), req->entries, req->data_size, htole64(ring.size) };
    int fds[3] = { memfd, ring.submit_fd, ring.complete_fd };
    send_reply(fd, GMEM_OP_RING_SETUP, id, 0, &rep, sizeof rep, fds, scenario == NO_FDS ? 0 : 3);
    close(memfd);
}

/* Consumes SQ entries and completes them as the scenario says. */
static void *responder(void *arg)
{
    (void)arg;
    uint32_t head = 0, tail = 0;
    while (!ring.stop) {
        if (atomic_load(word(64)) == head) {
            usleep(200);
            continue;
        }
        struct gmem_ring_sqe e;
        memcpy(&e, ring.map + 4096 + (head & (ring.entries - 1)) * 64, sizeof e);
        head++;
        atomic_store(word(128), head);
        struct gmem_ring_cqe c = { .cookie = e.cookie };
        uint16_t op = le16toh(e.opcode);
        uint32_t len = le32toh(e.len);
        if (op == GMEM_OP_READ) {
            memset(ring.map + ring.data_off + le64toh(e.data), 0xab, len);
            c.len = htole32(len);
        }
        switch (scenario) {
        case FOREIGN_COOKIE:
            c.cookie = htole64(999);
            break;
        case WRONG_LEN:
            c.len = htole32(len - 1);
            break;
        case PARTIAL:
            c.len = 0;
            c.value = htole64(4);
            c.status = (int32_t)htole32((uint32_t)(op == GMEM_OP_READ ? -EIO : -ENOMEM));
            c.segment = htole32(op == GMEM_OP_WRITEV ? 1 : 0);
            break;
        default:
            break;
        }
        memcpy(ring.map + ring.cq_off + (tail & (ring.entries - 1)) * 32, &c, sizeof c);
        tail += scenario == TAIL_JUMP ? 100 : 1;
        atomic_store(word(192), tail);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_exchange(word(384), 0) & GMEM_RING_WANT_WAKEUP) {
            uint64_t one = 1;
            (void)!write(ring.complete_fd, &one, sizeof one);
        }
    }
    return NULL;
}

/* One connection: HELLO, then RING_SETUP, RING_CLOSE and PING as they come. */
static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t t;
        bool responding = false;
        uint8_t req[256];
        for (;;) {
            struct gmem_header h;
            if (recv(fd, &h, 16, MSG_WAITALL) != 16)
                break;
            uint32_t len = le32toh(h.length) - 16, id = le32toh(h.id);
            if (len > sizeof req || (len && recv(fd, req, len, MSG_WAITALL) != (ssize_t)len))
                break;
            uint16_t op = le16toh(h.opcode);
            if (op == GMEM_OP_HELLO) {
                struct gmem_hello_reply r = { .version = htole32(1), .features = htole32(7),
                                              .page_size = htole32(4096), .folio_size = htole32(4096),
                                              .region_size = htole64(1 << 24), .max_payload = htole32(1 << 20),
                                              .max_gpcs = htole32(8), .max_segments = htole32(64) };
                send_reply(fd, op, id, 0, &r, sizeof r, NULL, 0);
            } else if (op == GMEM_OP_RING_SETUP) {
                ring_setup(fd, id, (const void *)req);
                ring.stop = 0;
                responding = pthread_create(&t, NULL, responder, NULL) == 0;
            } else {
                ring_closes += op == GMEM_OP_RING_CLOSE;
                send_reply(fd, op, id, 0, NULL, 0, NULL, 0);
            }
        }
        if (responding) {
            ring.stop = 1;
            pthread_join(t, NULL);
        }
        if (ring.map) {
            munmap(ring.map, ring.size);
            close(ring.submit_fd);
            close(ring.complete_fd);
            ring.map = NULL;
        }
        close(fd);
    }
}

static struct gmem *session(enum scenario s)
{
    scenario = s;
    struct gmem *g = gmem_connect(sock_path);
    CHECK(g != NULL);
    return g;
}

int main(void)
{
    guard(30);
    char dir[] = "/tmp/gmem-fake-ring-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    snprintf(sock_path, sizeof sock_path, "%s/fake.sock", dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(listen_fd, 4) < 0)
        return 2;
    pthread_t t;
    pthread_create(&t, NULL, server, NULL);

    uint8_t buf[64];
    struct gmem_completion c;
    struct gmem *g = session(GOOD); /* the fake itself works */
    struct gmem_ring *r = gmem_ring_open(g, 4, 4096);
    CHECK(r != NULL);
    CHECK_RC(gmem_ring_read(r, 0, buf, 16), 16);
    CHECK(buf[0] == 0xab && buf[15] == 0xab);
    CHECK_RC(gmem_ring_ping(r), 0);
    gmem_ring_close(r);
    CHECK(ring_closes == 1);
    gmem_close(g);

    g = session(BAD_MAGIC);
    errno = 0;
    CHECK(gmem_ring_open(g, 4, 4096) == NULL && errno == EPROTO);
    CHECK(ring_closes == 2);    /* the daemon's half is closed again */
    CHECK_RC(gmem_ping(g), 0); /* and the connection is fine */
    gmem_close(g);

    g = session(NO_FDS);
    errno = 0;
    CHECK(gmem_ring_open(g, 4, 4096) == NULL && errno == EPROTO);
    gmem_close(g);

    const enum scenario broken[] = { FOREIGN_COOKIE, WRONG_LEN, TAIL_JUMP };
    for (unsigned k = 0; k < 3; k++) {
        g = session(broken[k]);
        r = gmem_ring_open(g, 4, 4096);
        CHECK(r != NULL);
        if (r) {
            CHECK_RC(gmem_ring_read(r, 0, buf, 16), -EPROTO);
            CHECK_RC(gmem_ring_ping(r), -EPROTO); /* the ring is dead */
            CHECK_RC(gmem_ring_reap(r, &c, 1, 0), -EPROTO);
            CHECK_RC(gmem_ping(g), 0);            /* the connection is not */
        }
        gmem_ring_close(r);
        gmem_close(g);
    }

    g = session(PARTIAL);
    r = gmem_ring_open(g, 4, 4096);
    CHECK(r != NULL);
    if (r) {
        struct gmem_progress p;
        CHECK_RC(gmem_ring_read(r, 0, buf, 16), -EIO);
        CHECK_RC(gmem_ring_last_progress(r, &p), 0);
        CHECK(p.bytes_completed == 4 && p.segment == 0 && p.segment_bytes == 4);
        struct gmem_iov segs[2] = { { 0, 4 }, { 0x8000, 4 } };
        CHECK_RC(gmem_ring_writev(r, segs, 2, "abcdefgh"), -ENOMEM);
        CHECK_RC(gmem_ring_last_progress(r, &p), 0);
        CHECK(p.bytes_completed == 4 && p.segment == 1 && p.segment_bytes == 0);
        CHECK_RC(gmem_ring_prep_write(r, 0, "abcdefgh", 8, 5), 0);
        CHECK_RC(gmem_ring_submit(r), 1);
        CHECK_RC(gmem_ring_reap(r, &c, 1, 1), 1);
        CHECK(c.user_data == 5 && c.status == -ENOMEM && c.progress.bytes_completed == 4);
    }
    gmem_ring_close(r);
    gmem_close(g);

    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(t, NULL);
    unlink(sock_path);
    rmdir(dir);
    return test_finish("test_fake_ring");
}
