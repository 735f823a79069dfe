#define _GNU_SOURCE
#include "CGmemSys.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

const unsigned int CGMEM_MFD_CLOEXEC = MFD_CLOEXEC;
const unsigned int CGMEM_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
const int CGMEM_F_SEAL_SEAL = F_SEAL_SEAL;
const int CGMEM_F_SEAL_SHRINK = F_SEAL_SHRINK;
const int CGMEM_F_SEAL_GROW = F_SEAL_GROW;
const int CGMEM_F_SEAL_WRITE = F_SEAL_WRITE;
const int CGMEM_SO_PEERCRED = SO_PEERCRED;
const int CGMEM_SO_PEERGROUPS = SO_PEERGROUPS;
_Static_assert(sizeof(cgmem_ucred) == sizeof(struct ucred), "ucred layout");

int cgmem_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

int cgmem_memfd_secret(unsigned int flags) { return (int)syscall(SYS_memfd_secret, flags); }

int cgmem_add_seals(int fd, int seals) { return fcntl(fd, F_ADD_SEALS, seals); }

int cgmem_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }

int cgmem_punch_hole(int fd, off_t offset, off_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

int cgmem_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

long cgmem_send_with_fds(int socket, const void *bytes, unsigned long length, const int *fds, unsigned count) {
    if (count == 0 || count > 8) {
        errno = EINVAL;
        return -1;
    }
    union {
        char buffer[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = CMSG_SPACE(count * sizeof(int))};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(header), fds, count * sizeof(int));
    return sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
}

long cgmem_receive_with_fds(int socket, void *bytes, unsigned long length, int *fds, unsigned capacity,
                            unsigned *received) {
    union {
        char buffer[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof(control.buffer)};
    *received = 0;
    long count = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (count < 0) return count;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        unsigned n = (unsigned)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(header);
        for (unsigned i = 0; i < n; i++) {
            // Never leak what the peer sent beyond our room.
            if (*received < capacity) fds[(*received)++] = data[i];
            else close(data[i]);
        }
    }
    return count;
}

int cgmem_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

unsigned long long cgmem_socket_cookie(int socket) {
    unsigned long long cookie = 0;
    socklen_t length = sizeof(cookie);
    if (getsockopt(socket, SOL_SOCKET, 57 /* SO_COOKIE */, &cookie, &length) != 0) return 0;
    return cookie;
}

int cgmem_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cgmem_epoll_add(int epoll, int fd, unsigned long long data) {
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = data};
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int cgmem_epoll_remove(int epoll, int fd) { return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL); }

int cgmem_epoll_wait(int epoll, unsigned long long *data, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epoll, events, capacity, timeout_ms);
    for (int i = 0; i < count; i++) data[i] = events[i].data.u64;
    return count;
}
