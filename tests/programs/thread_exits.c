/* Threads that outlive or replace the main thread.
 * `leader-exits`: the main thread ends with pthread_exit; another thread,
 *   once the main one is gone, calls getitimer (made nowhere else) and
 *   exits 0.
 * `exec-from-thread`: a thread that is not the main one execs this program
 *   with `after-exec` (the kernel ends the main thread first).
 * `after-exec`: calls sched_getscheduler (made nowhere else) and exits 0.
 * Exits 3 if the distinctive call fails (under a profile that lacks it). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char *self;
static pid_t leader;

/* Waits up to 5 s until the main thread has exited (a zombie). */
static void wait_for_leader(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)leader);
    struct timespec tick = {0, 1000 * 1000};
    for (int i = 0; i < 5000; i++) {
        char stat[512] = {0};
        FILE *f = fopen(path, "r");
        if (!f) return;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        char *state = n ? strrchr(stat, ')') : NULL;
        if (state && (state[2] == 'Z' || state[2] == 'X')) return;
        nanosleep(&tick, NULL);
    }
}

static void *outlive(void *arg) {
    (void)arg;
    wait_for_leader();
    struct itimerval value;
    _exit(getitimer(ITIMER_REAL, &value) == 0 ? 0 : 3);
}

static void *replace(void *arg) {
    (void)arg;
    char *args[] = {self, "after-exec", NULL};
    execv(self, args);
    _exit(2);
}

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    self = argv[0];
    leader = getpid();
    pthread_t t;
    if (strcmp(argv[1], "after-exec") == 0)
        return sched_getscheduler(0) >= 0 ? 0 : 3;
    if (strcmp(argv[1], "leader-exits") == 0) {
        if (pthread_create(&t, NULL, outlive, NULL) != 0) return 2;
        pthread_exit(NULL);
    }
    if (strcmp(argv[1], "exec-from-thread") == 0) {
        if (pthread_create(&t, NULL, replace, NULL) != 0) return 2;
        for (;;) pause();
    }
    return 64;
}
