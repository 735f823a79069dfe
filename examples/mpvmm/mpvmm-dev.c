/*
 * mpvmm-dev - the device process of mpvmm. It never maps guest memory: every access goes through gmemd, page by
 * page, with the reference-counted protocol (a private page is accessible in gmemd only while this process's
 * request uses it).
 *
 * On each kick (one byte on --kick-fd: the vCPU's index) it reads that vCPU's mailbox and request, checks the
 * request (guest memory is hostile input: a length past the window is refused, not followed), writes the
 * complement of every byte as the response, publishes the status with a release STORE, and answers the kick.
 *
 *   mpvmm-dev --socket PATH --kick-fd FD
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmem.h>

enum { WINDOW = 0x10000, WINDOW_SIZE = 0x2000, REQUEST = 0x100, RESPONSE = 0x1000, MAX_LEN = RESPONSE - REQUEST };
enum { STATUS_GOOD = 1, STATUS_BAD = 2 };

/* Serves one request of vCPU `index`; returns the status it published, or a negative errno from gmemd. */
static int serve(struct gmem *g, uint8_t index, unsigned long *bytes)
{
    uint64_t base = WINDOW + (uint64_t)index * WINDOW_SIZE;
    uint8_t mailbox[4];
    ssize_t n = gmem_read(g, base, mailbox, sizeof mailbox);
    if (n < 0)
        return (int)n;
    unsigned len = mailbox[0] | (unsigned)mailbox[1] << 8;
    uint8_t seed = mailbox[2];
    uint8_t request[MAX_LEN], response[MAX_LEN];
    int status = STATUS_GOOD;
    if (len == 0 || len > MAX_LEN) {
        status = STATUS_BAD;
    } else {
        if ((n = gmem_read(g, base + REQUEST, request, len)) < 0)
            return (int)n;
        for (unsigned i = 0; i < len; i++) {
            if (request[i] != (uint8_t)(seed + i))
                status = STATUS_BAD;
            response[i] = (uint8_t)~request[i];
        }
        if ((n = gmem_write(g, base + RESPONSE, response, len)) < 0)
            return (int)n;
        *bytes += len;
    }
    /* Release: the response is visible to the guest before the status that announces it. */
    struct gmem_atomic_op op = { .kind = GMEM_ATOMIC_STORE, .size = 1, .gpa = base + 4, .value = (uint64_t)status };
    uint64_t old;
    int rc = gmem_atomic(g, &op, &old);
    return rc < 0 ? rc : status;
}

/* Whether this process has any mapping of the guest memfd (its /proc/self/maps names it "memfd:gmemd-guest"). */
static int maps_guest_memory(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, maps))
        found |= strstr(line, "memfd:gmemd-guest") != NULL;
    fclose(maps);
    return found;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    int kick = -1;
    static const struct option options[] = {
        { "socket", required_argument, 0, 's' }, { "kick-fd", required_argument, 0, 'k' }, { 0, 0, 0, 0 },
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        if (o == 's')
            socket_path = optarg;
        else if (o == 'k')
            kick = atoi(optarg);
        else
            return 2;
    }
    if (kick < 0) {
        fprintf(stderr, "usage: %s --socket PATH --kick-fd FD\n", argv[0]);
        return 2;
    }
    struct gmem *g = gmem_connect(socket_path);
    if (!g) {
        fprintf(stderr, "mpvmm-dev: connecting to gmemd: %s\n", strerror(errno));
        return 2;
    }
    unsigned long requests = 0, bytes = 0, bad = 0;
    uint8_t index;
    while (recv(kick, &index, 1, 0) == 1) {
        int status = serve(g, index, &bytes);
        if (status < 0) {
            fprintf(stderr, "mpvmm-dev: request of vCPU %u: %s\n", index, strerror(-status));
            return 1;
        }
        requests++;
        bad += status != STATUS_GOOD;
        if (send(kick, &index, 1, 0) != 1)
            break;
    }
    int mapped = maps_guest_memory();
    printf("mpvmm-dev: %lu requests, %lu bytes, %lu refused; guest memory in this process's maps: %s\n", requests,
           bytes, bad, mapped == 0 ? "none" : mapped > 0 ? "YES" : "unknown");
    gmem_close(g);
    return bad == 0 && mapped == 0 ? 0 : 1;
}
