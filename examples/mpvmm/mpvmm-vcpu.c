/*
 * mpvmm-vcpu - the vCPU process of a minimal multi-process VMM on real KVM.
 *
 * It stands in for KVM in gmemd's trust model: it receives the guest memfd (MAP_REGION), maps it and registers
 * it as the VM's only memslot, loads the guest and runs one thread per vCPU. It handles no device itself: a kick
 * (PIO port 0x10) is forwarded to the device process, which reaches guest memory only through gmemd; a guest's
 * request to convert a page (port 0x11) becomes SET_ATTRIBUTES to gmemd. It exits with the guest's verdict.
 *
 *   mpvmm-vcpu --socket PATH [--vcpus N] [--guest guest.bin] [--device mpvmm-dev]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmem.h>

enum { GUEST_LOAD = 0x1000, PORT_KICK = 0x10, PORT_SHARE = 0x11, PORT_DEBUG = 0xe9, PORT_VERDICT = 0xf4 };
enum { MAX_VCPUS = 8 };

struct vm {
    int kvm, fd;
    size_t run_size;
    struct gmem *gmem;        /* this process's own connection: conversions only */
    pthread_mutex_t gmem_lock; /* a struct gmem serves one thread at a time (gmem.h) */
    int kick;                 /* the device process's end of a SOCK_SEQPACKET pair */
    pthread_mutex_t kick_lock; /* one kick in flight: the device answers them in order */
    atomic_uint kicks, conversions;
};

struct vcpu {
    struct vm *vm;
    int index, fd;
    struct kvm_run *run;
    int verdict;              /* -1 until the guest reports one */
    char line[128];
    size_t line_len;
};

static void die(const char *what)
{
    fprintf(stderr, "mpvmm-vcpu: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* A kick: the device process answers once it has read the request and written the response through gmemd. */
static int forward_kick(struct vm *vm, uint8_t index)
{
    uint8_t answer;
    pthread_mutex_lock(&vm->kick_lock);
    int ok = send(vm->kick, &index, 1, 0) == 1 && recv(vm->kick, &answer, 1, 0) == 1 && answer == index;
    pthread_mutex_unlock(&vm->kick_lock);
    atomic_fetch_add(&vm->kicks, 1);
    return ok ? 0 : -1;
}

static int handle_io(struct vcpu *c)
{
    struct kvm_run *run = c->run;
    const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.count != 1) {
        fprintf(stderr, "mpvmm-vcpu %d: unexpected I/O at port 0x%x\n", c->index, run->io.port);
        return -1;
    }
    switch (run->io.port) {
    case PORT_KICK:
        return forward_kick(c->vm, data[0]);
    case PORT_SHARE: {
        uint16_t page;
        memcpy(&page, data, sizeof page);
        pthread_mutex_lock(&c->vm->gmem_lock);
        int rc = gmem_set_attributes(c->vm->gmem, (uint64_t)page << 12, 4096, 0);
        pthread_mutex_unlock(&c->vm->gmem_lock);
        if (rc < 0) {
            fprintf(stderr, "mpvmm-vcpu %d: SET_ATTRIBUTES of page 0x%x: %s\n", c->index, page, strerror(-rc));
            return -1;
        }
        atomic_fetch_add(&c->vm->conversions, 1);
        return 0;
    }
    case PORT_DEBUG:
        if (data[0] == '\n' || c->line_len + 1 == sizeof c->line) {
            printf("vcpu %d: %.*s\n", c->index, (int)c->line_len, c->line);
            c->line_len = 0;
        } else {
            c->line[c->line_len++] = (char)data[0];
        }
        return 0;
    case PORT_VERDICT:
        c->verdict = data[0];
        return 0;
    default:
        fprintf(stderr, "mpvmm-vcpu %d: write to unknown port 0x%x\n", c->index, run->io.port);
        return -1;
    }
}

static void *run_vcpu(void *arg)
{
    struct vcpu *c = arg;
    for (;;) {
        if (ioctl(c->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mpvmm-vcpu %d: KVM_RUN: %s\n", c->index, strerror(errno));
            return NULL;
        }
        switch (c->run->exit_reason) {
        case KVM_EXIT_IO:
            if (handle_io(c) < 0)
                return NULL;
            break;
        case KVM_EXIT_HLT:
            return NULL;
        default:
            fprintf(stderr, "mpvmm-vcpu %d: exit reason %u\n", c->index, c->run->exit_reason);
            return NULL;
        }
    }
}

static void setup_vcpu(struct vm *vm, struct vcpu *c, int index)
{
    c->vm = vm;
    c->index = index;
    c->verdict = -1;
    c->fd = ioctl(vm->fd, KVM_CREATE_VCPU, index);
    if (c->fd < 0)
        die("KVM_CREATE_VCPU");
    c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (c->run == MAP_FAILED)
        die("mmap of kvm_run");
    /* Flat real mode: every segment at base 0, entered at GUEST_LOAD with BX = the vCPU's index. */
    struct kvm_sregs sregs;
    if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment *segments[] = { &sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss };
    for (size_t i = 0; i < sizeof segments / sizeof *segments; i++) {
        segments[i]->base = 0;
        segments[i]->selector = 0;
    }
    if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = GUEST_LOAD, .rflags = 2, .rbx = (uint64_t)index,
                             .rsp = 0x8000 - (uint64_t)index * 0x400 };
    if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");
}

/* Starts the device process on the other end of `pair`, with its own gmemd connection. */
static pid_t start_device(const char *device, const char *socket_path, int pair[2])
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(pair[0]);
        char fd[16];
        snprintf(fd, sizeof fd, "%d", pair[1]);
        execl(device, device, "--socket", socket_path, "--kick-fd", fd, (char *)NULL);
        fprintf(stderr, "mpvmm-vcpu: cannot run %s: %s\n", device, strerror(errno));
        _exit(127);
    }
    close(pair[1]);
    return pid;
}

/* The file next to this executable, for the default guest image and device program. */
static char *beside_self(const char *name)
{
    static char paths[2][4096];
    static int next;
    char *path = paths[next++ % 2];
    ssize_t n = readlink("/proc/self/exe", path, sizeof paths[0] - 1);
    if (n < 0)
        die("readlink /proc/self/exe");
    path[n] = 0;
    char *slash = strrchr(path, '/');
    snprintf(slash + 1, sizeof paths[0] - (size_t)(slash + 1 - path), "%s", name);
    return path;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL, *guest = NULL, *device = NULL;
    int vcpus = 2;
    static const struct option options[] = {
        { "socket", required_argument, 0, 's' }, { "vcpus", required_argument, 0, 'n' },
        { "guest", required_argument, 0, 'g' },  { "device", required_argument, 0, 'd' },
        { "help", no_argument, 0, 'h' },         { 0, 0, 0, 0 },
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (o) {
        case 's': socket_path = optarg; break;
        case 'n': vcpus = atoi(optarg); break;
        case 'g': guest = optarg; break;
        case 'd': device = optarg; break;
        default:
            fprintf(stderr, "usage: %s --socket PATH [--vcpus 1-%d] [--guest guest.bin] [--device mpvmm-dev]\n",
                    argv[0], MAX_VCPUS);
            return o == 'h' ? 0 : 2;
        }
    }
    if (vcpus < 1 || vcpus > MAX_VCPUS) {
        fprintf(stderr, "mpvmm-vcpu: --vcpus must lie between 1 and %d\n", MAX_VCPUS);
        return 2;
    }
    guest = guest ? guest : beside_self("guest.bin");
    device = device ? device : beside_self("mpvmm-dev");

    struct vm vm = { .kick_lock = PTHREAD_MUTEX_INITIALIZER, .gmem_lock = PTHREAD_MUTEX_INITIALIZER };
    vm.gmem = gmem_connect(socket_path);
    if (!vm.gmem)
        die("connecting to gmemd");
    int memfd;
    uint64_t size;
    int rc = gmem_map_region(vm.gmem, &memfd, &size);
    if (rc < 0) {
        fprintf(stderr, "mpvmm-vcpu: MAP_REGION: %s%s\n", strerror(-rc),
                rc == -EPERM ? " (start gmemd with --allow-map-uid for this user)" : "");
        return 2;
    }
    uint8_t *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (memory == MAP_FAILED)
        die("mmap of the guest memfd");

    /* Load the guest through the mapping, as a VMM loads firmware. */
    int image = open(guest, O_RDONLY | O_CLOEXEC);
    if (image < 0)
        die(guest);
    ssize_t loaded = read(image, memory + GUEST_LOAD, 0x4000);
    if (loaded <= 0)
        die("reading the guest image");
    close(image);

    vm.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm.kvm < 0)
        die("/dev/kvm");
    if (ioctl(vm.kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr, "mpvmm-vcpu: unexpected KVM API version\n");
        return 2;
    }
    vm.fd = ioctl(vm.kvm, KVM_CREATE_VM, 0);
    if (vm.fd < 0)
        die("KVM_CREATE_VM");
    /* Intel's real mode needs a TSS page; put it above the region. */
    if (ioctl(vm.fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
        die("KVM_SET_TSS_ADDR");
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uintptr_t)memory,
    };
    if (ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
    vm.run_size = (size_t)ioctl(vm.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);

    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        die("socketpair");
    /* The device's end must survive exec. */
    fcntl(pair[1], F_SETFD, 0);
    pid_t device_pid = start_device(device, socket_path, pair);
    vm.kick = pair[0];

    struct vcpu cpus[MAX_VCPUS] = { 0 };
    pthread_t threads[MAX_VCPUS];
    for (int i = 0; i < vcpus; i++) {
        setup_vcpu(&vm, &cpus[i], i);
        if (pthread_create(&threads[i], NULL, run_vcpu, &cpus[i]) != 0)
            die("pthread_create");
    }
    int passed = 0;
    for (int i = 0; i < vcpus; i++) {
        pthread_join(threads[i], NULL);
        passed += cpus[i].verdict == 0;
    }

    /* The device process ends when its kick socket closes; its exit status is part of the verdict. */
    close(vm.kick);
    int status = 0;
    waitpid(device_pid, &status, 0);
    int device_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("mpvmm: %d of %d vCPUs passed; %u kicks forwarded, %u pages converted; device process %s\n", passed,
           vcpus, atomic_load(&vm.kicks), atomic_load(&vm.conversions), device_ok ? "ok" : "failed");
    gmem_close(vm.gmem);
    return passed == vcpus && device_ok ? 0 : 1;
}
