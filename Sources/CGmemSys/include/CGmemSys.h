// Thin wrappers for Linux calls that Swift cannot reach directly: variadic
// syscall(2) and fcntl(2), and declarations glibc hides behind _GNU_SOURCE.
#ifndef CGMEMSYS_H
#define CGMEMSYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// memfd_create(2) with the given flags. Returns an fd or -1 with errno set.
int cgmem_memfd_create(const char *name, unsigned int flags);

/// memfd_secret(2). Returns an fd or -1 with errno set (ENOSYS when the kernel
/// lacks it or secretmem is disabled on the command line).
int cgmem_memfd_secret(unsigned int flags);

/// fcntl(F_ADD_SEALS) and fcntl(F_GET_SEALS).
int cgmem_add_seals(int fd, int seals);
int cgmem_get_seals(int fd);

/// fallocate(PUNCH_HOLE | KEEP_SIZE).
int cgmem_punch_hole(int fd, off_t offset, off_t length);

/// The layout of `struct ucred`, which glibc only declares under _GNU_SOURCE.
typedef struct cgmem_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} cgmem_ucred;

/// Room for SO_PEERGROUPS, which fills in the peer's supplementary groups
/// (ascending) and leaves the rest alone; a peer with more groups than this
/// makes getsockopt fail with ERANGE.
#define CGMEM_PEER_GROUPS_MAX 256
typedef struct cgmem_peer_groups {
    gid_t gids[CGMEM_PEER_GROUPS_MAX];
} cgmem_peer_groups;

/// SO_PEERCRED of a connected Unix socket.
int cgmem_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Flags and seals, re-exported as plain constants.
extern const unsigned int CGMEM_MFD_CLOEXEC;
extern const unsigned int CGMEM_MFD_ALLOW_SEALING;
extern const int CGMEM_F_SEAL_SEAL;
extern const int CGMEM_F_SEAL_SHRINK;
extern const int CGMEM_F_SEAL_GROW;
extern const int CGMEM_F_SEAL_WRITE;
extern const int CGMEM_SO_PEERCRED;
extern const int CGMEM_SO_PEERGROUPS;

#endif
