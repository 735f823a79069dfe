/*
 * test_fake.c - libgmem against a scripted server in a thread, for what a healthy gmemd never sends:
 *
 *   - the golden frames (proto/vectors/frames.txt): each API call must send the request.<x> bytes exactly (the id
 *     aside) and decode reply.<x> as documented, including the partial-progress replies of WRITE and WRITEV;
 *   - protocol violations (a reply with the wrong id, a short payload, an error payload where none is allowed, a
 *     length over max_payload), which must give -EPROTO and a dead connection;
 *   - descriptors attached to a reply that asked for none (closed, not leaked), HELLO refusals, an unknown event
 *     with a payload, an event split across reads of gmem_next_event(), and more events than the queue keeps.
 *
 * Usage: test_fake FRAMES_FILE.
 */
#include <dirent.h>
#include <endian.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gmem.h"
#include "gmem_wire.h" /* after gmem.h: the shared constants must be spelled identically */
#include "harness.h"

/* ---- Golden frames ---------------------------------------------------------------------------------------- */

struct frame {
    char name[64];
    uint8_t bytes[512];
    size_t len;
};
static struct frame golden[128];
static int ngolden;

static int load_frames(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[1024];
    struct frame *cur = NULL;
    while (fgets(line, sizeof line, f)) {
        char *s = line;
        if (*s == '#' || *s == '\n')
            continue;
        if (*s != ' ' && *s != '\t') {
            char *colon = strchr(s, ':');
            if (!colon || ngolden == 128)
                return -1;
            cur = &golden[ngolden++];
            *colon = 0;
            if (strlen(s) >= sizeof cur->name)
                return -1;
            memcpy(cur->name, s, strlen(s) + 1);
            cur->len = 0;
            s = colon + 1;
        }
        unsigned b;
        int used;
        while (cur && sscanf(s, " %2x%n", &b, &used) == 1 && cur->len < sizeof cur->bytes) {
            cur->bytes[cur->len++] = (uint8_t)b;
            s += used;
        }
    }
    fclose(f);
    return ngolden;
}

static const struct frame *frame(const char *name)
{
    for (int i = 0; i < ngolden; i++)
        if (strcmp(golden[i].name, name) == 0)
            return &golden[i];
    fprintf(stderr, "no frame %s in the golden file\n", name);
    abort();
}

/* ---- The scripted server ---------------------------------------------------------------------------------- */

typedef void custom_fn(int fd, uint32_t id);

struct step {
    const char *expect; /* golden request the client must send (id aside), or NULL for any */
    const char *event;  /* golden event sent before the reply, or NULL */
    const char *reply;  /* golden reply, its id replaced by the request's */
    custom_fn *custom;  /* or a reply of its own */
};

static const struct step *sessions[16];
static char sock_path[108];
static int listen_fd;
static sem_t go; /* the client lets a custom step continue */

static void send_bytes(int fd, const void *p, size_t len)
{
    if (send(fd, p, len, MSG_NOSIGNAL) != (ssize_t)len)
        fprintf(stderr, "fake server: short send\n");
}

static void send_frame(int fd, uint16_t opcode, uint16_t flags, uint32_t id, int32_t status, const void *payload,
                       size_t len)
{
    uint8_t h[16];
    uint32_t l = htole32((uint32_t)(16 + len)), i = htole32(id), st = htole32((uint32_t)status);
    uint16_t o = htole16(opcode), fl = htole16(flags);
    memcpy(h, &l, 4);
    memcpy(h + 4, &o, 2);
    memcpy(h + 6, &fl, 2);
    memcpy(h + 8, &i, 4);
    memcpy(h + 12, &st, 4);
    send_bytes(fd, h, 16);
    if (len)
        send_bytes(fd, payload, len);
}

static bool recv_all(int fd, uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void *server(void *arg)
{
    (void)arg;
    static uint8_t req[(1u << 20) + 16];
    for (int s = 0; sessions[s]; s++) {
        int fd = accept(listen_fd, NULL, NULL);
        for (const struct step *st = sessions[s]; st->expect || st->reply || st->custom; st++) {
            uint32_t len;
            if (!recv_all(fd, req, 16))
                break;
            memcpy(&len, req, 4);
            len = le32toh(len);
            if (len < 16 || len > sizeof req || !recv_all(fd, req + 16, len - 16))
                break;
            uint32_t id;
            memcpy(&id, req + 8, 4);
            if (st->expect) {
                const struct frame *want = frame(st->expect);
                uint8_t got[512];
                memcpy(got, req, len < sizeof got ? len : sizeof got);
                memcpy(got + 8, want->bytes + 8, 4); /* ids are the client's to choose */
                if (strncmp(st->expect, "request.hello", 13) == 0) {
                    /* The golden HELLO asks for EVENTS|DEVICE_OPS; libgmem also asks for RINGS. */
                    uint32_t features;
                    memcpy(&features, got + 20, 4);
                    CHECK(le32toh(features) == (GMEM_FEATURE_EVENTS | GMEM_FEATURE_DEVICE_OPS | GMEM_FEATURE_RINGS));
                    memcpy(got + 20, want->bytes + 20, 4);
                }
                test_checks++;
                if (len != want->len || memcmp(got, want->bytes, len) != 0) {
                    test_failures++;
                    fprintf(stderr, "fake server: the request is not %s (%u bytes sent, %zu expected)\n",
                            st->expect, len, want->len);
                }
            }
            if (st->event) {
                const struct frame *e = frame(st->event);
                send_bytes(fd, e->bytes, e->len);
            }
            if (st->reply) {
                struct frame r = *frame(st->reply);
                memcpy(r.bytes + 8, &id, 4);
                send_bytes(fd, r.bytes, r.len);
            } else if (st->custom) {
                st->custom(fd, le32toh(id));
            }
        }
        while (recv(fd, req, sizeof req, 0) > 0) {
        } /* until the client closes */
        close(fd);
    }
    return NULL;
}

/* ---- Custom replies ------------------------------------------------------------------------------------- */

static const uint8_t *hello_payload(void)
{
    return frame("reply.hello_device_ops")->bytes + 16;
}

static void hello_ok(int fd, uint32_t id)
{
    send_frame(fd, GMEM_OP_HELLO, 1, id, 0, hello_payload(), 48);
}

static void hello_version(int fd, uint32_t id)
{
    uint32_t one = htole32(1);
    send_frame(fd, GMEM_OP_HELLO, 1, id, -EPROTONOSUPPORT, &one, 4);
}

static void hello_eacces(int fd, uint32_t id)
{
    send_frame(fd, GMEM_OP_HELLO, 1, id, -EACCES, NULL, 0);
}

static void ping_wrong_id(int fd, uint32_t id)
{
    send_frame(fd, GMEM_OP_PING, GMEM_FLAG_REPLY, id + 1, 0, NULL, 0);
}

static void read_short(int fd, uint32_t id)
{
    send_frame(fd, 3, 1, id, 0, "abc", 3); /* 8 were asked for */
}

static void gpc_read_error_payload(int fd, uint32_t id)
{
    uint64_t junk = 0;
    send_frame(fd, 7, 1, id, -EFAULT, &junk, 8); /* only READ/WRITE/READV/WRITEV errors carry one */
}

static void ping_huge_length(int fd, uint32_t id)
{
    uint8_t h[16] = { 0 };
    uint32_t l = htole32(16 + (1u << 20) + 1), i = htole32(id);
    memcpy(h, &l, 4);
    h[4] = 2;
    h[6] = 1;
    memcpy(h + 8, &i, 4);
    send_bytes(fd, h, 16); /* and nothing more: the client must not wait for the bytes it claims */
}

static void ping_with_fd(int fd, uint32_t id)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    uint8_t h[16] = { 16, 0, 0, 0, 2, 0, 1, 0 };
    uint32_t i = htole32(id);
    memcpy(h + 8, &i, 4);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } control = { 0 };
    struct iovec iov = { h, 16 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    memcpy(CMSG_DATA(c), p, sizeof p);
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) != 16)
        fprintf(stderr, "fake server: sendmsg with fds failed\n");
    close(p[0]);
    close(p[1]);
}

static void ping_after_unknown_event(int fd, uint32_t id)
{
    uint8_t junk[100];
    memset(junk, 0x5a, sizeof junk);
    send_frame(fd, 0x90, 2, 0, 0, junk, sizeof junk);
    send_frame(fd, 2, 1, id, 0, NULL, 0);
}

static void ping_then_split_event(int fd, uint32_t id)
{
    const struct frame *e = frame("event.gpc_invalidated");
    send_frame(fd, 2, 1, id, 0, NULL, 0);
    send_bytes(fd, e->bytes, 10);
    sem_wait(&go);
    send_bytes(fd, e->bytes + 10, e->len - 10);
}

enum { FLOOD = 65536 + 100 };

static void ping_after_flood(int fd, uint32_t id)
{
    uint8_t *all = malloc((size_t)FLOOD * 32);
    for (uint32_t k = 0; k < FLOOD; k++) {
        uint8_t *e = all + (size_t)k * 32;
        memcpy(e, frame("event.gpc_invalidated")->bytes, 32);
        uint64_t h = htole64(k + 1);
        memcpy(e + 16, &h, 8);
    }
    send_bytes(fd, all, (size_t)FLOOD * 32);
    free(all);
    send_frame(fd, 2, 1, id, 0, NULL, 0);
}

/* ---- The client side -------------------------------------------------------------------------------------- */

static const struct step golden_session[] = {
    { "request.hello_device_ops", NULL, "reply.hello_device_ops", NULL },
    { "request.ping", NULL, "reply.ping", NULL },
    { "request.read", NULL, "reply.read", NULL },
    { "request.write", NULL, "reply.write", NULL },
    { "request.gpc_activate", NULL, "reply.gpc_activate", NULL },
    { "request.gpc_deactivate", NULL, "reply.gpc_deactivate", NULL },
    { "request.gpc_read", NULL, "reply.gpc_read", NULL },
    { "request.gpc_write", NULL, "reply.gpc_write", NULL },
    { "request.gpc_refresh", NULL, "reply.gpc_refresh", NULL },
    { "request.set_attributes", "event.gpc_invalidated", "reply.set_attributes", NULL },
    { "request.discard", NULL, "reply.discard", NULL },
    { "request.stats", NULL, "reply.stats", NULL },
    { "request.page_state", NULL, "reply.page_state", NULL },
    { "request.readv", NULL, "reply.readv", NULL },
    { "request.writev", NULL, "reply.writev", NULL },
    { "request.atomic", NULL, "reply.atomic", NULL },
    { "request.gpc_atomic", NULL, "reply.gpc_atomic", NULL },
    { "request.write_partial", NULL, "reply.write_partial", NULL },
    { "request.writev_partial", NULL, "reply.writev_partial", NULL },
    { 0 },
};

static void golden_client(void)
{
    struct gmem *g = gmem_connect(sock_path);
    CHECK(g != NULL);
    if (!g)
        return;
    struct gmem_info i;
    gmem_info(g, &i);
    CHECK(i.page_size == 4096 && i.folio_size == 2u << 20 && i.region_size == 1u << 30);
    CHECK(i.region_id == 0x0123456789abcdefull && i.max_payload == 1u << 20 && i.max_gpcs == 64);
    CHECK(i.region_flags == (GMEM_REGION_NO_DIRECT_MAP | GMEM_REGION_SECRETMEM) && i.max_segments == 64);

    uint8_t buf[64];
    uint64_t h = 0, old = 0;
    CHECK_RC(gmem_echo(g, "gmemd", 5, buf), 5);
    CHECK(memcmp(buf, "gmemd", 5) == 0);
    CHECK_RC(gmem_read(g, 0x1000, buf, 16), 16);
    for (int k = 0; k < 16; k++)
        CHECK(buf[k] == 0x10 + k);
    CHECK_RC(gmem_write(g, 0x2000, "\x11\x22\x33\x44\x55\x66\x77\x88", 8), 8);
    CHECK_RC(gmem_gpc_activate(g, 0x3000, 64, &h), 0);
    CHECK(h == 1);
    CHECK_RC(gmem_gpc_deactivate(g, 1), 0);
    CHECK_RC(gmem_gpc_read(g, 1, 8, buf, 4), 0);
    CHECK(memcmp(buf, "\xaa\xbb\xcc\xdd", 4) == 0);
    CHECK_RC(gmem_gpc_write(g, 1, 0, "\x01\x02\x03\x04", 4), 0);
    CHECK_RC(gmem_gpc_refresh(g, 1, 0x5000, 64), 0);
    CHECK_RC(gmem_set_attributes(g, 0x200000, 0x200000, GMEM_ATTRIBUTE_PRIVATE), 0);
    struct gmem_event ev;
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.type == GMEM_EVENT_GPC_INVALIDATED && ev.handle == 1 && ev.reason == GMEM_INVALIDATED_DISCARDED);
    CHECK_RC(gmem_discard(g, 0x400000, 0x1000), 0);

    struct gmem_stat st[20];
    CHECK_RC(gmem_stats(g, st, 20), 14);
    CHECK(strcmp(st[0].name, "reads") == 0 && st[0].value == 3);
    CHECK(strcmp(st[12].name, "connections_total") == 0 && st[12].value == 5);

    struct gmem_page_state ps[3];
    CHECK_RC(gmem_page_state(g, 0x200000, 3, ps), 0);
    CHECK(ps[0].refcount == 2 && ps[0].state == GMEM_PAGE_ACCESSIBLE);
    CHECK(ps[1].refcount == 0 && ps[1].state == GMEM_PAGE_PRIVATE);
    CHECK(ps[2].refcount == 65535 && ps[2].state == GMEM_PAGE_ACCESSIBLE);

    struct gmem_iov rv[2] = { { 0x1000, 4 }, { 0x3000, 2 } };
    CHECK_RC(gmem_readv(g, rv, 2, buf), 6);
    CHECK(memcmp(buf, "\xaa\xbb\xcc\xdd\x01\x02", 6) == 0);
    struct gmem_iov wv[2] = { { 0x2000, 2 }, { 0x4000, 3 } };
    CHECK_RC(gmem_writev(g, wv, 2, "\x11\x22\x33\x44\x55"), 5);

    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_FETCH_ADD, .size = 8, .gpa = 0x6000, .value = 1 };
    CHECK_RC(gmem_atomic(g, &op, &old), 0);
    CHECK(old == 41);
    op = (struct gmem_atomic_op){ .kind = GMEM_ATOMIC_CMPXCHG, .size = 4, .value = 7, .expected = 5 };
    CHECK_RC(gmem_gpc_atomic(g, 1, 8, &op, &old), 0);
    CHECK(old == 5);

    struct gmem_progress p;
    CHECK_RC(gmem_write(g, 0x1ffc, "\x00\x01\x02\x03\x04\x05\x06\x07", 8), -EIO);
    CHECK_RC(gmem_last_progress(g, &p), 0);
    CHECK(p.bytes_completed == 4 && p.segment == 0 && p.segment_bytes == 4);
    struct gmem_iov pv[2] = { { 0x1000, 4 }, { 0x8000, 4 } };
    CHECK_RC(gmem_writev(g, pv, 2, "\x00\x01\x02\x03\x04\x05\x06\x07"), -ENOMEM);
    CHECK_RC(gmem_last_progress(g, &p), 0);
    CHECK(p.bytes_completed == 4 && p.segment == 1 && p.segment_bytes == 0);
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN);
    gmem_close(g);
}

/* A session whose second request gets a broken reply: that call and every later one fail with -EPROTO. */
#define BROKEN(name, fn) static const struct step name[] = { { NULL, NULL, NULL, hello_ok }, { NULL, NULL, NULL, fn }, { 0 } }
BROKEN(s_wrong_id, ping_wrong_id);
BROKEN(s_short, read_short);
BROKEN(s_error_payload, gpc_read_error_payload);
BROKEN(s_huge, ping_huge_length);

static void broken_client(const char *what, int which)
{
    struct gmem *g = gmem_connect(sock_path);
    CHECK(g != NULL);
    if (!g)
        return;
    char buf[8];
    long rc = which == 0 ? gmem_ping(g) : which == 1 ? gmem_read(g, 0, buf, 8) : gmem_gpc_read(g, 1, 0, buf, 4);
    if (rc != -EPROTO)
        fprintf(stderr, "%s: ", what);
    CHECK_RC(rc, -EPROTO);
    CHECK_RC(gmem_ping(g), -EPROTO); /* the connection is gone for good */
    gmem_close(g);
}

static const struct step s_version[] = { { NULL, NULL, NULL, hello_version }, { 0 } };
static const struct step s_eacces[] = { { NULL, NULL, NULL, hello_eacces }, { 0 } };

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static int readable(struct gmem *g, int ms)
{
    struct pollfd p = { gmem_event_fd(g), POLLIN, 0 };
    return poll(&p, 1, ms) == 1;
}

static const struct step s_events[] = {
    { NULL, NULL, NULL, hello_ok },
    { NULL, NULL, NULL, ping_with_fd },
    { NULL, NULL, "reply.ping", NULL }, /* any ping reply; the id is patched */
    { NULL, NULL, NULL, ping_after_unknown_event },
    { NULL, NULL, NULL, ping_then_split_event },
    { NULL, NULL, NULL, ping_after_flood },
    { 0 },
};

static void events_client(void)
{
    struct gmem *g = gmem_connect(sock_path);
    CHECK(g != NULL);
    if (!g)
        return;
    struct gmem_event ev;
    int before = count_fds();
    CHECK_RC(gmem_ping(g), 0);             /* its reply carried two descriptors... */
    char e[5];
    CHECK_RC(gmem_echo(g, "gmemd", 5, e), 5); /* (reply.ping echoes "gmemd") */
    CHECK(count_fds() == before);          /* ...which the library closed */

    CHECK_RC(gmem_ping(g), 0);
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.type == 0x90); /* unknown: delivered by type, its payload skipped */
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN);

    CHECK_RC(gmem_ping(g), 0);
    CHECK(readable(g, 5000));
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN); /* 10 bytes of a header: keep them, do not block */
    sem_post(&go);
    CHECK(readable(g, 5000));
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.type == GMEM_EVENT_GPC_INVALIDATED && ev.handle == 1 && ev.reason == 2);

    CHECK_RC(gmem_ping(g), 0); /* 65636 events arrive first */
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.type == GMEM_EVENT_OVERFLOW);
    uint64_t n = 0, in_order = 1;
    while (gmem_next_event(g, &ev) == 0)
        in_order &= ev.handle == ++n;
    CHECK(n == 65536 && in_order); /* the oldest are kept, in order */
    CHECK(!readable(g, 0));
    gmem_close(g);
}

int main(int argc, char **argv)
{
    guard(60);
    if (argc != 2 || load_frames(argv[1]) < 0) {
        fprintf(stderr, "usage: %s FRAMES_FILE (a readable proto/vectors/frames.txt)\n", argv[0]);
        return 2;
    }
    char dir[] = "/tmp/gmem-fake-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    snprintf(sock_path, sizeof sock_path, "%s/fake.sock", dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(listen_fd, 4) < 0) {
        perror("fake server");
        return 2;
    }
    sem_init(&go, 0, 0);
    const struct step *list[] = { golden_session, s_wrong_id, s_short, s_error_payload, s_huge,
                                  s_version,      s_eacces,   s_events, NULL };
    memcpy(sessions, list, sizeof list);
    pthread_t t;
    pthread_create(&t, NULL, server, NULL);

    golden_client();
    broken_client("wrong id", 0);
    broken_client("short payload", 1);
    broken_client("error payload", 2);
    broken_client("length over max_payload", 0);
    errno = 0;
    CHECK(gmem_connect(sock_path) == NULL && errno == EPROTONOSUPPORT);
    errno = 0;
    CHECK(gmem_connect(sock_path) == NULL && errno == EACCES);
    events_client();

    pthread_join(t, NULL);
    close(listen_fd);
    unlink(sock_path);
    rmdir(dir);
    return test_finish("test_fake");
}
