/*
 * connect.c - opening and closing a connection: the default socket path, HELLO, the event fd; PING.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* Exactly gmemctl's resolution (Sources/GmemCommandLine/SocketPath.swift), so both meet without configuration. */
static int default_path(char *out, size_t size)
{
    const char *explicit = getenv("GMEMD_SOCKET");
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    int n;
    if (explicit && *explicit)
        n = snprintf(out, size, "%s", explicit);
    else if (runtime && *runtime)
        n = snprintf(out, size, "%s/gmemd.sock", runtime);
    else
        n = snprintf(out, size, "%s", getuid() == 0 ? "/run/gmemd/gmemd.sock" : "./gmemd.sock");
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int hello(struct gmem *g)
{
    struct gmem_hello_request req = {
        .version = htole32(GMEM_PROTOCOL_VERSION),
        .features = htole32(GMEM_FEATURE_EVENTS | GMEM_FEATURE_DEVICE_OPS | GMEM_FEATURE_RINGS),
    };
    struct gmem_hello_reply rep;
    struct gmem_reply r = { .data = &rep, .len = sizeof rep, .err_len = sizeof(struct gmem_version_not_supported) };
    struct iovec iov = { &req, sizeof req };
    int status = gmem_call(g, GMEM_OP_HELLO, &iov, 1, &r);
    if (status < 0)
        return status;

    struct gmem_info *i = &g->info;
    i->version = le32toh(rep.version);
    i->features = le32toh(rep.features) & (GMEM_FEATURE_EVENTS | GMEM_FEATURE_DEVICE_OPS | GMEM_FEATURE_RINGS);
    i->page_size = le32toh(rep.page_size);
    i->folio_size = le32toh(rep.folio_size);
    i->region_size = le64toh(rep.region_size);
    i->region_id = le64toh(rep.region_id);
    i->max_payload = le32toh(rep.max_payload);
    i->max_gpcs = le32toh(rep.max_gpcs);
    i->region_flags = le32toh(rep.region_flags);
    i->max_segments = le32toh(rep.max_segments);
    /* Later bounds checks rely on these; a daemon that reports nonsense is not spoken to. */
    if (i->version != GMEM_PROTOCOL_VERSION || i->page_size == 0 || (i->page_size & (i->page_size - 1)) ||
        i->max_payload < 4096)
        return -EPROTO;
    return 0;
}

GMEM_EXPORT struct gmem *gmem_connect(const char *socket_path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int err;
    if (socket_path) {
        if (strlen(socket_path) >= sizeof addr.sun_path) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        strcpy(addr.sun_path, socket_path);
    } else if ((err = default_path(addr.sun_path, sizeof addr.sun_path)) < 0) {
        errno = -err;
        return NULL;
    }

    struct gmem *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->fd = g->evfd = g->epfd = -1;
    g->next_id = 1;
    g->info.max_payload = GMEM_DEFAULT_MAX_PAYLOAD; /* bounds the HELLO reply until it tells the real one */

    g->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->fd < 0)
        goto fail_errno;
    if (connect(g->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        goto fail_errno;
    g->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g->evfd < 0 || g->epfd < 0)
        goto fail_errno;
    struct epoll_event ev = { .events = EPOLLIN };
    if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->evfd, &ev) < 0 || epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->fd, &ev) < 0)
        goto fail_errno;

    err = hello(g);
    if (err < 0) {
        gmem_close(g);
        errno = -err;
        return NULL;
    }
    return g;

fail_errno:
    err = errno;
    gmem_close(g);
    errno = err;
    return NULL;
}

GMEM_EXPORT void gmem_close(struct gmem *g)
{
    if (!g)
        return;
    gmem_rings_detach(g);
    for (unsigned i = 0; i < g->rx.nfds; i++)
        close(g->rx.fds[i]);
    if (g->epfd >= 0)
        close(g->epfd);
    if (g->evfd >= 0)
        close(g->evfd);
    if (g->fd >= 0)
        close(g->fd);
    free(g->evq);
    free(g);
}

GMEM_EXPORT int gmem_info(struct gmem *g, struct gmem_info *out)
{
    *out = g->info;
    return 0;
}

GMEM_EXPORT ssize_t gmem_echo(struct gmem *g, const void *data, size_t len, void *echo)
{
    if (len && (!data || !echo))
        return -EINVAL;
    if (!gmem_fits(g, len))
        return -EMSGSIZE;
    struct gmem_reply r = { .data = echo, .len = len };
    struct iovec iov = { (void *)data, len };
    int status = gmem_call(g, GMEM_OP_PING, &iov, 1, &r);
    return status < 0 ? status : (ssize_t)len;
}

GMEM_EXPORT int gmem_ping(struct gmem *g)
{
    ssize_t r = gmem_echo(g, NULL, 0, NULL);
    return r < 0 ? (int)r : 0;
}
