/*
 * event.c - the event queue and its fd.
 *
 * Events arrive on the socket between replies; while a call waits for its reply they are queued here. The fd
 * users poll is an epoll fd over two sources: an eventfd that is non-zero exactly while the queue is not empty,
 * and the socket itself (events that nobody has read yet). Level-triggered, so "readable" means
 * "gmem_next_event() has something to do".
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static void signal_queued(struct gmem *g, bool queued)
{
    uint64_t v = 1;
    /* The eventfd is non-blocking: writing to a counter already at 1 only adds, reading empties it. */
    if (queued)
        (void)!write(g->evfd, &v, sizeof v);
    else
        (void)!read(g->evfd, &v, sizeof v);
}

void gmem_event_push(struct gmem *g, const struct gmem_event *ev)
{
    bool was_empty = g->evq_len == 0 && !g->evq_overflow;
    if (g->evq_len == g->evq_cap) {
        uint32_t cap = g->evq_cap ? g->evq_cap * 2 : 16;
        struct gmem_event *q = cap <= GMEM_EVENT_QUEUE_MAX ? malloc(cap * sizeof *q) : NULL;
        if (!q) {
            /* Dropping is safe only if the user learns of it: GPC calls still fail with -ESTALE. */
            g->evq_overflow = true;
            if (was_empty)
                signal_queued(g, true);
            return;
        }
        for (uint32_t i = 0; i < g->evq_len; i++)
            q[i] = g->evq[(g->evq_head + i) & (g->evq_cap - 1)];
        free(g->evq);
        g->evq = q;
        g->evq_cap = cap;
        g->evq_head = 0;
    }
    g->evq[(g->evq_head + g->evq_len) & (g->evq_cap - 1)] = *ev;
    g->evq_len++;
    if (was_empty)
        signal_queued(g, true);
}

static bool pop(struct gmem *g, struct gmem_event *ev)
{
    if (g->evq_overflow) {
        g->evq_overflow = false;
        *ev = (struct gmem_event){ .type = GMEM_EVENT_OVERFLOW };
    } else if (g->evq_len) {
        *ev = g->evq[g->evq_head];
        g->evq_head = (g->evq_head + 1) & (g->evq_cap - 1);
        g->evq_len--;
    } else {
        return false;
    }
    if (g->evq_len == 0 && !g->evq_overflow)
        signal_queued(g, false);
    return true;
}

GMEM_EXPORT int gmem_event_fd(struct gmem *g)
{
    return g->epfd;
}

GMEM_EXPORT int gmem_next_event(struct gmem *g, struct gmem_event *ev)
{
    if (pop(g, ev))
        return 0;
    /* Nothing queued: take whatever complete frames the socket holds, without blocking. */
    int r = gmem_pump_events(g);
    if (pop(g, ev))
        return 0;
    return r < 0 ? r : -EAGAIN;
}
