/*
 * harness.h - what the tests share: a gmemd on a private socket, a timeout guard, and checks that count
 * failures instead of stopping, so one run reports every broken rule.
 */
#ifndef GMEM_TEST_HARNESS_H
#define GMEM_TEST_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

struct daemon {
    pid_t pid;
    char dir[64];   /* private temp dir */
    char sock[128]; /* dir/gmemd.sock */
    char log[128];  /* dir/gmemd.log: its stdout and stderr */
};

/* Starts $GMEMD_BINARY (required) with --socket and extra args (NULL-terminated), waits until the
 * socket accepts (10 s at most). Returns 0, or -1 after printing why. */
int daemon_start(struct daemon *d, const char *const *args);

/* SIGTERM, then SIGKILL after 5 s; removes the directory. */
void daemon_stop(struct daemon *d);

/* Kills the whole test with a message after seconds: a hang is a failure, not a stuck CI job. */
void guard(unsigned seconds);

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        test_checks++;                                                                    \
        if (!(cond)) {                                                                    \
            test_failures++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

/* A call's return value against the expected one (0, a length, or -Exxx), naming both on failure. */
#define CHECK_RC(call, expected)                                                          \
    do {                                                                                  \
        long long rc_ = (long long)(call), want_ = (long long)(expected);                 \
        test_checks++;                                                                    \
        if (rc_ != want_) {                                                               \
            test_failures++;                                                              \
            fprintf(stderr, "%s:%d: %s = %lld (%s), expected %lld (%s)\n", __FILE__,      \
                    __LINE__, #call, rc_, rc_ < 0 ? strerror((int)-rc_) : "ok", want_,    \
                    want_ < 0 ? strerror((int)-want_) : "ok");                            \
        }                                                                                 \
    } while (0)

/* Prints the tally and returns the exit status. */
int test_finish(const char *name);

#endif
