/*
 * mpvmm-clock - keeps every vCPU's clock current, as a hypervisor keeps kvmclock's pvclock pages, without
 * mapping guest memory.
 *
 * Every vCPU's struct mpvmm_clock lies on the same guest page, and this process holds one GPC per vCPU on it:
 * several caches on one page, the case the 2024 one-bit design refused and gmemd counts. Each update is the
 * pvclock writer's sequence: version to odd (an atomic add), the timestamp, version to even (an atomic add, so
 * the timestamp is visible before it). A GPC invalidated by a conversion is refreshed and the update redone.
 *
 *   mpvmm-clock --socket PATH --vcpus N --control-fd FD [--period-us US]
 *
 * It writes one byte to FD once every clock holds a time, and runs until FD closes.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gmem.h>

#include "host.h"
#include "layout.h"

static const char *program = "mpvmm-clock";

struct clock {
    uint64_t handle, gpa;
};

static int add_to_version(struct gmem *g, const struct clock *c, uint64_t *old)
{
    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_FETCH_ADD, .size = 4, .value = 1 };
    return gmem_gpc_atomic(g, c->handle, offsetof(struct mpvmm_clock, version), &op, old);
}

/* One pvclock-style update; -ESTALE when the GPC went stale on the way (the caller refreshes and retries). */
static int update(struct gmem *g, const struct clock *c)
{
    uint64_t version, now = mpvmm_now_ns();
    int rc = add_to_version(g, c, &version);
    /* Odd before: an update that went stale half way left it so, and this add closed it; open a new one. */
    if (rc == 0 && version % 2)
        rc = add_to_version(g, c, &version);
    if (rc == 0)
        rc = gmem_gpc_write(g, c->handle, offsetof(struct mpvmm_clock, ns), &now, sizeof now);
    if (rc == 0)
        rc = add_to_version(g, c, NULL); /* even again: the time is complete */
    return rc;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    long vcpus = 0, control = -1, period_us = 1000;
    static const struct option options[] = {
        { "socket", required_argument, 0, 's' },     { "vcpus", required_argument, 0, 'n' },
        { "control-fd", required_argument, 0, 'c' }, { "period-us", required_argument, 0, 'p' },
        { 0, 0, 0, 0 },
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (o) {
        case 's': socket_path = optarg; break;
        case 'n': vcpus = mpvmm_number(program, "--vcpus", optarg, 1, MPVMM_MAX_VCPUS); break;
        case 'c': control = mpvmm_number(program, "--control-fd", optarg, 0, 1 << 20); break;
        case 'p': period_us = mpvmm_number(program, "--period-us", optarg, 10, 1000000); break;
        default:
            fprintf(stderr, "usage: %s --socket PATH --vcpus N --control-fd FD [--period-us US]\n", program);
            return 2;
        }
    }
    if (vcpus == 0 || control < 0) {
        fprintf(stderr, "%s: --vcpus and --control-fd are required\n", program);
        return 2;
    }
    struct gmem *g = gmem_connect(socket_path);
    if (!g)
        mpvmm_die(program, "connecting to gmemd");
    struct clock clocks[MPVMM_MAX_VCPUS];
    for (long i = 0; i < vcpus; i++) {
        clocks[i].gpa = MPVMM_CLOCK + (uint64_t)i * sizeof(struct mpvmm_clock);
        int rc = gmem_gpc_activate(g, clocks[i].gpa, sizeof(struct mpvmm_clock), &clocks[i].handle);
        if (rc < 0)
            mpvmm_die_gmem(program, "GPC_ACTIVATE on the clock page", rc);
    }

    unsigned long updates = 0, refreshes = 0;
    struct pollfd stop = { .fd = (int)control, .events = POLLIN };
    for (int first = 1;; first = 0) {
        for (long i = 0; i < vcpus; i++) {
            int rc;
            while ((rc = update(g, &clocks[i])) == -ESTALE) {
                rc = gmem_gpc_refresh(g, clocks[i].handle, clocks[i].gpa, sizeof(struct mpvmm_clock));
                if (rc < 0)
                    mpvmm_die_gmem(program, "GPC_REFRESH", rc);
                refreshes++;
            }
            if (rc < 0)
                mpvmm_die_gmem(program, "updating a clock", rc);
            updates++;
        }
        /* The invalidation events only tell what the -ESTALE above already did; keep the queue empty. */
        struct gmem_event event;
        while (gmem_next_event(g, &event) == 0)
            ;
        if (first && write((int)control, "r", 1) != 1)
            mpvmm_die(program, "telling the vCPU process it is ready");
        if (poll(&stop, 1, period_us < 1000 ? 1 : (int)(period_us / 1000)) != 0)
            break; /* the control socket closed (or failed): the VM is done */
    }
    int mapped = mpvmm_maps_guest_memory(0);
    printf("mpvmm-clock: %lu updates of %ld clocks on one page through %ld GPCs, %lu refreshes; guest memory in "
           "this process's maps: %s\n",
           updates, vcpus, vcpus, refreshes, mapped == 0 ? "none" : mapped > 0 ? "YES" : "unknown");
    for (long i = 0; i < vcpus; i++)
        gmem_gpc_deactivate(g, clocks[i].handle);
    gmem_close(g);
    return mapped == 0 ? 0 : 1;
}
