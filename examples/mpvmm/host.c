/*
 * host.c - helpers the three host programs of mpvmm share.
 */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void mpvmm_die(const char *program, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program, what, strerror(errno));
    exit(2);
}

void mpvmm_die_gmem(const char *program, const char *what, long error)
{
    fprintf(stderr, "%s: %s: %s\n", program, what, strerror((int)-error));
    exit(2);
}

uint64_t mpvmm_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int mpvmm_maps_guest_memory(pid_t pid)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/maps");
    FILE *maps = fopen(path, "r");
    if (!maps)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, maps))
        found |= strstr(line, "memfd:gmemd-guest") != NULL;
    fclose(maps);
    return found;
}

const char *mpvmm_phase_name(unsigned phase)
{
    static const char *const names[] = { "write-4k", "read-4k", "write-64k", "read-64k" };
    return phase < sizeof names / sizeof *names ? names[phase] : "other";
}

long mpvmm_number(const char *program, const char *option, const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        fprintf(stderr, "%s: %s takes a whole number from %ld to %ld, not '%s'\n", program, option, min, max, text);
        exit(2);
    }
    return value;
}
