/*
 * ring_wire.h - the ring transport's wire definitions (PROTOCOL.md 5.18, 5.19, 6.2, 10), copied verbatim from
 * proto/gmem_wire.h on main for as long as this tree's copy predates them. Once the trees merge, gmem_wire.h
 * defines GMEM_OP_RING_SETUP and this file contributes nothing: delete it then.
 */
#ifndef GMEM_RING_WIRE_H
#define GMEM_RING_WIRE_H

#include "gmem_wire.h"

#ifndef GMEM_OP_RING_SETUP
#define GMEM_OP_RING_SETUP 18u /* reply carries three fds (SCM_RIGHTS): memfd, submit doorbell, completion doorbell */
#define GMEM_OP_RING_CLOSE 19u
#define GMEM_EV_RING_FAILED 0x81u


#define GMEM_RING_MAX_ENTRIES 4096u            /* entries: a power of two, 1 ... this */
#define GMEM_RING_MAX_DATA_SIZE (64ull << 20)  /* data_size: a multiple of 4096, 4096 ... this */
#define GMEM_RING_MAGIC 0x47524d47u            /* "GMRG" in memory order */
#define GMEM_RING_VERSION 1u
#define GMEM_RING_SQE_SIZE 64u
#define GMEM_RING_CQE_SIZE 32u
#define GMEM_RING_SQ_OFFSET 4096u
#define GMEM_RING_NEED_WAKEUP (1u << 0)        /* server_flags: the poller sleeps; ring the submit doorbell */
#define GMEM_RING_WANT_WAKEUP (1u << 0)        /* client_flags: the client sleeps; ring the completion doorbell */

struct GMEM_PACKED gmem_ring_setup_request {
    uint32_t entries;
    uint32_t flags;     /* 0 */
    uint64_t data_size;
};

struct GMEM_PACKED gmem_ring_setup_reply {
    uint32_t ring_id;
    uint32_t entries;
    uint64_t data_size;
    uint64_t mmap_size; /* map this many bytes of the memfd, MAP_SHARED, PROT_READ | PROT_WRITE */
};

struct GMEM_PACKED gmem_ring_close_request {
    uint32_t ring_id;
    uint32_t flags;     /* 0 */
};

struct GMEM_PACKED gmem_ring_failed_event {
    uint32_t ring_id;
    int32_t status;     /* -GMEM_EPROTO */
    uint64_t reserved;
};

/*
 * The ring memfd's first page. Each index word has a cache line of its own. Access the index and flag words with
 * atomic loads and stores (acquire / release), never through plain reads of this struct.
 */
struct GMEM_PACKED gmem_ring_header {
    uint32_t magic;        /* GMEM_RING_MAGIC */
    uint32_t version;      /* GMEM_RING_VERSION */
    uint32_t entries;
    uint32_t sqe_size;     /* GMEM_RING_SQE_SIZE */
    uint32_t cqe_size;     /* GMEM_RING_CQE_SIZE */
    uint32_t ring_id;
    uint64_t sq_offset;    /* 4096 */
    uint64_t cq_offset;    /* sq_offset + round_up(entries * 64, 4096) */
    uint64_t data_offset;  /* cq_offset + round_up(entries * 32, 4096) */
    uint64_t data_size;
    uint8_t pad0[8];
    uint32_t sq_tail;      /* client: next SQ slot to fill (free-running; slot = index & (entries - 1)) */
    uint8_t pad1[60];
    uint32_t sq_head;      /* server: next SQ entry to consume */
    uint8_t pad2[60];
    uint32_t cq_tail;      /* server: next CQ slot to fill */
    uint8_t pad3[60];
    uint32_t cq_head;      /* client: next CQ entry to consume */
    uint8_t pad4[60];
    uint32_t server_flags; /* GMEM_RING_NEED_WAKEUP */
    uint8_t pad5[60];
    uint32_t client_flags; /* GMEM_RING_WANT_WAKEUP; the server clears it when it rings */
    uint8_t pad6[60];
};

/* A submission entry: fields an opcode does not use are 0 (else -EINVAL). */
struct GMEM_PACKED gmem_ring_sqe {
    uint64_t cookie;       /* copied into the completion */
    uint16_t opcode;       /* GMEM_OP_PING, READ, WRITE, GPC_READ, GPC_WRITE, READV, WRITEV, ATOMIC, GPC_ATOMIC */
    uint16_t flags;        /* 0 */
    uint32_t len;          /* bytes; READV / WRITEV: segments */
    uint64_t addr;         /* gpa, or the GPC handle for GPC_* */
    uint64_t data;         /* offset in the data area of the bytes read or written */
    uint64_t aux;          /* READV / WRITEV: offset of the segment table in the data area; GPC_*: window offset */
    uint64_t operand;      /* ATOMIC, GPC_ATOMIC */
    uint64_t expected;     /* ATOMIC, GPC_ATOMIC (CMPXCHG) */
    uint8_t op;            /* GMEM_ATOMIC_* */
    uint8_t width;         /* 1, 2, 4, 8 */
    uint8_t reserved[6];
};

struct GMEM_PACKED gmem_ring_cqe {
    uint64_t cookie;
    int32_t status;        /* 0 or -GMEM_E* */
    uint32_t len;          /* bytes transferred on success */
    uint64_t value;        /* atomics: the old value; partial failure: bytes_completed */
    uint32_t segment;      /* partial failure: the first segment not transferred whole */
    uint32_t segment_bytes;
};


GMEM_ASSERT_SIZE(gmem_ring_setup_request, 16);
GMEM_ASSERT_SIZE(gmem_ring_setup_reply, 24);
GMEM_ASSERT_SIZE(gmem_ring_close_request, 8);
GMEM_ASSERT_SIZE(gmem_ring_failed_event, 16);
GMEM_ASSERT_SIZE(gmem_ring_header, 448);
GMEM_ASSERT_SIZE(gmem_ring_sqe, 64);
GMEM_ASSERT_SIZE(gmem_ring_cqe, 32);
GMEM_ASSERT_FIELD(gmem_ring_header, ring_id, 20);
GMEM_ASSERT_FIELD(gmem_ring_header, data_size, 48);
GMEM_ASSERT_FIELD(gmem_ring_header, sq_tail, 64);
GMEM_ASSERT_FIELD(gmem_ring_header, sq_head, 128);
GMEM_ASSERT_FIELD(gmem_ring_header, cq_tail, 192);
GMEM_ASSERT_FIELD(gmem_ring_header, cq_head, 256);
GMEM_ASSERT_FIELD(gmem_ring_header, server_flags, 320);
GMEM_ASSERT_FIELD(gmem_ring_header, client_flags, 384);
GMEM_ASSERT_FIELD(gmem_ring_sqe, addr, 16);
GMEM_ASSERT_FIELD(gmem_ring_sqe, aux, 32);
GMEM_ASSERT_FIELD(gmem_ring_sqe, op, 56);
GMEM_ASSERT_FIELD(gmem_ring_cqe, value, 16);
GMEM_ASSERT_FIELD(gmem_ring_cqe, segment_bytes, 28);

#endif /* GMEM_OP_RING_SETUP */

#endif /* GMEM_RING_WIRE_H */
