/*
 * dev.h - mpvmm-dev's state: the device, its queues, and one request as a descriptor chain describes it. The
 * queue side (virtq.c) finds and checks requests and publishes their completion; the block side (mpvmm-dev.c)
 * carries them out.
 */
#ifndef MPVMM_DEV_H
#define MPVMM_DEV_H

#include <stdint.h>

#include "io.h"
#include "layout.h"

enum { MAX_CHAIN = 8, PAGE = 4096 }; /* descriptors in one chain at most; the queue page */

struct queue {
    int ready, broken;
    struct io_page page;                   /* the page holding the descriptors and both rings */
    uint32_t desc_offset, avail_offset, used_offset;
    uint16_t next;                         /* the next available entry to serve == the used index */
};

struct device {
    struct io io;
    int disk;
    uint64_t disk_size;
    struct queue queues[MPVMM_MAX_VCPUS];
    unsigned long requests, reads, writes, flushes, bytes, failed;
    int batch_phase; /* the benchmark phase (layout.h) the last batch served belongs to, or -1 */
    struct {
        unsigned long batches;
        uint64_t ns;
    } phases[MPVMM_PHASES]; /* time spent serving each phase's batches: the transport's share of a request */
};

/* One request as the chain describes it, after the checks. */
struct request {
    uint16_t head;
    struct gmem_iov header, data[MAX_CHAIN + 1], status;
    unsigned data_count;
    int data_writable;
    uint32_t data_len;
    struct virtio_blk_req_header h;
    uint8_t status_value;
    int malformed;          /* the chain broke a rule: UNSUPP, and no buffer of it is touched */
    unsigned header_slot;   /* its header's place in the batch's READV of headers */
    int header_read;        /* gmemd read its header (the guest may name memory outside the region) */
    int scattered;          /* a read whose data and status byte go in the batch's WRITEV */
    unsigned segment_count; /* of data[] to transfer: the data, and for a read its status byte after it */
    uint8_t *buffer;        /* its bytes in the device's batch buffer */
    int ok;                 /* its transfer through gmemd succeeded */
    int status_written;     /* a read wrote its status byte with its data */
    uint32_t used_len;      /* what the used element reports when status_written */
};

/* virtq.c */
int queue_setup(struct device *d, struct queue *q, unsigned index);
int serve(struct device *d, struct queue *q);

/* mpvmm-dev.c: carries out a batch of parsed chains and writes their status bytes; sets each request's status and
 * used length. Returns 0, or a negative errno when the connection to gmemd failed. */
int execute(struct device *d, struct request *requests, unsigned count);

#endif /* MPVMM_DEV_H */
