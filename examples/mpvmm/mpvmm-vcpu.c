/*
 * mpvmm-vcpu - the vCPU process of a minimal multi-process VMM on real KVM.
 *
 * It stands in for KVM in gmemd's trust model: it receives the guest memfd (MAP_REGION), maps it as the VM's only
 * memslot (kvm.c), and runs one thread per vCPU. It serves no device itself. It starts two helpers, each with its
 * own gmemd connection and neither mapping guest memory: mpvmm-clock keeps every vCPU's clock current, and
 * mpvmm-dev serves the block device's queues. A kick (port 0x10) is forwarded to mpvmm-dev and returns once it
 * answered; a conversion (port 0x11) becomes SET_ATTRIBUTES. It exits 0 only if every vCPU passed, both helpers
 * did, neither mapped guest memory, and (in test mode) the disk file holds the guest's last pattern.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"
#include "vcpu.h"

static const char *program = "mpvmm-vcpu";

/* Runs path with argv; fd stays open in the child (its number is in argv). */
static pid_t spawn(const char *path, char *const argv[], int fd)
{
    pid_t pid = fork();
    if (pid < 0)
        mpvmm_die(program, "fork");
    if (pid == 0) {
        fcntl(fd, F_SETFD, 0);
        execv(path, argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", program, path, strerror(errno));
        _exit(127);
    }
    close(fd);
    return pid;
}

static void start_device(struct vm *vm)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        mpvmm_die(program, "socketpair");
    char fd[16];
    snprintf(fd, sizeof fd, "%d", pair[1]);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)vm->device_program;
    argv[n++] = "--kick-fd";
    argv[n++] = fd;
    for (char *const *arg = vm->device_args; *arg;)
        argv[n++] = *arg++;
    argv[n] = NULL;
    vm->device_pid = spawn(vm->device_program, argv, pair[1]);
    vm->kick = pair[0];
}

/* Waits (up to 5 s) until gmemd has retired every connection beyond `count` and every ring: a dead device's
 * requests already inside gmemd must not land after its successor has served (a late used index would go back). */
static void wait_for_connections(struct vm *vm, uint64_t count)
{
    for (int tries = 0; tries < 500; tries++) {
        uint64_t connections = 0, rings = 0;
        pthread_mutex_lock(&vm->gmem_lock);
        int rc = gmem_stat(vm->gmem, "connections", &connections);
        if (rc == 0)
            rc = gmem_stat(vm->gmem, "rings_active", &rings);
        pthread_mutex_unlock(&vm->gmem_lock);
        if (rc < 0 || (connections <= count && rings == 0))
            return;
        usleep(10000);
    }
    fprintf(stderr, "%s: gmemd still counts the dead device's connection after 5 s\n", program);
}

int device_kick(struct vm *vm, uint8_t index)
{
    uint8_t answer = 0;
    pthread_mutex_lock(&vm->device_lock);
    unsigned kick = atomic_fetch_add(&vm->kicks, 1) + 1;
    int ok = send(vm->kick, &index, 1, 0) == 1;
    if (ok && kick == vm->kill_device_after) {
        /* The crash test: the device dies in the middle of a batch (its gmemd connection with it); a new one
         * must find its place in each queue from the used index alone, and the guest must not notice. */
        usleep(300);
        kill(vm->device_pid, SIGKILL);
        waitpid(vm->device_pid, NULL, 0);
        close(vm->kick);
        printf("mpvmm: killed the device process (SIGKILL) during kick %u; restarting it\n", kick);
        wait_for_connections(vm, vm->connections_without_device);
        /* The dead device's GPCs are gone with its connection: only the clock's remain. */
        pthread_mutex_lock(&vm->gmem_lock);
        int rc = gmem_stat(vm->gmem, "gpc_active", &vm->gpcs_after_kill);
        pthread_mutex_unlock(&vm->gmem_lock);
        printf("mpvmm: gmemd after the kill: %llu GPCs active (the clock's %u)\n",
               rc == 0 ? (unsigned long long)vm->gpcs_after_kill : 0ull, vm->vcpus);
        start_device(vm);
        vm->device_restarts++;
        ok = send(vm->kick, &index, 1, 0) == 1;
    }
    ok = ok && recv(vm->kick, &answer, 1, 0) == 1 && answer == index;
    pthread_mutex_unlock(&vm->device_lock);
    if (!ok)
        fprintf(stderr, "%s: the device process did not answer a kick of vCPU %u\n", program, index);
    else if (kick == 1)
        record_maps(vm); /* the device has served: it has whatever mappings it will have */
    if (ok && kick == 1) {
        /* Several caches on one page, the case the one-bit design refused: gmemd counts one reference per GPC. */
        struct gmem_page_state state;
        pthread_mutex_lock(&vm->gmem_lock);
        vm->clock_page_refs = gmem_page_state(vm->gmem, MPVMM_CLOCK, 1, &state) == 0 ? state.refcount : -1;
        pthread_mutex_unlock(&vm->gmem_lock);
    }
    return ok ? 0 : -1;
}

/* Each observation can only raise what is known: a mapping seen once counts. */
void record_maps(struct vm *vm)
{
    pthread_mutex_lock(&vm->device_lock);
    int device = mpvmm_maps_guest_memory(vm->device_pid), clock = mpvmm_maps_guest_memory(vm->clock_pid);
    vm->maps_device = device > vm->maps_device ? device : vm->maps_device;
    vm->maps_clock = clock > vm->maps_clock ? clock : vm->maps_clock;
    pthread_mutex_unlock(&vm->device_lock);
}

/* Starts mpvmm-clock and waits for its first update of every clock. Returns its end of the control socket: the
 * clock runs until that closes. */
static int start_clock(struct vm *vm, const char *path, const char *socket_path, int vcpus)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        mpvmm_die(program, "socketpair");
    char fd[16], count[16];
    snprintf(fd, sizeof fd, "%d", pair[1]);
    snprintf(count, sizeof count, "%d", vcpus);
    char *argv[] = { (char *)path, "--socket", (char *)socket_path, "--vcpus", count, "--control-fd", fd, NULL };
    vm->clock_pid = spawn(path, argv, pair[1]);
    uint8_t ready;
    if (read(pair[0], &ready, 1) != 1) {
        fprintf(stderr, "%s: mpvmm-clock did not start\n", program);
        exit(2);
    }
    return pair[0];
}

static int exited_ok(pid_t pid)
{
    int status = 0;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The disk must hold, in every vCPU's area, the pattern of the guest's last round. */
static int check_disk(const char *path, int vcpus)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        mpvmm_die(program, path);
    static uint32_t words[MPVMM_DISK_AREA / 4];
    int good = 1;
    for (int i = 0; i < vcpus && good; i++) {
        off_t at = (off_t)i * MPVMM_DISK_AREA;
        good = pread(fd, words, sizeof words, at) == (ssize_t)sizeof words;
        for (uint32_t w = 0; good && w < MPVMM_DISK_AREA / 4; w++)
            good = words[w] == mpvmm_pattern((uint32_t)(at / 4) + w, MPVMM_FINAL_SEED);
    }
    close(fd);
    printf("mpvmm: disk file: %s (%d MiB checked against the guest's last pattern)\n", good ? "ok" : "WRONG",
           vcpus * (int)(MPVMM_DISK_AREA >> 20));
    return good;
}

static void print_bench(const struct vcpu *c, const struct mpvmm_config *config, const char *transport)
{
    for (unsigned p = 0; p < MPVMM_PHASES; p++) {
        const struct mpvmm_phase_result *r = &config->result[c->index][p];
        uint64_t host_ns = c->marks[p + 1] - c->marks[p];
        printf("mpvmm-bench transport=%s vcpu=%d phase=%s requests=%llu bytes=%llu host_ns=%llu guest_ns=%llu "
               "req_per_s=%.0f mb_per_s=%.1f guest_req_per_s=%.0f\n",
               transport, c->index, mpvmm_phase_name(p), (unsigned long long)r->requests, (unsigned long long)r->bytes,
               (unsigned long long)host_ns, (unsigned long long)r->ns, r->requests * 1e9 / (double)host_ns,
               r->bytes * 1e3 / (double)host_ns, r->ns ? r->requests * 1e9 / (double)r->ns : 0.0);
    }
}

static _Noreturn void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s --socket PATH --disk FILE [--transport socket|ring|direct] [--vcpus 1-%u] [--rounds N]\n"
            "       [--bench | --hostile] [--kill-device-after KICK] [--guest guest.bin] [--device mpvmm-dev]\n"
            "       [--clock mpvmm-clock]\n",
            program, MPVMM_MAX_VCPUS);
    exit(status);
}

/* The file next to this executable, for the default guest image and helper programs. */
static char *beside_self(const char *name)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        mpvmm_die(program, "readlink /proc/self/exe");
    self[n] = 0;
    *strrchr(self, '/') = 0;
    char *path;
    if (asprintf(&path, "%s/%s", self, name) < 0)
        mpvmm_die(program, "asprintf");
    return path;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL, *disk = NULL, *transport = "ring";
    char *guest = NULL, *device = NULL, *clock = NULL;
    int vcpus = 2, bench = 0, hostile = 0;
    long rounds = 0, kill_after = 0;
    static const struct option options[] = {
        { "socket", required_argument, 0, 's' }, { "disk", required_argument, 0, 'D' },
        { "transport", required_argument, 0, 't' }, { "vcpus", required_argument, 0, 'n' },
        { "rounds", required_argument, 0, 'r' },    { "bench", no_argument, 0, 'b' },
        { "hostile", no_argument, 0, 'H' },
        { "kill-device-after", required_argument, 0, 'k' }, { "guest", required_argument, 0, 'g' },
        { "device", required_argument, 0, 'd' },    { "clock", required_argument, 0, 'c' },
        { "help", no_argument, 0, 'h' },            { 0, 0, 0, 0 },
    };
    for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (o) {
        case 's': socket_path = optarg; break;
        case 'D': disk = optarg; break;
        case 't': transport = optarg; break;
        case 'n': vcpus = (int)mpvmm_number(program, "--vcpus", optarg, 1, MPVMM_MAX_VCPUS); break;
        case 'r': rounds = mpvmm_number(program, "--rounds", optarg, 4, 100000); break;
        case 'b': bench = 1; break;
        case 'H': hostile = 1; break;
        case 'k': kill_after = mpvmm_number(program, "--kill-device-after", optarg, 1, 1000000); break;
        case 'g': guest = optarg; break;
        case 'd': device = optarg; break;
        case 'c': clock = optarg; break;
        case 'h': usage(0);
        default: usage(2);
        }
    }
    if (!disk || optind != argc)
        usage(2);
    if (strcmp(transport, "socket") && strcmp(transport, "ring") && strcmp(transport, "direct")) {
        fprintf(stderr, "%s: --transport is socket, ring or direct, not '%s'\n", program, transport);
        return 2;
    }
    guest = guest ? guest : beside_self("guest.bin");
    device = device ? device : beside_self("mpvmm-dev");
    clock = clock ? clock : beside_self("mpvmm-clock");

    struct vm vm = { .gmem_lock = PTHREAD_MUTEX_INITIALIZER, .device_lock = PTHREAD_MUTEX_INITIALIZER, .vcpus = vcpus,
                     .maps_device = -2, .maps_clock = -2, .kill_device_after = (unsigned)kill_after };
    vm.gmem = gmem_connect(socket_path);
    if (!vm.gmem)
        mpvmm_die(program, "connecting to gmemd");
    int memfd, rc = gmem_map_region(vm.gmem, &memfd, &vm.size);
    if (rc < 0) {
        fprintf(stderr, "%s: MAP_REGION: %s%s\n", program, strerror(-rc),
                rc == -EPERM ? " (start gmemd with --allow-map-uid for this user)" : "");
        return 2;
    }
    if (vm.size < MPVMM_REGION_MIN) {
        fprintf(stderr, "%s: the region has %llu bytes; the guest needs %u (gmemd --size 32M)\n", program,
                (unsigned long long)vm.size, MPVMM_REGION_MIN);
        return 2;
    }
    vm.memory = mmap(NULL, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (vm.memory == MAP_FAILED)
        mpvmm_die(program, "mmap of the guest memfd");
    vm_create(&vm, guest);
    struct mpvmm_config *config = (struct mpvmm_config *)(vm.memory + MPVMM_CONFIG);
    config->mode = bench ? MPVMM_MODE_BENCH : hostile ? MPVMM_MODE_HOSTILE : MPVMM_MODE_TEST;
    config->vcpus = (uint32_t)vcpus;
    config->rounds = (uint32_t)(rounds ? rounds : bench ? 200 : 40);

    int clock_control = start_clock(&vm, clock, socket_path, vcpus);
    /* gmemd's connections without the device: this process's and the clock's (others may be open too). */
    if ((rc = gmem_stat(vm.gmem, "connections", &vm.connections_without_device)) < 0)
        mpvmm_die_gmem(program, "STATS", rc);
    char *device_args[] = { "--socket", (char *)socket_path, "--transport", (char *)transport, "--disk",
                            (char *)disk, NULL };
    vm.device_program = device;
    vm.device_args = device_args;
    start_device(&vm);

    struct vcpu cpus[MPVMM_MAX_VCPUS] = { 0 };
    pthread_t threads[MPVMM_MAX_VCPUS];
    for (int i = 0; i < vcpus; i++) {
        vcpu_create(&vm, &cpus[i], i);
        if (pthread_create(&threads[i], NULL, vcpu_run, &cpus[i]) != 0)
            mpvmm_die(program, "pthread_create");
    }
    int passed = 0;
    for (int i = 0; i < vcpus; i++) {
        pthread_join(threads[i], NULL);
        passed += cpus[i].verdict == 0;
    }

    /* The helpers end when their sockets close; their exit statuses are part of the verdict. */
    close(vm.kick);
    int device_ok = exited_ok(vm.device_pid);
    close(clock_control);
    int clock_ok = exited_ok(vm.clock_pid);
    int maps_self = mpvmm_maps_guest_memory(0);
    int device_may_map = strcmp(transport, "direct") == 0;
    printf("mpvmm: %d of %d vCPUs passed; %u kicks, %u conversions, %u device restarts; device process %s, clock "
           "process %s\n",
           passed, vcpus, atomic_load(&vm.kicks), atomic_load(&vm.conversions), vm.device_restarts,
           device_ok ? "ok" : "FAILED", clock_ok ? "ok" : "FAILED");
    printf("mpvmm: guest memory mapped, read from /proc/PID/maps while the guest ran: vCPU process %s, device "
           "process %s%s, clock process %s\n",
           maps_self == 1 ? "yes" : "NO?", vm.maps_device == 1 ? "YES" : vm.maps_device == 0 ? "no" : "unknown",
           device_may_map ? " (--transport direct: the unprotected baseline)" : "",
           vm.maps_clock == 1 ? "YES" : vm.maps_clock == 0 ? "no" : "unknown");
    int maps_ok = maps_self == 1 && vm.maps_device == device_may_map && vm.maps_clock == 0;
    printf("mpvmm: the clock page's references in gmemd while the guest ran: %d (one GPC per vCPU: at least %d expected)\n",
           vm.clock_page_refs, vcpus);
    int refs_ok = vm.clock_page_refs >= vcpus; /* at least: an update in flight may hold one more for a moment */
    if (vm.device_restarts && vm.gpcs_after_kill != (uint64_t)vcpus) {
        fprintf(stderr, "%s: FAIL: the dead device's GPCs outlived it\n", program);
        refs_ok = 0;
    }
    for (int i = 0; bench && i < vcpus; i++)
        print_bench(&cpus[i], config, transport);
    int disk_ok = bench || hostile || check_disk(disk, vcpus);
    gmem_close(vm.gmem);
    return passed == vcpus && device_ok && clock_ok && maps_ok && refs_ok && disk_ok ? 0 : 1;
}
