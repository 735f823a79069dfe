/*
 * test_kill.c - a daemon SIGKILLed in the middle of a call: the call returns -ECONNRESET or -EPIPE, promptly,
 * without SIGPIPE, and so does every later call. The guard turns a hang into a failure.
 *
 *   stopped: the daemon is SIGSTOPped, a call is started on a second thread (it must be waiting for its reply),
 *            then the daemon is SIGKILLed: deterministic "mid-call".
 *   reading, writing: 1 MiB reads or writes in a loop while another thread kills the daemon after a moment, so
 *            the kill lands in a send or a receive.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"
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

struct call {
    struct gmem *g;
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
    kill(d.pid, SIGSTOP);
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
    looping(0);
    looping(1);
    return test_finish("test_kill");
}
