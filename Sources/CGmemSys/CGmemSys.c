#define _GNU_SOURCE
#include "CGmemSys.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
