/*
 * gmem-hexdump - print guest memory as a hex dump.
 *
 *   gmem-hexdump [--socket PATH] GPA LEN
 *
 * GPA and LEN take decimal or 0x hex. Without --socket, the default socket gmemctl uses. Reads in chunks of
 * max_payload, one request each.
 */
#include <errno.h>
#include <gmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: gmem-hexdump [--socket PATH] GPA LEN\n");
    return 2;
}

static int number(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return errno || !*s || *end ? -1 : 0;
}

static void dump_line(uint64_t gpa, const uint8_t *p, size_t n)
{
    printf("%016llx ", (unsigned long long)gpa);
    for (size_t i = 0; i < 16; i++) {
        if (i == 8)
            putchar(' ');
        if (i < n)
            printf(" %02x", p[i]);
        else
            printf("   ");
    }
    printf("  |");
    for (size_t i = 0; i < n; i++)
        putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.');
    printf("|\n");
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--socket") == 0) {
        socket_path = argv[a + 1];
        a += 2;
    }
    uint64_t gpa, len;
    if (argc - a != 2 || number(argv[a], &gpa) < 0 || number(argv[a + 1], &len) < 0)
        return usage();

    struct gmem *g = gmem_connect(socket_path);
    if (!g) {
        fprintf(stderr, "gmem-hexdump: connect: %s\n", strerror(errno));
        return 1;
    }
    struct gmem_info info;
    gmem_info(g, &info);
    size_t chunk = info.max_payload - info.max_payload % 16; /* whole lines per chunk */
    uint8_t *buf = malloc(chunk);
    int status = buf ? 0 : 1;
    for (uint64_t done = 0; status == 0 && done < len;) {
        size_t n = len - done < chunk ? (size_t)(len - done) : chunk;
        ssize_t r = gmem_read(g, gpa + done, buf, n);
        if (r < 0) {
            fprintf(stderr, "gmem-hexdump: read 0x%llx+%zu: %s\n", (unsigned long long)(gpa + done), n,
                    strerror((int)-r));
            status = 1;
            break;
        }
        for (size_t off = 0; off < n; off += 16)
            dump_line(gpa + done + off, buf + off, n - off < 16 ? n - off : 16);
        done += n;
    }
    free(buf);
    gmem_close(g);
    return status;
}
