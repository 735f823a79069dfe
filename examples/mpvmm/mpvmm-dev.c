/*
 * mpvmm-dev - the block device of mpvmm, a separate process that never maps guest memory (except with
 * --transport direct, the benchmark's unprotected baseline). It serves one virtio-style split queue per vCPU,
 * backed by a disk file, and reaches the queues and buffers only through gmemd (io.h):
 *   - the queue's page through a GPC: the available index with an acquire LOAD, the descriptor table and the
 *     available ring with one read, the used elements with a write, the used index with a release STORE;
 *   - the requests' headers, data and status bytes with READV and WRITEV, one per scatter list.
 * Guest memory is hostile input: the snapshot of the queue page is taken once and checked (indices, chain
 * lengths and loops, descriptor directions), and a request whose buffers gmemd refuses fails with IOERR.
 * A new device process finds its place in each queue from the used index, so it can replace one that died.
 *
 *   mpvmm-dev --kick-fd FD --socket PATH --disk FILE [--transport socket|ring|direct]
 *
 * On each kick (one byte on FD: the vCPU's index) it serves everything available on that queue, then answers
 * with the same byte. It exits when FD closes. The queue side is virtq.c; this file is the block side.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev.h"
#include "host.h"

static const char *program = "mpvmm-dev";

/* Whether the request's sectors lie on the disk. */
static int on_disk(const struct device *d, const struct request *r)
{
    return r->h.sector < d->disk_size / MPVMM_SECTOR && r->data_len <= d->disk_size - r->h.sector * MPVMM_SECTOR;
}

/* After gmemd refused a whole scatter list (the guest named memory outside the region in one of its requests),
 * the same transfer one request at a time, so that only the guilty ones fail. Sets each request's `ok`. */
static void retry_each(struct device *d, struct request **list, unsigned count, int write)
{
    for (unsigned i = 0; i < count; i++) {
        struct request *r = list[i];
        r->ok = (write ? io_writev(&d->io, r->data, r->segment_count, r->buffer)
                       : io_readv(&d->io, r->data, r->segment_count, r->buffer)) >= 0;
    }
}

/* Appends the request's segments (data, and for a read its status byte after it) to a scatter list. */
static void append(struct gmem_iov *list, unsigned *count, const struct request *r)
{
    for (unsigned k = 0; k < r->segment_count; k++)
        list[(*count)++] = r->data[k];
}

/* Carries out a batch of parsed chains, in three steps of one submission each (on a ring):
 *   1. every header, and the data of every chain the device is to read (a write's), gathered;
 *   2. the disk: writes, then flushes (so a FLUSH covers every write of its batch), then reads;
 *   3. every read's data with its status byte after it, and every other status byte, scattered.
 * Virtio leaves the order of requests in flight to the device. Returns 0, or a negative errno when the
 * connection to gmemd failed. */
int execute(struct device *d, struct request *requests, unsigned count)
{
    /* Each list's buffers back to back, as its READV or WRITEV carries them. */
    static uint8_t write_buffer[MPVMM_QUEUE_SIZE * MPVMM_MAX_REQUEST];
    static uint8_t read_buffer[MPVMM_QUEUE_SIZE * (MPVMM_MAX_REQUEST + 1)];
    static struct gmem_iov headers[MPVMM_QUEUE_SIZE], gather[MPVMM_QUEUE_SIZE * MAX_CHAIN],
        scatter[MPVMM_QUEUE_SIZE * (MAX_CHAIN + 1)], statuses[MPVMM_QUEUE_SIZE];
    static struct virtio_blk_req_header values[MPVMM_QUEUE_SIZE];
    uint8_t status_bytes[MPVMM_QUEUE_SIZE];
    struct request *writes[MPVMM_QUEUE_SIZE], *reads[MPVMM_QUEUE_SIZE];
    unsigned nheaders = 0, ngather = 0, nscatter = 0, nstatuses = 0, nwrites = 0, nreads = 0;
    size_t written = 0, read = 0;

    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        if (r->malformed)
            continue;
        r->header_slot = nheaders;
        headers[nheaders++] = r->header;
        if (r->data_count && !r->data_writable) {
            r->buffer = write_buffer + written;
            r->segment_count = r->data_count;
            written += r->data_len;
            append(gather, &ngather, r);
            writes[nwrites++] = r;
        }
    }
    struct io_op step1[2] = {
        { .kind = IO_OP_READV, .segments = headers, .count = nheaders, .buffer = values },
        { .kind = IO_OP_READV, .segments = gather, .count = ngather, .buffer = write_buffer },
    };
    int rc = io_run(&d->io, step1, 2);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        if (!r->malformed)
            r->header_read = step1[0].result >= 0 || io_readv(&d->io, &r->header, 1, &values[r->header_slot]) >= 0;
        r->h = values[r->header_slot];
        r->ok = step1[1].result >= 0;
    }
    if (step1[1].result < 0)
        retry_each(d, writes, nwrites, 0);

    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        r->status_value = r->malformed ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
        if (r->malformed || !r->header_read)
            continue;
        off_t at = (off_t)(r->h.sector * MPVMM_SECTOR);
        if (r->h.type == VIRTIO_BLK_T_OUT) {
            if (r->data_count && !r->data_writable && r->ok && on_disk(d, r)
                && pwrite(d->disk, r->buffer, r->data_len, at) == (ssize_t)r->data_len)
                r->status_value = VIRTIO_BLK_S_OK;
            d->writes++;
        } else if (r->h.type != VIRTIO_BLK_T_IN && r->h.type != VIRTIO_BLK_T_FLUSH) {
            r->status_value = VIRTIO_BLK_S_UNSUPP;
        }
    }
    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        if (!r->malformed && r->header_read && r->h.type == VIRTIO_BLK_T_FLUSH) {
            r->status_value = fdatasync(d->disk) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
            d->flushes++;
        }
    }
    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        if (r->malformed || !r->header_read || r->h.type != VIRTIO_BLK_T_IN)
            continue;
        d->reads++;
        r->buffer = read_buffer + read;
        if ((r->data_writable || !r->data_count) && on_disk(d, r)
            && pread(d->disk, r->buffer, r->data_len, (off_t)(r->h.sector * MPVMM_SECTOR)) == (ssize_t)r->data_len) {
            r->buffer[r->data_len] = VIRTIO_BLK_S_OK;
            r->data[r->data_count] = r->status; /* the status byte follows the data in the same WRITEV */
            r->segment_count = r->data_count + 1;
            read += r->data_len + 1;
            r->scattered = 1;
            append(scatter, &nscatter, r);
            reads[nreads++] = r;
        }
    }
    for (unsigned i = 0; i < count; i++) {
        struct request *r = &requests[i];
        if (!r->scattered && r->status.len) {
            statuses[nstatuses] = r->status;
            status_bytes[nstatuses++] = r->status_value;
        }
    }
    struct io_op step3[2] = {
        { .kind = IO_OP_WRITEV, .segments = scatter, .count = nscatter, .buffer = read_buffer },
        { .kind = IO_OP_WRITEV, .segments = statuses, .count = nstatuses, .buffer = status_bytes },
    };
    if ((rc = io_run(&d->io, step3, 2)) < 0)
        return rc;
    for (unsigned i = 0; i < nreads; i++)
        reads[i]->ok = step3[0].result >= 0;
    if (step3[0].result < 0)
        retry_each(d, reads, nreads, 1);
    for (unsigned i = 0; i < nreads; i++) {
        struct request *r = reads[i];
        r->status_written = r->ok;
        r->used_len = r->data_len + 1;
        r->status_value = r->ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
        if (!r->ok) /* its buffer lies outside guest memory; its status byte may not */
            io_writev(&d->io, &r->status, 1, &r->status_value);
    }
    if (step3[1].result < 0) /* one status byte outside guest memory: the others still */
        for (unsigned i = 0; i < nstatuses; i++)
            io_writev(&d->io, &statuses[i], 1, &status_bytes[i]);
    return 0;
}

static _Noreturn void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s --kick-fd FD --socket PATH --disk FILE [--transport socket|ring|direct]\n", program);
    exit(status);
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL, *disk = NULL;
    long kick = -1;
    int transport = IO_RING;
    static const struct option options[] = {
        { "kick-fd", required_argument, 0, 'k' }, { "socket", required_argument, 0, 's' },
        { "disk", required_argument, 0, 'D' },    { "transport", required_argument, 0, 't' },
        { "help", no_argument, 0, 'h' },          { 0, 0, 0, 0 },
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (o) {
        case 'k': kick = mpvmm_number(program, "--kick-fd", optarg, 0, 1 << 20); break;
        case 's': socket_path = optarg; break;
        case 'D': disk = optarg; break;
        case 't':
            if ((transport = io_transport_named(optarg)) < 0) {
                fprintf(stderr, "%s: --transport is socket, ring or direct, not '%s'\n", program, optarg);
                return 2;
            }
            break;
        case 'h': usage(0);
        default: usage(2);
        }
    }
    if (kick < 0 || !disk)
        usage(2);
    static struct device d;
    struct stat st;
    if ((d.disk = open(disk, O_RDWR | O_CLOEXEC)) < 0 || fstat(d.disk, &st) < 0)
        mpvmm_die(program, disk);
    d.disk_size = (uint64_t)st.st_size;
    int rc = io_open(&d.io, socket_path, (enum io_transport)transport);
    if (rc < 0)
        mpvmm_die_gmem(program, transport == IO_RING ? "opening a ring on gmemd" : "connecting to gmemd", rc);

    uint8_t index;
    while (recv((int)kick, &index, 1, 0) == 1) {
        struct queue *q = index < MPVMM_MAX_VCPUS ? &d.queues[index] : NULL;
        if (q && !q->ready && !q->broken && (rc = queue_setup(&d, q, index)) < 0) {
            fprintf(stderr, "%s: setting up queue %u: %s\n", program, index, strerror(-rc));
            q->broken = 1;
        }
        uint64_t start = mpvmm_now_ns();
        d.batch_phase = -1;
        if (q && q->ready && !q->broken && (rc = serve(&d, q)) < 0) {
            fprintf(stderr, "%s: serving queue %u: %s\n", program, index, strerror(-rc));
            return 1;
        }
        if (q && d.batch_phase >= 0) {
            d.phases[d.batch_phase].batches++;
            d.phases[d.batch_phase].ns += mpvmm_now_ns() - start;
        }
        io_drain_events(&d.io);
        if (send((int)kick, &index, 1, 0) != 1)
            break;
    }
    int mapped = mpvmm_maps_guest_memory(0);
    printf("mpvmm-dev (%s): %lu requests (%lu writes, %lu reads, %lu flushes), %lu KiB, %lu failed; %lu GPC "
           "invalidation events, %lu queue-page refreshes; guest memory in this process's maps: %s\n",
           io_transport_name(d.io.transport), d.requests, d.writes, d.reads, d.flushes, d.bytes >> 10, d.failed,
           d.io.invalidation_events, d.io.refreshes, mapped == 0 ? "none" : mapped > 0 ? "yes" : "unknown");
    for (unsigned p = 0; p < MPVMM_PHASES; p++)
        if (d.phases[p].batches)
            printf("mpvmm-dev-phase transport=%s phase=%s batches=%lu serve_us_per_batch=%.1f\n",
                   io_transport_name(d.io.transport), mpvmm_phase_name(p), d.phases[p].batches,
                   d.phases[p].ns / 1e3 / (double)d.phases[p].batches);
    for (unsigned i = 0; i < MPVMM_MAX_VCPUS; i++)
        io_page_close(&d.io, &d.queues[i].page);
    io_close(&d.io);
    return 0; /* a request that failed told the guest so in its status; only a broken gmemd connection is fatal */
}
