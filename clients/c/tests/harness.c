/*
 * harness.c - a private gmemd per test, a timeout guard, and the failure tally.
 */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int test_failures;
int test_checks;

/* Daemons alive, so that the timeout guard does not leave them behind. */
static volatile pid_t live[8];

static void track(pid_t pid, pid_t replace)
{
    for (int i = 0; i < 8; i++)
        if (live[i] == replace) {
            live[i] = pid;
            return;
        }
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static int accepts(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) {
        close(fd);
        return 0;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void print_log(const struct daemon *d)
{
    FILE *f = fopen(d->log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "  gmemd: %s", line);
    if (f)
        fclose(f);
}

int daemon_start(struct daemon *d, const char *const *args)
{
    const char *bin = getenv("GMEMD_BINARY");
    if (!bin || !*bin) {
        fprintf(stderr, "GMEMD_BINARY is not set: point it at the gmemd to test (test.sh finds the Swift build's)\n");
        return -1;
    }
    snprintf(d->dir, sizeof d->dir, "/tmp/gmem-test-XXXXXX");
    if (!mkdtemp(d->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(d->sock, sizeof d->sock, "%s/gmemd.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/gmemd.log", d->dir);

    const char *argv[32] = { bin, "--socket", d->sock };
    int n = 3;
    for (; args && *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;

    d->pid = fork();
    if (d->pid < 0) {
        perror("fork");
        return -1;
    }
    if (d->pid == 0) {
        int log = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(log, 1);
        dup2(log, 2);
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    track(d->pid, 0);
    for (int i = 0; i < 1000; i++) {
        if (accepts(d->sock))
            return 0;
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "gmemd (%s) exited before accepting, status %d\n", bin, status);
            print_log(d);
            track(0, d->pid);
            d->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "gmemd did not accept on %s within 10 s\n", d->sock);
    print_log(d);
    daemon_stop(d);
    return -1;
}

void daemon_stop(struct daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int status;
        for (int i = 0; i < 500 && waitpid(d->pid, &status, WNOHANG) == 0; i++)
            sleep_ms(10);
        if (kill(d->pid, 0) == 0) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
        }
        track(0, d->pid);
        d->pid = 0;
    }
    unlink(d->sock);
    unlink(d->log);
    rmdir(d->dir);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "TIMEOUT: the test hung (guard expired)\n";
    (void)!write(2, msg, sizeof msg - 1);
    for (int i = 0; i < 8; i++)
        if (live[i] > 0)
            kill(live[i], SIGKILL);
    _exit(99);
}

void guard(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

int test_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}
