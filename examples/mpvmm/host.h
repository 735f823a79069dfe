/*
 * host.h - helpers the three host programs of mpvmm share (host.c).
 */
#ifndef MPVMM_HOST_H
#define MPVMM_HOST_H

#include <stdint.h>
#include <sys/types.h>

/* Prints "PROGRAM: WHAT: strerror(errno)" and exits 2. */
_Noreturn void mpvmm_die(const char *program, const char *what);

/* Prints "PROGRAM: WHAT: strerror(-error)" for a negative errno from libgmem and exits 2. */
_Noreturn void mpvmm_die_gmem(const char *program, const char *what, long error);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mpvmm_now_ns(void);

/* Whether process pid (0: this one) maps the guest memfd, which gmemd names "gmemd-guest": 1 yes, 0 no, -1 when
 * its /proc/PID/maps cannot be read. */
int mpvmm_maps_guest_memory(pid_t pid);

/* The benchmark phase's name: write-4k, read-4k, write-64k, read-64k. */
const char *mpvmm_phase_name(unsigned phase);

/* Parses a whole decimal number between min and max, or exits 2 naming the option. */
long mpvmm_number(const char *program, const char *option, const char *text, long min, long max);

#endif /* MPVMM_HOST_H */
