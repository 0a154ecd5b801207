/* The benchmark's workload: `syscall_loop getppid|read ITERATIONS CPU`
 * pins itself to CPU, makes ITERATIONS syscalls, and prints the mean
 * nanoseconds per call. Timing uses the vDSO clock, which makes no syscall. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) return 64;
    int use_read = strcmp(argv[1], "read") == 0;
    long n = atol(argv[2]);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[3]), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); return 2; }
    int fd = open("/dev/zero", O_RDONLY);
    char byte;
    /* Warm up caches and the branch predictor. */
    for (long i = 0; i < n / 10; i++) syscall(SYS_getppid);
    double start = now_ns();
    if (use_read)
        for (long i = 0; i < n; i++) (void)!read(fd, &byte, 1);
    else
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
    double end = now_ns();
    printf("%.2f\n", (end - start) / n);
    return 0;
}
