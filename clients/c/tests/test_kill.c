/*
 * test_kill.c - a daemon SIGKILLed in the middle of a call: the call returns -ECONNRESET or -EPIPE, promptly,
 * without SIGPIPE, and so does every later call. The guard turns a hang into a failure.
 *
 *   stopped: the daemon is SIGSTOPped, a call is started on a second thread (it must be waiting for its reply),
 *            then the daemon is SIGKILLed: deterministic "mid-call".
 *   ring:    the same with a read waiting on a ring (its wait watches the socket for the hang-up).
 *   reading, writing: 1 MiB reads or writes in a loop while another thread kills the daemon after a moment, so
 *            the kill lands in a send or a receive.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gmem_ring.h"
#include "harness.h"

#define MIB (1u << 20)

static int dead_rc(long rc)
{
    return rc == -ECONNRESET || rc == -EPIPE;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void after_death(struct gmem *g)
{
    char b[8];
    struct gmem_event ev;
    CHECK(dead_rc(gmem_read(g, 0, b, sizeof b)));
    CHECK(dead_rc(gmem_ping(g)));
    CHECK(dead_rc(gmem_next_event(g, &ev)));
}

/* Whether /proc/<pid>/task/<tid>/stat shows the thread stopped. */
static int task_stopped(pid_t pid, const char *tid)
{
    char path[512], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%.255s/stat", (int)pid, tid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *state = strrchr(buf, ')');
    return !f || (state && state[1] == ' ' && (state[2] == 'T' || state[2] == 't')); /* gone counts as stopped */
}

/* SIGSTOP takes effect asynchronously: wait until every thread of pid has stopped. */
static void stop_daemon(pid_t pid)
{
    kill(pid, SIGSTOP);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    for (int tries = 0; tries < 2000; tries++) {
        int running = 0;
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (e->d_name[0] != '.')
                running += !task_stopped(pid, e->d_name);
        if (d)
            closedir(d);
        if (!running)
            return;
        usleep(1000);
    }
    fprintf(stderr, "gmemd %d did not stop\n", (int)pid);
}

struct call {
    struct gmem *g;
    struct gmem_ring *ring;
    void *buf;
    volatile long rc;
    volatile int started;
};

static void *blocked_read(void *arg)
{
    struct call *c = arg;
    c->started = 1;
    c->rc = gmem_read(c->g, 0, c->buf, MIB);
    return NULL;
}

static void stopped(void)
{
    struct daemon d;
    const char *args[] = { "--size", "64M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    struct call c = { .g = g, .buf = malloc(MIB), .rc = 1 };
    stop_daemon(d.pid);
    pthread_t t;
    pthread_create(&t, NULL, blocked_read, &c);
    while (!c.started)
        usleep(1000);
    usleep(100000); /* the request is sent; the thread waits in recvmsg for a reply that never comes */
    CHECK(c.rc == 1);
    double t0 = now();
    kill(d.pid, SIGKILL);
    pthread_join(t, NULL);
    CHECK(dead_rc(c.rc));
    CHECK(now() - t0 < 2.0);
    printf("stopped: call returned %ld (%s) %.1f ms after SIGKILL\n", c.rc, strerror((int)-c.rc),
           (now() - t0) * 1e3);
    after_death(g);
    free(c.buf);
    gmem_close(g);
    daemon_stop(&d);
}

static void *blocked_ring_read(void *arg)
{
    struct call *c = arg;
    c->started = 1;
    c->rc = gmem_ring_read(c->ring, 0, c->buf, 4096);
    return NULL;
}

static void ring_stopped(void)
{
    struct daemon d;
    const char *args[] = { "--size", "64M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    struct gmem_info i;
    gmem_info(g, &i);
    if (!(i.features & GMEM_FEATURE_RINGS)) {
        printf("SKIP ring: this gmemd does not grant RINGS\n");
    } else {
        struct call c = { .g = g, .buf = malloc(4096), .rc = 1 };
        c.ring = gmem_ring_open(g, 4, 4096);
        CHECK(c.ring != NULL);
        CHECK_RC(gmem_ring_read(c.ring, 0, c.buf, 4096), 4096);
        stop_daemon(d.pid);
        pthread_t t;
        pthread_create(&t, NULL, blocked_ring_read, &c);
        while (!c.started)
            usleep(1000);
        usleep(100000);
        CHECK(c.rc == 1);
        double t0 = now();
        kill(d.pid, SIGKILL);
        pthread_join(t, NULL);
        CHECK(dead_rc(c.rc));
        CHECK(now() - t0 < 2.0);
        printf("ring: call returned %ld (%s) %.1f ms after SIGKILL\n", c.rc, strerror((int)-c.rc),
               (now() - t0) * 1e3);
        CHECK_RC(gmem_ring_ping(c.ring), -ECONNRESET);
        after_death(g);
        gmem_ring_close(c.ring); /* RING_CLOSE cannot be sent: it just lets go */
        free(c.buf);
    }
    gmem_close(g);
    daemon_stop(&d);
}

struct killer {
    pid_t pid;
    int delay_ms;
};

static void *kill_later(void *arg)
{
    struct killer *k = arg;
    usleep((useconds_t)k->delay_ms * 1000);
    kill(k->pid, SIGKILL);
    return NULL;
}

static void looping(int writing)
{
    struct daemon d;
    const char *args[] = { "--size", "64M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0) {
        test_failures++;
        return;
    }
    struct gmem *g = gmem_connect(d.sock);
    CHECK(g != NULL);
    uint8_t *buf = calloc(1, MIB);
    size_t len = writing ? MIB - 16 : MIB;
    struct killer k = { d.pid, 150 };
    pthread_t t;
    pthread_create(&t, NULL, kill_later, &k);
    long rc;
    unsigned calls = 0;
    do {
        rc = writing ? gmem_write(g, 0, buf, len) : gmem_read(g, 0, buf, len);
        calls++;
    } while (rc == (long)len);
    double t0 = now();
    pthread_join(t, NULL);
    CHECK(dead_rc(rc));
    printf("%s: call %u returned %ld (%s)\n", writing ? "writing" : "reading", calls, rc, strerror((int)-rc));
    CHECK(now() - t0 < 2.0);
    after_death(g);
    free(buf);
    gmem_close(g);
    daemon_stop(&d);
}

int main(void)
{
    guard(30);
    /* No SIG_IGN for SIGPIPE: the library must not raise it (MSG_NOSIGNAL), or this process dies here. */
    stopped();
    ring_stopped();
    looping(0);
    looping(1);
    return test_finish("test_kill");
}
