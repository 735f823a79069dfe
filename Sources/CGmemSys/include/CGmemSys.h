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

/// Atomic operations on guest memory, as real instructions on the shared
/// mapping, so they are atomic with respect to the guest's vCPUs and to every
/// other process that maps the memfd. They live in C rather than Swift:
/// Synchronization's `Atomic` cannot be placed over memory it does not own,
/// and swift-atomics (not a dependency) would need its storage type bound
/// over the raw mapping at each width; the `__atomic` builtins take any
/// naturally aligned address and are exactly what a C or Rust peer uses on the
/// other side of the memfd. `static inline` so Swift inlines them.
///
/// The codes match the wire's ATOMIC `op` field (proto/PROTOCOL.md).
enum {
    CGMEM_ATOMIC_LOAD = 0,       ///< acquire load; returns the value
    CGMEM_ATOMIC_STORE = 1,      ///< release store; returns 0 (use XCHG for the old value)
    CGMEM_ATOMIC_XCHG = 2,       ///< returns the old value
    CGMEM_ATOMIC_CMPXCHG = 3,    ///< stores `operand` if the value is `expected`; returns the old value
    CGMEM_ATOMIC_FETCH_ADD = 4,  ///< wrapping add; returns the old value
    CGMEM_ATOMIC_FETCH_OR = 5,
    CGMEM_ATOMIC_FETCH_AND = 6,
};

#define CGMEM_ATOMIC_AT_WIDTH(type, address, op, operand, expected)                                      \
    do {                                                                                                 \
        volatile type *p = (volatile type *)(address);                                                   \
        type value = (type)(operand);                                                                    \
        switch (op) {                                                                                    \
        case CGMEM_ATOMIC_LOAD: return __atomic_load_n(p, __ATOMIC_ACQUIRE);                             \
        case CGMEM_ATOMIC_STORE: __atomic_store_n(p, value, __ATOMIC_RELEASE); return 0;                 \
        case CGMEM_ATOMIC_XCHG: return __atomic_exchange_n(p, value, __ATOMIC_SEQ_CST);                  \
        case CGMEM_ATOMIC_CMPXCHG: {                                                                     \
            type old = (type)(expected);                                                                 \
            __atomic_compare_exchange_n(p, &old, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);          \
            return old;                                                                                  \
        }                                                                                                \
        case CGMEM_ATOMIC_FETCH_ADD: return __atomic_fetch_add(p, value, __ATOMIC_SEQ_CST);              \
        case CGMEM_ATOMIC_FETCH_OR: return __atomic_fetch_or(p, value, __ATOMIC_SEQ_CST);                \
        case CGMEM_ATOMIC_FETCH_AND: return __atomic_fetch_and(p, value, __ATOMIC_SEQ_CST);              \
        default: return 0;                                                                               \
        }                                                                                                \
    } while (0)

/// Runs atomic operation `op` on the naturally aligned `width`-byte (1, 2, 4
/// or 8) value at `address` and returns the old value, zero-extended. The
/// caller has checked `op`, `width` and the alignment, and keeps the page
/// accessible for the duration.
static inline uint64_t cgmem_atomic(volatile void *address, unsigned width, unsigned op, uint64_t operand,
                                    uint64_t expected) {
    switch (width) {
    case 1: CGMEM_ATOMIC_AT_WIDTH(uint8_t, address, op, operand, expected);
    case 2: CGMEM_ATOMIC_AT_WIDTH(uint16_t, address, op, operand, expected);
    case 4: CGMEM_ATOMIC_AT_WIDTH(uint32_t, address, op, operand, expected);
    case 8: CGMEM_ATOMIC_AT_WIDTH(uint64_t, address, op, operand, expected);
    default: return 0;
    }
}


/// The words of a ring's header that both processes write (PROTOCOL.md
/// section 10.5): an acquire load, a release store, a sequentially consistent
/// exchange and a full fence. The other side is another process, so the
/// ordering must be the hardware's, through the same builtins C clients use.
static inline uint32_t cgmem_load_acquire_u32(const volatile void *address) {
    return __atomic_load_n((const volatile uint32_t *)address, __ATOMIC_ACQUIRE);
}
static inline void cgmem_store_release_u32(volatile void *address, uint32_t value) {
    __atomic_store_n((volatile uint32_t *)address, value, __ATOMIC_RELEASE);
}
static inline uint32_t cgmem_exchange_u32(volatile void *address, uint32_t value) {
    return __atomic_exchange_n((volatile uint32_t *)address, value, __ATOMIC_SEQ_CST);
}
static inline void cgmem_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/// sendmsg(2) of `length` bytes with one SCM_RIGHTS message carrying `count`
/// descriptors (MSG_NOSIGNAL | MSG_DONTWAIT). Returns the bytes sent or -1
/// with errno set. The CMSG_* macros are not visible to Swift.
long cgmem_send_with_fds(int socket, const void *bytes, unsigned long length, const int *fds, unsigned count);

/// recvmsg(2) into `bytes` with room for up to `capacity` SCM_RIGHTS
/// descriptors (MSG_CMSG_CLOEXEC). Stores how many arrived in `*received`;
/// descriptors beyond `capacity` are closed. Returns the bytes read or -1.
long cgmem_receive_with_fds(int socket, void *bytes, unsigned long length, int *fds, unsigned capacity,
                            unsigned *received);

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK. Returns an fd or -1.
int cgmem_eventfd(void);

/// The socket's SO_COOKIE, a number the kernel never reuses while it runs, or
/// 0 if the call fails. Lets gmemd find which descriptor of its own is the
/// socket of a channel SwiftNIO accepted (NIO does not expose it).
unsigned long long cgmem_socket_cookie(int socket);


/// epoll(7), which the Glibc module Swift imports does not include. Level
/// triggered, EPOLLIN only; `data` comes back from cgmem_epoll_wait.
int cgmem_epoll_create(void);
int cgmem_epoll_add(int epoll, int fd, unsigned long long data);
int cgmem_epoll_remove(int epoll, int fd);
/// Waits up to `timeout_ms` (-1: forever) and stores the `data` of up to
/// `capacity` ready descriptors. Returns their number, or -1 with errno set.
int cgmem_epoll_wait(int epoll, unsigned long long *data, int capacity, int timeout_ms);

#endif
