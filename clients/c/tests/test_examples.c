/*
 * test_examples.c - the example programs run against a private gmemd and print what they should.
 * Usage: test_examples GMEM_HEXDUMP GMEM_VIRTQ GMEM_RING_LATENCY.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Runs argv, returns its exit status and up to cap - 1 bytes of its stdout in out. */
static int run(char *const *argv, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv)
{
    guard(30);
    if (argc != 4)
        return 2;
    struct daemon d;
    const char *args[] = { "--size", "16M", "--log-level", "warning", NULL };
    if (daemon_start(&d, args) < 0)
        return 1;
    static char out[1 << 16];

    char *virtq[] = { argv[2], "--socket", d.sock, NULL };
    CHECK(run(virtq, out, sizeof out) == 0);
    CHECK(strstr(out, "chain 0: 3 descriptors, 19 bytes: \"hello, device model\"") != NULL);
    CHECK(strstr(out, "chain 3: 2 descriptors, 12 bytes: \"second chain\"") != NULL);
    CHECK(strstr(out, "used.idx = 2") != NULL);

    /* The first buffer of the queue gmem-virtq laid out at 0x100000. */
    char *dump[] = { argv[1], "--socket", d.sock, "0x103000", "7", NULL };
    CHECK(run(dump, out, sizeof out) == 0);
    CHECK(strstr(out, "0000000000103000  68 65 6c 6c 6f 2c 20") != NULL);
    CHECK(strstr(out, "|hello, |") != NULL);
    char *outside[] = { argv[1], "--socket", d.sock, "0xfffff0", "32", NULL };
    CHECK(run(outside, out, sizeof out) == 1);

    /* A short measurement: it runs, and prints its one JSON line. */
    char *latency[] = { argv[3], "--socket", d.sock, "--duration", "0.2", "--warmup", "0", "--json", NULL };
    CHECK(run(latency, out, sizeof out) == 0);
    CHECK(strncmp(out, "{\"client\":\"c\",\"ops_per_second\":", 31) == 0 && strstr(out, "\"p99_ns\":") != NULL);
    char *bad[] = { argv[3], "--socket", d.sock, "--duration", "x", NULL };
    CHECK(run(bad, out, sizeof out) == 2);

    daemon_stop(&d);
    return test_finish("test_examples");
}
