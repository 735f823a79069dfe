/*
 * io.c - mpvmm-dev's three ways to guest memory (io.h).
 */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A request's data stays well inside the ring's data area and HELLO's max_payload (1 MiB or more). */
enum { PAGE_SIZE = 4096, RING_ENTRIES = 64, RING_DATA = 4 << 20, CHUNK_BYTES = 512 << 10 };

static const char *const names[] = { [IO_SOCKET] = "socket", [IO_RING] = "ring", [IO_DIRECT] = "direct" };

int io_transport_named(const char *name)
{
    for (int t = IO_SOCKET; t <= IO_DIRECT; t++)
        if (strcmp(name, names[t]) == 0)
            return t;
    return -1;
}

const char *io_transport_name(enum io_transport transport)
{
    return names[transport];
}

int io_open(struct io *io, const char *socket_path, enum io_transport transport)
{
    *io = (struct io){ .transport = transport };
    io->gmem = gmem_connect(socket_path);
    if (!io->gmem)
        return -errno;
    struct gmem_info info;
    int rc = gmem_info(io->gmem, &info);
    if (rc < 0)
        return rc;
    /* READV, WRITEV and the atomics; a daemon that does not grant them cannot serve this device. */
    if (!(info.features & GMEM_FEATURE_DEVICE_OPS) || info.max_segments == 0)
        return -EOPNOTSUPP;
    io->max_segments = info.max_segments;
    if (transport == IO_RING) {
        io->ring = gmem_ring_open(io->gmem, RING_ENTRIES, RING_DATA);
        return io->ring ? 0 : -errno;
    }
    if (transport == IO_DIRECT) {
        /* The unprotected baseline: the whole region in this process, as a vhost-user backend maps it. */
        int fd;
        rc = gmem_map_region(io->gmem, &fd, &io->size);
        if (rc < 0)
            return rc;
        io->memory = mmap(NULL, io->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (io->memory == MAP_FAILED)
            return -errno;
    }
    return 0;
}

void io_close(struct io *io)
{
    gmem_ring_close(io->ring);
    if (io->memory)
        munmap(io->memory, io->size);
    gmem_close(io->gmem);
}

/* ---- Scatter lists ------------------------------------------------------------------------------------------- */

/* IO_DIRECT: every segment inside the region, or -EFAULT before anything moves (gmemd's rule). */
static int direct_check(const struct io *io, const struct gmem_iov *segments, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        if (segments[i].gpa > io->size || segments[i].len > io->size - segments[i].gpa)
            return -EFAULT;
    return 0;
}

/* One READV or WRITEV. */
static ssize_t transfer(struct io *io, int write, const struct gmem_iov *segments, unsigned count, uint8_t *buffer)
{
    switch (io->transport) {
    case IO_SOCKET:
        return write ? gmem_writev(io->gmem, segments, count, buffer) : gmem_readv(io->gmem, segments, count, buffer);
    case IO_RING:
        return write ? gmem_ring_writev(io->ring, segments, count, buffer)
                     : gmem_ring_readv(io->ring, segments, count, buffer);
    case IO_DIRECT:
        break;
    }
    int rc = direct_check(io, segments, count);
    if (rc < 0)
        return rc;
    size_t done = 0;
    for (unsigned i = 0; i < count; done += segments[i++].len) {
        uint8_t *guest = io->memory + segments[i].gpa;
        memcpy(write ? guest : buffer + done, write ? buffer + done : guest, segments[i].len);
    }
    return (ssize_t)done;
}

unsigned io_chunk(const struct io *io, const struct gmem_iov *segments, unsigned count, size_t *bytes)
{
    unsigned n = 0;
    for (*bytes = 0; n < count && n < io->max_segments && (n == 0 || *bytes + segments[n].len <= CHUNK_BYTES); n++)
        *bytes += segments[n].len;
    return n;
}

/* As many requests as the list needs: at most max_segments segments and about CHUNK_BYTES each. */
static ssize_t chunked(struct io *io, int write, const struct gmem_iov *segments, unsigned count, uint8_t *buffer)
{
    size_t done = 0;
    for (unsigned first = 0, n; first < count; first += n) {
        size_t bytes;
        n = io_chunk(io, segments + first, count - first, &bytes);
        ssize_t rc = transfer(io, write, segments + first, n, buffer + done);
        if (rc < 0)
            return rc;
        done += bytes;
    }
    return (ssize_t)done;
}

ssize_t io_readv(struct io *io, const struct gmem_iov *segments, unsigned count, void *buffer)
{
    return chunked(io, 0, segments, count, buffer);
}

ssize_t io_writev(struct io *io, const struct gmem_iov *segments, unsigned count, const void *buffer)
{
    return chunked(io, 1, segments, count, (uint8_t *)buffer);
}

/* ---- Cached pages -------------------------------------------------------------------------------------------- */

int io_page_open(struct io *io, struct io_page *page, uint64_t gpa)
{
    page->gpa = gpa;
    page->handle = 0;
    if (io->transport == IO_DIRECT)
        return gpa <= io->size - PAGE_SIZE ? 0 : -EFAULT;
    return gmem_gpc_activate(io->gmem, gpa, PAGE_SIZE, &page->handle);
}

void io_page_close(struct io *io, struct io_page *page)
{
    if (page->handle)
        gmem_gpc_deactivate(io->gmem, page->handle);
    page->handle = 0;
}

enum page_op { PAGE_READ, PAGE_WRITE, PAGE_ATOMIC };

static int direct_atomic(uint8_t *at, const struct gmem_atomic_op *op, uint64_t *old)
{
    if ((uintptr_t)at % op->size)
        return -EINVAL;
    uint64_t value = 0;
    /* The guest's vCPUs use this memory at the same time: real atomic instructions, as gmemd executes them. */
    switch (op->kind << 4 | op->size) {
    case GMEM_ATOMIC_LOAD << 4 | 2: value = __atomic_load_n((uint16_t *)at, __ATOMIC_ACQUIRE); break;
    case GMEM_ATOMIC_LOAD << 4 | 4: value = __atomic_load_n((uint32_t *)at, __ATOMIC_ACQUIRE); break;
    case GMEM_ATOMIC_STORE << 4 | 2: __atomic_store_n((uint16_t *)at, (uint16_t)op->value, __ATOMIC_RELEASE); break;
    case GMEM_ATOMIC_STORE << 4 | 4: __atomic_store_n((uint32_t *)at, (uint32_t)op->value, __ATOMIC_RELEASE); break;
    default: return -EOPNOTSUPP;
    }
    if (old)
        *old = value;
    return 0;
}

static int page_gmem(struct io *io, struct io_page *page, enum page_op kind, uint32_t offset, void *buffer,
                     uint32_t len, const struct gmem_atomic_op *op, uint64_t *old)
{
    int ring = io->transport == IO_RING;
    switch (kind) {
    case PAGE_READ:
        return ring ? gmem_ring_gpc_read(io->ring, page->handle, offset, buffer, len)
                    : gmem_gpc_read(io->gmem, page->handle, offset, buffer, len);
    case PAGE_WRITE:
        return ring ? gmem_ring_gpc_write(io->ring, page->handle, offset, buffer, len)
                    : gmem_gpc_write(io->gmem, page->handle, offset, buffer, len);
    case PAGE_ATOMIC:
        return ring ? gmem_ring_gpc_atomic(io->ring, page->handle, offset, op, old)
                    : gmem_gpc_atomic(io->gmem, page->handle, offset, op, old);
    }
    return -EINVAL;
}

static int page_call(struct io *io, struct io_page *page, enum page_op kind, uint32_t offset, void *buffer,
                     uint32_t len, const struct gmem_atomic_op *op, uint64_t *old)
{
    if (io->transport == IO_DIRECT) {
        uint32_t size = kind == PAGE_ATOMIC ? op->size : len;
        if (offset > PAGE_SIZE || size > PAGE_SIZE - offset)
            return -EINVAL;
        uint8_t *at = io->memory + page->gpa + offset;
        if (kind == PAGE_ATOMIC)
            return direct_atomic(at, op, old);
        memcpy(kind == PAGE_READ ? buffer : at, kind == PAGE_READ ? at : buffer, len);
        return 0;
    }
    for (;;) {
        int rc = page_gmem(io, page, kind, offset, buffer, len, op, old);
        if (rc != -ESTALE)
            return rc;
        /* A conversion of the page invalidated the GPC: map it again and redo the operation. Nothing was
         * served from the stale cache; gmemd refused it. */
        if ((rc = io_page_refresh(io, page)) < 0)
            return rc;
    }
}

int io_page_refresh(struct io *io, struct io_page *page)
{
    int rc = gmem_gpc_refresh(io->gmem, page->handle, page->gpa, PAGE_SIZE);
    io->refreshes += rc == 0;
    return rc;
}

int io_page_read(struct io *io, struct io_page *page, uint32_t offset, void *buffer, uint32_t len)
{
    return page_call(io, page, PAGE_READ, offset, buffer, len, NULL, NULL);
}

int io_page_write(struct io *io, struct io_page *page, uint32_t offset, const void *buffer, uint32_t len)
{
    return page_call(io, page, PAGE_WRITE, offset, (void *)buffer, len, NULL, NULL);
}

int io_page_atomic(struct io *io, struct io_page *page, uint32_t offset, const struct gmem_atomic_op *op,
                   uint64_t *old)
{
    return page_call(io, page, PAGE_ATOMIC, offset, NULL, op->size, op, old);
}

void io_drain_events(struct io *io)
{
    struct gmem_event event;
    while (gmem_next_event(io->gmem, &event) == 0)
        io->invalidation_events += event.type == GMEM_EVENT_GPC_INVALIDATED;
}
