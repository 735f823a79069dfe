/*
 * frame.c - frames on the socket: send a request, receive frames (replies and events), match a reply to its
 * request. Every frame from the daemon is checked before it is trusted (PROTOCOL.md 3: length first).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

enum { RX_EVENT, RX_REPLY };

int gmem_fail(struct gmem *g, int err)
{
    if (!g->dead) {
        g->dead = err;
        /* Wakes pollers of the event fd (the socket reads EOF) and tells the daemon we are gone. */
        shutdown(g->fd, SHUT_RDWR);
    }
    return -g->dead;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* Sends every byte of iov; the iovec array is consumed. MSG_NOSIGNAL: a dead daemon is -EPIPE, not SIGPIPE. */
static int send_all(struct gmem *g, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t n = sendmsg(g->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (n > 0) {
            if ((size_t)n >= iov->iov_len) {
                n -= (ssize_t)iov->iov_len;
                iov++;
                iovcnt--;
            } else {
                iov->iov_base = (uint8_t *)iov->iov_base + n;
                iov->iov_len -= (size_t)n;
                n = 0;
            }
        }
    }
    return 0;
}

/*
 * One recvmsg of at most len bytes. Descriptors are always accepted (with MSG_CMSG_CLOEXEC), because a plain
 * read of the first byte of a RING_SETUP reply would discard them; they are kept with the frame and closed
 * unless its reply asks for them. Returns bytes read, -EAGAIN (nonblock only), or -errno.
 */
static ssize_t rx_read(struct gmem *g, void *buf, size_t len, bool nonblock)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(GMEM_MAX_RX_FDS * sizeof(int))];
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    for (;;) {
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf
        };
        ssize_t n = recvmsg(g->fd, &msg, MSG_CMSG_CLOEXEC | (nonblock ? MSG_DONTWAIT : 0));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -EAGAIN;
            return -errno;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfds; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (g->rx.nfds < GMEM_MAX_RX_FDS)
                    g->rx.fds[g->rx.nfds++] = fd;
                else
                    close(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC)
            return -EPROTO; /* more descriptors than any frame carries */
        if (n == 0)
            return -ECONNRESET; /* the daemon closed the connection or died */
        return n;
    }
}

/* A header has arrived: check it and decide where its payload goes. */
static int rx_begin(struct gmem *g, struct gmem_reply *reply, uint32_t id, uint16_t opcode)
{
    struct gmem_rx *rx = &g->rx;
    struct gmem_header *h = &rx->hdr;
    h->length = le32toh(h->length);
    h->opcode = le16toh(h->opcode);
    h->flags = le16toh(h->flags);
    h->id = le32toh(h->id);
    h->status = (int32_t)le32toh((uint32_t)h->status);

    if (h->length < GMEM_HEADER_SIZE || h->length - GMEM_HEADER_SIZE > g->info.max_payload)
        return -EPROTO;
    rx->payload_len = h->length - GMEM_HEADER_SIZE;
    rx->payload_got = 0;

    if (h->flags == GMEM_FLAG_EVENT) {
        if (h->id != 0 || h->status != 0)
            return -EPROTO;
        /* Known events are 16 bytes; an unknown one is skipped whatever its size. */
        rx->dest = rx->payload_len <= sizeof rx->scratch ? rx->scratch : NULL;
        return 0;
    }
    if (h->flags != GMEM_FLAG_REPLY || !reply || h->id != id || h->opcode != opcode)
        return -EPROTO; /* a reply nobody asked for, or not the one we wait for: requests are answered in order */
    if (h->status == 0) {
        if (reply->variable ? rx->payload_len > reply->len : rx->payload_len != reply->len)
            return -EPROTO;
        rx->dest = reply->data;
        return 0;
    }
    if (h->status > 0 || h->status < -4095)
        return -EPROTO;
    /* Error replies are empty except the few PROTOCOL.md 3 lists; the caller says which one it allows. */
    if (rx->payload_len != 0 && rx->payload_len != reply->err_len)
        return -EPROTO;
    rx->dest = reply->err;
    return 0;
}

static int rx_event(struct gmem *g)
{
    struct gmem_rx *rx = &g->rx;
    struct gmem_event ev = { .type = rx->hdr.opcode };
    if (rx->hdr.opcode == GMEM_EV_GPC_INVALIDATED) {
        struct gmem_gpc_invalidated_event e;
        if (rx->payload_len != sizeof e)
            return -EPROTO;
        memcpy(&e, rx->scratch, sizeof e);
        ev.handle = le64toh(e.handle);
        ev.reason = le32toh(e.reason);
    } else if (rx->hdr.opcode == GMEM_EVENT_RING_FAILED) {
        /* {u32 ring_id, i32 status, u64 reserved} (PROTOCOL.md 6.2), decoded by offset until this tree's
         * gmem_wire.h carries struct gmem_ring_failed_event. */
        uint32_t ring_id, status;
        if (rx->payload_len != 16)
            return -EPROTO;
        memcpy(&ring_id, rx->scratch, 4);
        memcpy(&status, rx->scratch + 4, 4);
        ev.ring_id = le32toh(ring_id);
        ev.status = (int32_t)le32toh(status);
    }
    gmem_event_push(g, &ev);
    return 0;
}

/*
 * Advances the frame being received. Returns RX_EVENT when an event frame completed (and was queued),
 * RX_REPLY when the reply to (id, opcode) completed (its status in *status), -EAGAIN, or -errno.
 */
static int rx_step(struct gmem *g, struct gmem_reply *reply, uint32_t id, uint16_t opcode, bool nonblock,
                   int *status)
{
    struct gmem_rx *rx = &g->rx;
    while (rx->hdr_got < sizeof rx->hdr) {
        ssize_t n = rx_read(g, (uint8_t *)&rx->hdr + rx->hdr_got, sizeof rx->hdr - rx->hdr_got, nonblock);
        if (n < 0)
            return (int)n;
        rx->hdr_got += (size_t)n;
        if (rx->hdr_got == sizeof rx->hdr) {
            int r = rx_begin(g, reply, id, opcode);
            if (r < 0)
                return r;
        }
    }
    while (rx->payload_got < rx->payload_len) {
        size_t left = rx->payload_len - rx->payload_got;
        uint8_t *p = rx->dest ? rx->dest + rx->payload_got : rx->scratch;
        ssize_t n = rx_read(g, p, rx->dest ? left : (left < sizeof rx->scratch ? left : sizeof rx->scratch),
                            nonblock);
        if (n < 0)
            return (int)n;
        rx->payload_got += (size_t)n;
    }

    /* The frame is complete: start afresh for the next one whatever happens below. */
    rx->hdr_got = 0;
    unsigned nfds = rx->nfds;
    rx->nfds = 0;
    if (rx->hdr.flags == GMEM_FLAG_EVENT) {
        close_fds(rx->fds, nfds);
        int r = rx_event(g);
        return r < 0 ? r : RX_EVENT;
    }
    *status = rx->hdr.status;
    if (rx->hdr.status == 0)
        reply->got = rx->payload_len;
    else
        reply->err_got = rx->payload_len;
    unsigned keep = 0;
    if (reply->fds && rx->hdr.status == 0) {
        keep = nfds < reply->nfds_max ? nfds : reply->nfds_max;
        memcpy(reply->fds, rx->fds, keep * sizeof(int));
    }
    reply->nfds = keep;
    close_fds(rx->fds + keep, nfds - keep);
    return RX_REPLY;
}

int gmem_call(struct gmem *g, uint16_t opcode, const struct iovec *iov, int iovcnt, struct gmem_reply *reply)
{
    if (g->dead)
        return -g->dead;

    struct iovec v[8];
    size_t payload = 0;
    if (iovcnt < 0 || iovcnt > 7)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        payload += iov[i].iov_len;
        v[i + 1] = iov[i];
    }
    if (!gmem_fits(g, payload))
        return -EMSGSIZE; /* the daemon would refuse the frame and close the connection */

    uint32_t id = g->next_id++;
    struct gmem_header h = {
        .length = htole32((uint32_t)(GMEM_HEADER_SIZE + payload)),
        .opcode = htole16(opcode),
        .id = htole32(id),
    };
    v[0] = (struct iovec){ .iov_base = &h, .iov_len = sizeof h };
    int r = send_all(g, v, iovcnt + 1);
    if (r < 0)
        return gmem_fail(g, -r);

    for (;;) {
        int status = 0;
        r = rx_step(g, reply, id, opcode, false, &status);
        if (r < 0)
            return gmem_fail(g, -r);
        if (r == RX_REPLY)
            return status;
    }
}

int gmem_pump_events(struct gmem *g)
{
    if (g->dead)
        return -g->dead;
    for (;;) {
        int status;
        int r = rx_step(g, NULL, 0, 0, true, &status);
        if (r == -EAGAIN)
            return 0;
        if (r < 0)
            return gmem_fail(g, -r);
    }
}
