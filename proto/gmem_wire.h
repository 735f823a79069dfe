/*
 * gmem_wire.h - gmemd wire protocol v1 for C (and, through bindgen or by hand, Rust) clients.
 *
 * Normative description: proto/PROTOCOL.md. Golden frames: proto/vectors/frames.txt.
 *
 * Everything on the wire is little-endian. The structs below describe the byte layout of each frame part; on a
 * little-endian host they can be copied to and from the wire directly, on a big-endian host every field must be
 * byte-swapped. Payload structs follow the 16-byte header, so every u64 field is 8-byte aligned within a frame.
 *
 * Rust: mirror each struct as #[repr(C, packed)] with the same field order; the _Static_asserts below are the
 * layout contract.
 *
 * Requires C11 (or C++11). Depends only on <stdint.h> and <stddef.h>.
 */
#ifndef GMEM_WIRE_H
#define GMEM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define GMEM_STATIC_ASSERT(condition, message) static_assert(condition, message)
extern "C" {
#else
#define GMEM_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GMEM_PACKED __attribute__((packed))
#else
#error "gmem_wire.h needs __attribute__((packed)); add your compiler's equivalent"
#endif

/* ---- Constants -------------------------------------------------------------------------------------------- */

#define GMEM_PROTOCOL_VERSION 1u
#define GMEM_HEADER_SIZE 16u
#define GMEM_DEFAULT_MAX_PAYLOAD (1u << 20)

/* Opcodes (header offset 4). Replies carry the opcode of their request. */
#define GMEM_OP_HELLO 1u
#define GMEM_OP_PING 2u
#define GMEM_OP_READ 3u
#define GMEM_OP_WRITE 4u
#define GMEM_OP_GPC_ACTIVATE 5u
#define GMEM_OP_GPC_DEACTIVATE 6u
#define GMEM_OP_GPC_READ 7u
#define GMEM_OP_GPC_WRITE 8u
#define GMEM_OP_GPC_REFRESH 9u
#define GMEM_OP_SET_ATTRIBUTES 10u
#define GMEM_OP_DISCARD 11u
#define GMEM_OP_STATS 12u
#define GMEM_OP_PAGE_STATE 13u
#define GMEM_OP_READV 14u
#define GMEM_OP_WRITEV 15u
#define GMEM_OP_ATOMIC 16u
#define GMEM_OP_GPC_ATOMIC 17u
#define GMEM_OP_RING_SETUP 18u /* reply carries three fds (SCM_RIGHTS): memfd, submit doorbell, completion doorbell */
#define GMEM_OP_RING_CLOSE 19u
#define GMEM_OP_MAP_REGION 20u /* reply carries one fd (SCM_RIGHTS): the guest memfd; only for peers HELLO marks MAY_MAP */
/* Event opcodes. */
#define GMEM_EV_GPC_INVALIDATED 0x80u
#define GMEM_EV_RING_FAILED 0x81u

/* Header flags (offset 6). Requests send 0. */
#define GMEM_FLAG_REPLY (1u << 0)
#define GMEM_FLAG_EVENT (1u << 1)

/* HELLO features. */
#define GMEM_FEATURE_EVENTS (1u << 0)
#define GMEM_FEATURE_DEVICE_OPS (1u << 1) /* READV, WRITEV, ATOMIC, GPC_ATOMIC; HELLO reports max_segments */
#define GMEM_FEATURE_RINGS (1u << 2)      /* RING_SETUP, RING_CLOSE: the shared-memory transport (PROTOCOL.md 10) */

/* The least max_segments a server granting GMEM_FEATURE_DEVICE_OPS reports. */
#define GMEM_MIN_MAX_SEGMENTS 64u

/* ATOMIC and GPC_ATOMIC op codes; width is 1, 2, 4 or 8 and the operand naturally aligned. */
#define GMEM_ATOMIC_LOAD 0u      /* acquire load; reply value = the memory's */
#define GMEM_ATOMIC_STORE 1u     /* release store of operand; reply value = 0 */
#define GMEM_ATOMIC_XCHG 2u      /* reply value = old */
#define GMEM_ATOMIC_CMPXCHG 3u   /* store operand if old == expected; reply value = old */
#define GMEM_ATOMIC_FETCH_ADD 4u /* wrapping; reply value = old */
#define GMEM_ATOMIC_FETCH_OR 5u
#define GMEM_ATOMIC_FETCH_AND 6u

/* HELLO reply region_flags. */
#define GMEM_REGION_NO_DIRECT_MAP (1u << 0)
#define GMEM_REGION_SECRETMEM (1u << 1)
#define GMEM_REGION_READ_ONLY (1u << 2)
#define GMEM_REGION_RECOVERED (1u << 3)
#define GMEM_REGION_MAY_MAP (1u << 4) /* this connection may send MAP_REGION */

/* SET_ATTRIBUTES attributes: only PRIVATE exists; any other bit is -EINVAL. */
#define GMEM_ATTRIBUTE_PRIVATE (1ull << 3)

/* PAGE_STATE entry state bits. */
#define GMEM_PAGE_PRIVATE (1u << 0)
#define GMEM_PAGE_ACCESSIBLE (1u << 1)

/* GPC_INVALIDATED reasons. */
#define GMEM_INVALIDATED_ATTRIBUTES_CHANGED 1u
#define GMEM_INVALIDATED_DISCARDED 2u

/*
 * Error numbers, as positive Linux values: a reply status is 0 or -GMEM_E*. The wire fixes the Linux numbering
 * on every platform, so do not compare statuses with the host's <errno.h> elsewhere.
 */
#define GMEM_EPERM 1
#define GMEM_ENOENT 2
#define GMEM_EIO 5
#define GMEM_EBADF 9
#define GMEM_EAGAIN 11
#define GMEM_ENOMEM 12
#define GMEM_EACCES 13
#define GMEM_EFAULT 14
#define GMEM_EBUSY 16
#define GMEM_EEXIST 17
#define GMEM_EINVAL 22
#define GMEM_ENOSPC 28
#define GMEM_ERANGE 34
#define GMEM_EPROTO 71
#define GMEM_EMSGSIZE 90
#define GMEM_EPROTONOSUPPORT 93
#define GMEM_EOPNOTSUPP 95
#define GMEM_ECONNRESET 104
#define GMEM_ESHUTDOWN 108
#define GMEM_ETIMEDOUT 110
#define GMEM_EALREADY 114
#define GMEM_ESTALE 116

/* ---- Frame header ----------------------------------------------------------------------------------------- */

/* Starts every frame. length counts the whole frame: 16 <= length <= 16 + max_payload. */
struct GMEM_PACKED gmem_header {
    uint32_t length;
    uint16_t opcode;
    uint16_t flags;  /* 0 in requests, GMEM_FLAG_REPLY in replies, GMEM_FLAG_EVENT in events */
    uint32_t id;     /* chosen by the client, echoed in the reply, 0 in events */
    int32_t status;  /* 0 in requests and events; 0 or -GMEM_E* in replies */
};

/* ---- Request payloads ------------------------------------------------------------------------------------- */

struct GMEM_PACKED gmem_hello_request {
    uint32_t version;  /* GMEM_PROTOCOL_VERSION */
    uint32_t features; /* GMEM_FEATURE_* requested */
};

/* PING: any payload, echoed back. STATS: empty payload. */

struct GMEM_PACKED gmem_read_request {
    uint64_t gpa;
    uint32_t len;
    uint32_t flags; /* 0 */
};

/* Followed by len data bytes: the payload is exactly 16 + len bytes. */
struct GMEM_PACKED gmem_write_request {
    uint64_t gpa;
    uint32_t len;
    uint32_t flags; /* 0 */
    uint8_t data[];
};

struct GMEM_PACKED gmem_gpc_activate_request {
    uint64_t gpa;
    uint32_t len;
    uint32_t flags; /* 0 */
};

struct GMEM_PACKED gmem_gpc_deactivate_request {
    uint64_t handle;
};

struct GMEM_PACKED gmem_gpc_read_request {
    uint64_t handle;
    uint32_t offset;
    uint32_t len;
};

/* Followed by len data bytes: the payload is exactly 16 + len bytes. */
struct GMEM_PACKED gmem_gpc_write_request {
    uint64_t handle;
    uint32_t offset;
    uint32_t len;
    uint8_t data[];
};

struct GMEM_PACKED gmem_gpc_refresh_request {
    uint64_t handle;
    uint64_t gpa;
    uint32_t len;
    uint32_t flags; /* 0 */
};

struct GMEM_PACKED gmem_set_attributes_request {
    uint64_t gpa;
    uint64_t size;
    uint64_t attributes; /* 0 or GMEM_ATTRIBUTE_PRIVATE */
};

struct GMEM_PACKED gmem_discard_request {
    uint64_t gpa;
    uint64_t size;
};

struct GMEM_PACKED gmem_page_state_request {
    uint64_t gpa; /* page-aligned */
    uint32_t npages;
    uint32_t flags; /* 0 */
};

/* One entry of a READV or WRITEV segment table. */
struct GMEM_PACKED gmem_segment {
    uint64_t gpa;
    uint32_t len;
    uint32_t reserved; /* 0 */
};

/* READV: followed by nsegs gmem_segment entries. WRITEV: the entries, then the segments' bytes back to back. */
struct GMEM_PACKED gmem_readv_request {
    uint32_t nsegs;
    uint32_t flags; /* 0 */
    struct gmem_segment segments[];
};

struct GMEM_PACKED gmem_atomic_request {
    uint64_t gpa;      /* naturally aligned for width */
    uint64_t operand;  /* 0 for LOAD; no bit above width bytes */
    uint64_t expected; /* CMPXCHG only, else 0 */
    uint8_t op;        /* GMEM_ATOMIC_* */
    uint8_t width;     /* 1, 2, 4, 8 */
    uint16_t flags;    /* 0 */
    uint32_t reserved; /* 0 */
};

struct GMEM_PACKED gmem_gpc_atomic_request {
    uint64_t handle;
    uint64_t operand;
    uint64_t expected;
    uint32_t offset; /* from the start of the GPC's window */
    uint8_t op;
    uint8_t width;
    uint16_t flags; /* 0 */
};

/* ---- Reply payloads --------------------------------------------------------------------------------------- */

struct GMEM_PACKED gmem_hello_reply {
    uint32_t version;
    uint32_t features; /* granted: requested & supported */
    uint32_t page_size;
    uint32_t folio_size;
    uint64_t region_size;
    uint64_t region_id;
    uint32_t max_payload;
    uint32_t max_gpcs;
    uint32_t region_flags; /* GMEM_REGION_* */
    uint32_t max_segments; /* with GMEM_FEATURE_DEVICE_OPS granted, else 0 (formerly reserved) */
};

/* READ, GPC_READ: len data bytes. PING: the request's payload. Others: empty, except: */

struct GMEM_PACKED gmem_gpc_activate_reply {
    uint64_t handle;
};

/*
 * STATS reply: a sequence of variable-size entries until the end of the payload, each
 *     uint8_t name_len (1..255); char name[name_len] (printable ASCII, no NUL); uint64_t value (unaligned).
 */
struct GMEM_PACKED gmem_stats_entry_head {
    uint8_t name_len;
    char name[];
};

/* PAGE_STATE reply: npages entries. */
struct GMEM_PACKED gmem_page_state_entry {
    uint16_t refcount; /* saturates at 0xffff */
    uint8_t state;     /* GMEM_PAGE_PRIVATE | GMEM_PAGE_ACCESSIBLE */
    uint8_t reserved;  /* 0 */
};

/* Error reply payload of a READ or WRITE that failed after partial progress. */
struct GMEM_PACKED gmem_partial_progress {
    uint64_t bytes_completed;
};

/* ATOMIC and GPC_ATOMIC reply: the old value, zero-extended (LOAD: the value; STORE: 0). */
struct GMEM_PACKED gmem_atomic_reply {
    uint64_t value;
};

/* Error reply payload of a READV or WRITEV that failed after partial progress. */
struct GMEM_PACKED gmem_vector_progress {
    uint64_t bytes_completed; /* in all, in segment order */
    uint32_t segment;         /* the first segment not transferred whole */
    uint32_t segment_bytes;   /* bytes of that segment transferred */
};

/* Error reply payload of HELLO with -GMEM_EPROTONOSUPPORT. */
struct GMEM_PACKED gmem_version_not_supported {
    uint32_t highest_version;
};

/* ---- Event payloads --------------------------------------------------------------------------------------- */

/* Opcode GMEM_EV_GPC_INVALIDATED, flags GMEM_FLAG_EVENT, id 0, status 0. */
struct GMEM_PACKED gmem_gpc_invalidated_event {
    uint64_t handle;
    uint32_t reason; /* GMEM_INVALIDATED_* */
    uint32_t reserved; /* 0 */
};

/* ---- Rings: the shared-memory transport (PROTOCOL.md sections 5.18, 5.19, 6.2 and 10) --------------------- */

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

struct GMEM_PACKED gmem_map_region_request {
    uint32_t flags;     /* 0 */
    uint32_t reserved;  /* 0 */
};

struct GMEM_PACKED gmem_map_region_reply {
    uint64_t mmap_size; /* the region's size: map this many bytes of the memfd, MAP_SHARED */
    uint64_t region_id; /* HELLO's region_id */
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


/* ---- Layout contract -------------------------------------------------------------------------------------- */

#define GMEM_ASSERT_FIELD(type, field, offset) \
    GMEM_STATIC_ASSERT(offsetof(struct type, field) == (offset), #type "." #field " must be at offset " #offset)
#define GMEM_ASSERT_SIZE(type, size) \
    GMEM_STATIC_ASSERT(sizeof(struct type) == (size), "sizeof(struct " #type ") must be " #size)

GMEM_ASSERT_SIZE(gmem_header, 16);
GMEM_ASSERT_FIELD(gmem_header, length, 0);
GMEM_ASSERT_FIELD(gmem_header, opcode, 4);
GMEM_ASSERT_FIELD(gmem_header, flags, 6);
GMEM_ASSERT_FIELD(gmem_header, id, 8);
GMEM_ASSERT_FIELD(gmem_header, status, 12);

GMEM_ASSERT_SIZE(gmem_hello_request, 8);
GMEM_ASSERT_SIZE(gmem_read_request, 16);
GMEM_ASSERT_SIZE(gmem_write_request, 16);
GMEM_ASSERT_SIZE(gmem_gpc_activate_request, 16);
GMEM_ASSERT_SIZE(gmem_gpc_deactivate_request, 8);
GMEM_ASSERT_SIZE(gmem_gpc_read_request, 16);
GMEM_ASSERT_SIZE(gmem_gpc_write_request, 16);
GMEM_ASSERT_SIZE(gmem_gpc_refresh_request, 24);
GMEM_ASSERT_SIZE(gmem_set_attributes_request, 24);
GMEM_ASSERT_SIZE(gmem_discard_request, 16);
GMEM_ASSERT_SIZE(gmem_page_state_request, 16);
GMEM_ASSERT_SIZE(gmem_hello_reply, 48);
GMEM_ASSERT_SIZE(gmem_gpc_activate_reply, 8);
GMEM_ASSERT_SIZE(gmem_stats_entry_head, 1);
GMEM_ASSERT_SIZE(gmem_page_state_entry, 4);
GMEM_ASSERT_SIZE(gmem_partial_progress, 8);
GMEM_ASSERT_SIZE(gmem_version_not_supported, 4);
GMEM_ASSERT_SIZE(gmem_gpc_invalidated_event, 16);
GMEM_ASSERT_SIZE(gmem_segment, 16);
GMEM_ASSERT_SIZE(gmem_readv_request, 8);
GMEM_ASSERT_SIZE(gmem_atomic_request, 32);
GMEM_ASSERT_SIZE(gmem_gpc_atomic_request, 32);
GMEM_ASSERT_SIZE(gmem_atomic_reply, 8);
GMEM_ASSERT_SIZE(gmem_vector_progress, 16);
GMEM_ASSERT_SIZE(gmem_ring_setup_request, 16);
GMEM_ASSERT_SIZE(gmem_ring_setup_reply, 24);
GMEM_ASSERT_SIZE(gmem_ring_close_request, 8);
GMEM_ASSERT_SIZE(gmem_map_region_request, 8);
GMEM_ASSERT_SIZE(gmem_map_region_reply, 16);
GMEM_ASSERT_SIZE(gmem_ring_failed_event, 16);
GMEM_ASSERT_SIZE(gmem_ring_header, 448);
GMEM_ASSERT_SIZE(gmem_ring_sqe, 64);
GMEM_ASSERT_SIZE(gmem_ring_cqe, 32);

GMEM_ASSERT_FIELD(gmem_hello_reply, region_size, 16);
GMEM_ASSERT_FIELD(gmem_hello_reply, max_payload, 32);
GMEM_ASSERT_FIELD(gmem_hello_reply, max_segments, 44);
GMEM_ASSERT_FIELD(gmem_readv_request, segments, 8);
GMEM_ASSERT_FIELD(gmem_atomic_request, op, 24);
GMEM_ASSERT_FIELD(gmem_gpc_atomic_request, offset, 24);
GMEM_ASSERT_FIELD(gmem_gpc_atomic_request, op, 28);
GMEM_ASSERT_FIELD(gmem_write_request, data, 16);
GMEM_ASSERT_FIELD(gmem_gpc_write_request, data, 16);
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

#ifdef __cplusplus
}
#endif

#endif /* GMEM_WIRE_H */
