/*
 * kvm.c - the KVM half of mpvmm-vcpu: one VM whose only memslot is the guest memfd gmemd handed over
 * (MAP_REGION), vCPUs entered in 64-bit mode, and the exits the guest makes on purpose.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host.h"
#include "vcpu.h"

#define DIE(what) mpvmm_die("mpvmm-vcpu", what)

void vm_create(struct vm *vm, const char *guest_image)
{
    /* Load the guest through the mapping, as a VMM loads firmware. */
    int image = open(guest_image, O_RDONLY | O_CLOEXEC);
    if (image < 0)
        DIE(guest_image);
    ssize_t loaded = read(image, vm->memory + MPVMM_GUEST_LOAD, MPVMM_GUEST_MAX);
    if (loaded <= 0)
        DIE("reading the guest image");
    close(image);

    vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm < 0)
        DIE("/dev/kvm");
    if (ioctl(vm->kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr, "mpvmm-vcpu: unexpected KVM API version\n");
        exit(2);
    }
    vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
    if (vm->fd < 0)
        DIE("KVM_CREATE_VM");
    /* The guest's page tables: the first 1 GiB mapped to itself in 2 MiB pages, user-accessible and writable. */
    uint64_t *pml4 = (uint64_t *)(vm->memory + MPVMM_PAGE_TABLES), *pdpt = pml4 + 512, *pd = pdpt + 512;
    enum { PRESENT = 1, WRITABLE = 2, USER = 4, LARGE = 0x80 };
    pml4[0] = (MPVMM_PAGE_TABLES + 0x1000) | PRESENT | WRITABLE | USER;
    pdpt[0] = (MPVMM_PAGE_TABLES + 0x2000) | PRESENT | WRITABLE | USER;
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = i << 21 | PRESENT | WRITABLE | USER | LARGE;

    /* Intel's VMX wants a TSS page of three pages even when the guest never uses it; put it above the region. */
    if (ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
        DIE("KVM_SET_TSS_ADDR");
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = vm->size, .userspace_addr = (uintptr_t)vm->memory,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        DIE("KVM_SET_USER_MEMORY_REGION");
    vm->run_size = (size_t)ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
}

void vcpu_create(struct vm *vm, struct vcpu *c, int index)
{
    c->vm = vm;
    c->index = index;
    c->verdict = -1;
    c->fd = ioctl(vm->fd, KVM_CREATE_VCPU, index);
    if (c->fd < 0)
        DIE("KVM_CREATE_VCPU");
    c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (c->run == MAP_FAILED)
        DIE("mmap of kvm_run");

    /* 64-bit mode at CPL 3, entered directly: paging on over an identity map (vm_create), and segment registers
     * whose hidden parts KVM loads as given, so the guest needs no GDT and no mode switch of its own. Why CPL 3:
     * on a host whose KVM is PVM (kvm_pvm, as in nested clouds) only guest user mode runs natively; supervisor
     * code is emulated an instruction at a time (measured here: 1.7 us per loop iteration against 2.6 ns).
     * IOPL 3 lets the guest's OUT reach this process as a port exit without an IDT. */
    struct kvm_sregs sregs;
    if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
        DIE("KVM_GET_SREGS");
    struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x18 | 3, .type = 0xb, .present = 1,
                                .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1 };
    struct kvm_segment data = code;
    data.selector = 0x20 | 3;
    data.type = 0x3;
    data.l = 0;
    data.db = 1;
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.cr3 = MPVMM_PAGE_TABLES;
    sregs.cr4 |= 1u << 5;                  /* PAE */
    sregs.efer |= 1u << 8 | 1u << 10;      /* LME, LMA */
    sregs.cr0 |= 1u | 1u << 31;            /* PE, PG */
    if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
        DIE("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = MPVMM_GUEST_LOAD, .rflags = 0x3002, .rbx = (uint64_t)index,
                             .rsp = MPVMM_STACKS + (uint64_t)(index + 1) * MPVMM_STACK_SIZE };
    if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
        DIE("KVM_SET_REGS");
}

/* The guest asks for its I/O window (or the clock page) to change attribute: SET_ATTRIBUTES to gmemd, which
 * invalidates every GPC on those pages (the device's cache of the queue page, or every clock's). */
static int convert(struct vcpu *c, uint32_t value)
{
    struct vm *vm = c->vm;
    if (value == 0 && c->index == 0)
        record_maps(vm); /* midway through the run: who maps guest memory now */
    uint64_t gpa = MPVMM_WINDOWS + (uint64_t)c->index * MPVMM_WINDOW_SIZE, size = MPVMM_IO_SIZE;
    if (value & 1) {
        gpa = MPVMM_CLOCK;
        size = 0x1000;
    }
    pthread_mutex_lock(&vm->gmem_lock);
    int rc = gmem_set_attributes(vm->gmem, gpa, size, value & 8);
    pthread_mutex_unlock(&vm->gmem_lock);
    if (rc < 0) {
        fprintf(stderr, "mpvmm-vcpu %d: SET_ATTRIBUTES of 0x%llx: %s\n", c->index, (unsigned long long)gpa,
                strerror(-rc));
        return -1;
    }
    atomic_fetch_add(&vm->conversions, 1);
    return 0;
}

/* Returns 0 to run on, 1 when the guest reported its verdict, -1 on an error. */
static int handle_io(struct vcpu *c)
{
    struct kvm_run *run = c->run;
    uint32_t value;
    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.count != 1 || run->io.size != 4) {
        fprintf(stderr, "mpvmm-vcpu %d: unexpected I/O at port 0x%x\n", c->index, run->io.port);
        return -1;
    }
    memcpy(&value, (const uint8_t *)run + run->io.data_offset, sizeof value);
    switch (run->io.port) {
    case MPVMM_PORT_KICK:
        return device_kick(c->vm, (uint8_t)c->index);
    case MPVMM_PORT_CONVERT:
        return convert(c, value);
    case MPVMM_PORT_MARK:
        if (value <= MPVMM_PHASES)
            c->marks[value] = mpvmm_now_ns();
        if (value == 0 && c->index == 0)
            record_maps(c->vm); /* the benchmark converts nothing: look at who maps guest memory here */
        return 0;
    case MPVMM_PORT_DEBUG:
        if (value == '\n' || c->line_len + 1 == sizeof c->line) {
            printf("vcpu %d: %.*s\n", c->index, (int)c->line_len, c->line);
            fflush(stdout);
            c->line_len = 0;
        } else {
            c->line[c->line_len++] = (char)value;
        }
        return 0;
    case MPVMM_PORT_VERDICT:
        c->verdict = (int)value;
        return 1; /* the guest is done: stop the vCPU (at CPL 3 it cannot HLT) */
    default:
        fprintf(stderr, "mpvmm-vcpu %d: write to unknown port 0x%x\n", c->index, run->io.port);
        return -1;
    }
}

void *vcpu_run(void *vcpu)
{
    struct vcpu *c = vcpu;
    for (;;) {
        if (ioctl(c->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mpvmm-vcpu %d: KVM_RUN: %s\n", c->index, strerror(errno));
            return NULL;
        }
        switch (c->run->exit_reason) {
        case KVM_EXIT_IO:
            if (handle_io(c) != 0)
                return NULL;
            break;
        case KVM_EXIT_HLT:
            return NULL;
        default: {
            struct kvm_regs regs = { 0 };
            ioctl(c->fd, KVM_GET_REGS, &regs);
            fprintf(stderr, "mpvmm-vcpu %d: exit reason %u at rip 0x%llx\n", c->index, c->run->exit_reason,
                    (unsigned long long)regs.rip);
            return NULL;
        }
        }
    }
}
