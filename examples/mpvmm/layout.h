/*
 * layout.h - what the mpvmm guest and its host processes agree on: the guest-physical map, the I/O ports, the
 * split virtqueue (virtio 1.x layout, little-endian) and the block request, the per-vCPU clock, and the disk
 * pattern. Included by the freestanding guest and by the host programs; it uses fixed-width types only and
 * asserts every size both sides depend on.
 */
#ifndef MPVMM_LAYOUT_H
#define MPVMM_LAYOUT_H

#include <stdint.h>

/* ---- Guest-physical map ------------------------------------------------------------------------------------ */

#define MPVMM_GUEST_LOAD 0x1000u     /* the flat guest image, entered in 64-bit mode at CPL 3 */
#define MPVMM_GUEST_MAX 0xf000u      /* its largest size */
#define MPVMM_CONFIG 0x10000u        /* struct mpvmm_config: written by the vCPU process before the guest starts */
#define MPVMM_CLOCK 0x11000u         /* one page: struct mpvmm_clock per vCPU, kept current by mpvmm-clock */
#define MPVMM_PAGE_TABLES 0x12000u   /* three pages: the vCPU process's identity map of the first 1 GiB */
#define MPVMM_STACKS 0x20000u        /* vCPU i's stack ends at MPVMM_STACKS + (i + 1) * MPVMM_STACK_SIZE */
#define MPVMM_STACK_SIZE 0x4000u
#define MPVMM_WINDOWS 0x200000u      /* vCPU i's I/O window: MPVMM_WINDOWS + i * MPVMM_WINDOW_SIZE */
#define MPVMM_WINDOW_SIZE 0x200000u  /* its queue page at +0, its data buffers at +MPVMM_DATA */
#define MPVMM_DATA 0x100000u
#define MPVMM_IO_SIZE (MPVMM_DATA + MPVMM_BATCH * MPVMM_MAX_REQUEST) /* what a conversion converts */
#define MPVMM_MAX_VCPUS 8u
#define MPVMM_REGION_MIN (MPVMM_WINDOWS + MPVMM_MAX_VCPUS * MPVMM_WINDOW_SIZE)

/* ---- Ports (one 32-bit OUT each) ------------------------------------------------------------------------- */

#define MPVMM_PORT_KICK 0x10u    /* notify the device of the vCPU's queue; returns once the device answered */
#define MPVMM_PORT_CONVERT 0x11u /* value 0: the vCPU's I/O window to shared, 8: back to private; value | 1: the
                                   clock page instead */
#define MPVMM_PORT_MARK 0x12u    /* a benchmark phase begins (value: the phase) or ends (MPVMM_PHASES) */
#define MPVMM_PORT_DEBUG 0xe9u   /* one character of the result line */
#define MPVMM_PORT_VERDICT 0xf4u /* 0 pass, else fail; the vCPU then halts */

/* ---- The block device's queue: virtio 1.x split virtqueue ------------------------------------------------ */

#define MPVMM_QUEUE_SIZE 64u   /* descriptors and ring entries per queue */
#define MPVMM_BATCH 16u        /* requests the guest makes available before one kick */
#define MPVMM_MAX_REQUEST 0x10000u
#define MPVMM_SECTOR 512u

#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[MPVMM_QUEUE_SIZE];
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len; /* bytes the device wrote into the chain's device-writable buffers */
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[MPVMM_QUEUE_SIZE];
};

/* The queue page, as this guest lays it out. The device does not assume it: it reads the addresses from the
 * config page, as a virtio device reads them from its transport registers, and requires only that the three
 * parts lie in one page (it caches that page with a GPC). */
#define MPVMM_Q_DESC 0x000u
#define MPVMM_Q_AVAIL 0x400u
#define MPVMM_Q_USED 0x800u
#define MPVMM_Q_HEADERS 0xc00u /* struct virtio_blk_req_header per batch slot */
#define MPVMM_Q_STATUS 0xe00u  /* one status byte per batch slot */

/* virtio-blk's request header and status. */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_S_OK 0u
#define VIRTIO_BLK_S_IOERR 1u
#define VIRTIO_BLK_S_UNSUPP 2u

struct virtio_blk_req_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

/* ---- The config page: the guest's "transport registers" and the benchmark's results ------------------------ */

#define MPVMM_MODE_TEST 0u
#define MPVMM_MODE_BENCH 1u
#define MPVMM_MODE_HOSTILE 2u /* malformed chains, buffers outside guest memory, a runaway index */
#define MPVMM_PHASES 4u /* bench: write 4 KiB, read 4 KiB, write 64 KiB, read 64 KiB */

struct mpvmm_queue_config {
    uint64_t desc, avail, used; /* guest-physical; written by the guest before its first kick */
};

struct mpvmm_phase_result {
    uint64_t requests, bytes, ns; /* ns from the guest's own clock */
};

struct mpvmm_config {
    uint32_t mode;   /* MPVMM_MODE_* */
    uint32_t vcpus;
    uint32_t rounds; /* test: rounds of write and read-back; bench: batches per phase */
    uint32_t reserved;
    struct mpvmm_queue_config queue[MPVMM_MAX_VCPUS];
    struct mpvmm_phase_result result[MPVMM_MAX_VCPUS][MPVMM_PHASES];
};

/* ---- The per-vCPU clock, pvclock style: odd version while mpvmm-clock writes ------------------------------- */

struct mpvmm_clock {
    uint32_t version;
    uint32_t reserved;
    uint64_t ns; /* the host's CLOCK_MONOTONIC at the last update */
    uint64_t pad[2];
};

/* ---- The disk: vCPU i owns MPVMM_DISK_AREA bytes at i * MPVMM_DISK_AREA -------------------------------------- */

#define MPVMM_DISK_AREA (MPVMM_BATCH * MPVMM_MAX_REQUEST)
#define MPVMM_FINAL_SEED 0x600dd15cu

/* The 32-bit word the guest writes at word `word` of the disk in a round with this seed. */
static inline uint32_t mpvmm_pattern(uint32_t word, uint32_t seed)
{
    uint32_t x = word * 0x9e3779b1u ^ seed;
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    return x ^ x >> 12;
}

_Static_assert(sizeof(struct virtq_desc) == 16, "virtio's descriptor is 16 bytes");
_Static_assert(sizeof(struct virtq_avail) == 4 + 2 * MPVMM_QUEUE_SIZE, "avail ring without used_event");
_Static_assert(sizeof(struct virtq_used) == 4 + 8 * MPVMM_QUEUE_SIZE, "used ring without avail_event");
_Static_assert(sizeof(struct virtio_blk_req_header) == 16, "virtio-blk's header is 16 bytes");
_Static_assert(MPVMM_Q_DESC + MPVMM_QUEUE_SIZE * 16 <= MPVMM_Q_AVAIL, "descriptors overlap the avail ring");
_Static_assert(MPVMM_Q_AVAIL + sizeof(struct virtq_avail) <= MPVMM_Q_USED, "avail ring overlaps the used ring");
_Static_assert(MPVMM_Q_USED + sizeof(struct virtq_used) <= MPVMM_Q_HEADERS, "used ring overlaps the headers");
_Static_assert(MPVMM_Q_HEADERS + MPVMM_BATCH * 16 <= MPVMM_Q_STATUS, "headers overlap the status bytes");
_Static_assert(MPVMM_BATCH * 4 <= MPVMM_QUEUE_SIZE, "a batch of chains of up to 4 descriptors fits the queue");
_Static_assert(sizeof(struct mpvmm_config) <= 0x1000, "the config fits its page");
_Static_assert(MPVMM_MAX_VCPUS * sizeof(struct mpvmm_clock) <= 0x1000, "every vCPU's clock on one page");
_Static_assert(MPVMM_IO_SIZE <= MPVMM_WINDOW_SIZE, "the I/O buffers fit the window");

#endif /* MPVMM_LAYOUT_H */
