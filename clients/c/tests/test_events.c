/*
 * test_events.c - GPC_INVALIDATED delivery through gmem_event_fd() and gmem_next_event(): queued during this
 * connection's own call, arriving while idle, arriving during an unrelated call, many at once, and events left
 * behind by a daemon that went away. The overflow marker needs 65537 events: test_fake.c sends them.
 */
#include <poll.h>
#include <stdlib.h>

#include "gmem.h"
#include "harness.h"

static int readable(struct gmem *g, int timeout_ms)
{
    struct pollfd p = { .fd = gmem_event_fd(g), .events = POLLIN };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void own_conversion(struct gmem *g)
{
    uint64_t h;
    struct gmem_event ev;
    CHECK(!readable(g, 0));
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN);
    CHECK_RC(gmem_gpc_activate(g, 0x10000, 64, &h), 0);
    /* The event precedes the reply, so it is queued by the time the call returns: readable at once. */
    CHECK_RC(gmem_set_attributes(g, 0x10000, 0x1000, 0), 0);
    CHECK(readable(g, 0));
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.type == GMEM_EVENT_GPC_INVALIDATED && ev.handle == h &&
          ev.reason == GMEM_INVALIDATED_ATTRIBUTES_CHANGED);
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN);
    CHECK(!readable(g, 0)); /* drained: the eventfd was reset */

    CHECK_RC(gmem_gpc_refresh(g, h, 0x10000, 64), 0);
    CHECK_RC(gmem_discard(g, 0x10000, 0x1000), 0);
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.handle == h && ev.reason == GMEM_INVALIDATED_DISCARDED);
    CHECK_RC(gmem_gpc_deactivate(g, h), 0);
    CHECK(!readable(g, 0));
}

/* Another connection converts the page: the event sits in the socket until someone reads it. */
static void while_idle(struct gmem *g, struct gmem *other)
{
    uint64_t h;
    struct gmem_event ev;
    CHECK_RC(gmem_gpc_activate(g, 0x20000, 8, &h), 0);
    CHECK_RC(gmem_set_attributes(other, 0x20000, 0x1000, 0), 0);
    CHECK(readable(g, 5000)); /* the socket side of the fd */
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.handle == h && ev.reason == GMEM_INVALIDATED_ATTRIBUTES_CHANGED);
    CHECK_RC(gmem_next_event(g, &ev), -EAGAIN);
    CHECK(!readable(g, 0));

    /* The same, but a call reads the event first: it is queued, and the eventfd keeps the fd readable. */
    CHECK_RC(gmem_gpc_refresh(g, h, 0x20000, 8), 0);
    CHECK_RC(gmem_discard(other, 0x20000, 0x1000), 0);
    CHECK(readable(g, 5000));
    CHECK_RC(gmem_ping(g), 0); /* its reply follows the event on the socket */
    CHECK(readable(g, 0));
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.handle == h && ev.reason == GMEM_INVALIDATED_DISCARDED);
    CHECK(!readable(g, 0));
    CHECK_RC(gmem_gpc_deactivate(g, h), 0);
}

static void many(struct gmem *g)
{
    uint64_t h[8];
    struct gmem_event ev;
    for (int i = 0; i < 8; i++)
        CHECK_RC(gmem_gpc_activate(g, 0x30000 + 8 * (uint64_t)i, 8, &h[i]), 0);
    CHECK_RC(gmem_set_attributes(g, 0x30000, 0x1000, 0), 0);
    int seen = 0;
    while (gmem_next_event(g, &ev) == 0) {
        for (int i = 0; i < 8; i++)
            seen += ev.handle == h[i];
    }
    CHECK(seen == 8);
    for (int i = 0; i < 8; i++)
        CHECK_RC(gmem_gpc_deactivate(g, h[i]), 0);
}

/* Events queued before the daemon went away are still delivered; then the connection's error. */
static void after_death(struct daemon *d, struct gmem *g)
{
    uint64_t h;
    struct gmem_event ev;
    CHECK_RC(gmem_gpc_activate(g, 0x50000, 8, &h), 0);
    CHECK_RC(gmem_set_attributes(g, 0x50000, 0x1000, 0), 0);
    daemon_stop(d);
    CHECK(readable(g, 5000));
    CHECK_RC(gmem_next_event(g, &ev), 0);
    CHECK(ev.handle == h);
    int rc = gmem_next_event(g, &ev);
    CHECK(rc == -ECONNRESET || rc == -EPIPE);
    CHECK(readable(g, 0)); /* a dead connection stays readable, so pollers notice */
    rc = gmem_ping(g);
    CHECK(rc == -ECONNRESET || rc == -EPIPE);
}

int main(void)
{
    guard(60);
    struct daemon d;
    const char *args[] = { "--size", "64M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0)
        return 1;
    struct gmem *g = gmem_connect(d.sock), *other = gmem_connect(d.sock);
    if (!g || !other) {
        fprintf(stderr, "gmem_connect: %s\n", strerror(errno));
        daemon_stop(&d);
        return 1;
    }
    own_conversion(g);
    while_idle(g, other);
    many(g);
    after_death(&d, g);
    gmem_close(other);
    gmem_close(g);
    return test_finish("test_events");
}
