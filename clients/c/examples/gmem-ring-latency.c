/*
 * gmem-ring-latency - latency of libgmem's one-call gmem_ring_gpc_read() at depth 1.
 *
 *   gmem-ring-latency --socket PATH [--duration S] [--warmup S] [--json]
 *
 * The method of `gmem-bench ring --op gpc-read --depth 1`, so the two figures can be compared (issue 14: within
 * 1.2x; Benchmarks/clients-ring.sh runs both): one connection, a ring of 1 entry and 1 MiB of data area, one GPC
 * of a whole page at gpa 16 * page_size, then 8-byte GPC_READs at offset 0, one call after another. Each call is
 * timed with CLOCK_MONOTONIC around it (at depth 1 that is submission to completion); calls that start after the
 * warm-up and end before the end of the measured window are recorded. Percentiles come from the sorted samples
 * (at most MAX_SAMPLES; ops are counted beyond that). Prints
 *
 *   c ring gpc-read depth 1: N ops/s, p50 X ns, p99 Y ns
 *
 * or, with --json, {"client":"c","ops_per_second":N,"p50_ns":X,"p99_ns":Y}. Defaults: 2 s measured after 0.5 s.
 */
#include <errno.h>
#include <gmem.h>
#include <gmem_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES (4u << 20)

static int usage(void)
{
    fprintf(stderr, "usage: gmem-ring-latency --socket PATH [--duration S] [--warmup S] [--json]\n");
    return 2;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || !*s || *end || *out < 0 || *out > 3600 ? -1 : 0;
}

static int compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p percent of the samples at or below it. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    double duration = 2, warmup = 0.5;
    int json = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0)
            json = 1;
        else if (a + 1 < argc && strcmp(argv[a], "--socket") == 0)
            socket_path = argv[++a];
        else if (a + 1 < argc && strcmp(argv[a], "--duration") == 0) {
            if (seconds(argv[++a], &duration) < 0 || duration == 0)
                return usage();
        } else if (a + 1 < argc && strcmp(argv[a], "--warmup") == 0) {
            if (seconds(argv[++a], &warmup) < 0)
                return usage();
        } else
            return usage();
    }
    if (!socket_path)
        return usage();

    struct gmem *g = gmem_connect(socket_path);
    if (!g) {
        fprintf(stderr, "gmem-ring-latency: connect: %s\n", strerror(errno));
        return 1;
    }
    struct gmem_info info;
    gmem_info(g, &info);
    struct gmem_ring *r = gmem_ring_open(g, 1, 1u << 20);
    if (!r) {
        fprintf(stderr, "gmem-ring-latency: ring: %s\n", strerror(errno));
        gmem_close(g);
        return 1;
    }
    uint64_t handle;
    int rc = gmem_gpc_activate(g, 16 * (uint64_t)info.page_size, info.page_size, &handle);
    if (rc < 0) {
        fprintf(stderr, "gmem-ring-latency: GPC_ACTIVATE: %s\n", strerror(-rc));
        gmem_ring_close(r);
        gmem_close(g);
        return 1;
    }
    /* Touched now, so that no page fault lands in a measured call. */
    uint64_t *samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (!samples) {
        fprintf(stderr, "gmem-ring-latency: out of memory\n");
        return 1;
    }
    memset(samples, 0, MAX_SAMPLES * sizeof *samples);

    size_t n = 0;
    uint64_t ops = 0;
    uint64_t value;
    uint64_t begin = now_ns();
    uint64_t start = begin + (uint64_t)(warmup * 1e9), end = start + (uint64_t)(duration * 1e9);
    for (;;) {
        uint64_t sent = now_ns();
        rc = gmem_ring_gpc_read(r, handle, 0, &value, sizeof value);
        uint64_t done = now_ns();
        if (rc < 0) {
            fprintf(stderr, "gmem-ring-latency: gmem_ring_gpc_read: %s\n", strerror(-rc));
            break;
        }
        if (sent >= start && done <= end) {
            ops++;
            if (n < MAX_SAMPLES)
                samples[n++] = done - sent;
        }
        if (done >= end)
            break;
    }
    gmem_gpc_deactivate(g, handle);
    gmem_ring_close(r);
    gmem_close(g);
    if (rc < 0) {
        free(samples);
        return 1;
    }

    qsort(samples, n, sizeof *samples, compare);
    double per_second = (double)ops / duration;
    uint64_t p50 = percentile(samples, n, 50), p99 = percentile(samples, n, 99);
    if (json)
        printf("{\"client\":\"c\",\"ops_per_second\":%.1f,\"p50_ns\":%llu,\"p99_ns\":%llu}\n", per_second,
               (unsigned long long)p50, (unsigned long long)p99);
    else
        printf("c ring gpc-read depth 1: %.0f ops/s, p50 %llu ns, p99 %llu ns\n", per_second,
               (unsigned long long)p50, (unsigned long long)p99);
    free(samples);
    return 0;
}
