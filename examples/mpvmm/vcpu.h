/*
 * vcpu.h - the vCPU process's state, shared by its KVM half (kvm.c) and its process half (mpvmm-vcpu.c).
 */
#ifndef MPVMM_VCPU_H
#define MPVMM_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <gmem.h>

#include "layout.h"

struct vm {
    int kvm, fd;
    size_t run_size;
    uint8_t *memory; /* the guest memfd, mapped: this process stands in for KVM */
    uint64_t size;
    struct gmem *gmem;         /* this process's own connection: conversions and STATS */
    pthread_mutex_t gmem_lock; /* a struct gmem serves one thread at a time (gmem.h) */

    /* The device process and its kick socket. The lock keeps one kick in flight (the device answers in order)
     * and covers a restart of the device. */
    pthread_mutex_t device_lock;
    const char *device_program;
    char *const *device_args;
    pid_t device_pid;
    int kick;
    unsigned kill_device_after; /* SIGKILL the device during this kick (counted from 1); 0: never */
    unsigned device_restarts;
    uint64_t connections_without_device; /* gmemd's STATS connections before the device started */
    uint64_t gpcs_after_kill;            /* gmemd's gpc_active once it retired a killed device */
    unsigned vcpus;

    pid_t clock_pid;
    int clock_page_refs; /* the clock page's reference count in gmemd after the first kick (one GPC per vCPU) */
    int maps_device, maps_clock; /* mpvmm_maps_guest_memory() of each while the guest ran, the highest seen;
                                    -2 unread (under device_lock) */
    atomic_uint kicks, conversions;
};

struct vcpu {
    struct vm *vm;
    int index, fd;
    struct kvm_run *run;
    int verdict; /* -1 until the guest reports one */
    char line[160];
    size_t line_len;
    uint64_t marks[MPVMM_PHASES + 1]; /* host CLOCK_MONOTONIC at each benchmark mark */
};

/* kvm.c */
void vm_create(struct vm *vm, const char *guest_image);
void vcpu_create(struct vm *vm, struct vcpu *c, int index);
void *vcpu_run(void *vcpu);

/* mpvmm-vcpu.c: forwards a kick to the device process (restarting it when told to); 0 once it answered. */
int device_kick(struct vm *vm, uint8_t index);
/* mpvmm-vcpu.c: reads the device's and the clock's /proc/PID/maps into vm->maps_* (after the first kick, at
 * the first conversion and at the first benchmark mark). */
void record_maps(struct vm *vm);

#endif /* MPVMM_VCPU_H */
