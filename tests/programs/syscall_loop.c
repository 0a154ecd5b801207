/* The benchmark's workload: `syscall_loop getppid|read ITERATIONS CPU`
 * pins itself to CPU, makes ITERATIONS syscalls in chunks of CHUNK, and
 * prints two figures in nanoseconds per call: the mean over all calls, and
 * the 10th percentile of the chunks' means. On a shared virtual machine
 * the same loop runs in two speeds (here ~210 and ~290 ns per getppid) as
 * the host schedules other work; the low percentile of short chunks is the
 * cost of the calls themselves, the mean includes the host's noise.
 * Timing uses the vDSO clock, which makes no syscall. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 2000

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) return 64;
    int use_read = strcmp(argv[1], "read") == 0;
    long chunks = atol(argv[2]) / CHUNK;
    if (chunks < 10) return 64;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[3]), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); return 2; }
    int fd = open("/dev/zero", O_RDONLY);
    char byte;
    double *chunk_ns = malloc(chunks * sizeof *chunk_ns);
    if (fd < 0 || !chunk_ns) return 2;
    /* Warm up caches and the branch predictor. */
    for (long i = 0; i < chunks * CHUNK / 10; i++) syscall(SYS_getppid);
    double total = 0;
    for (long c = 0; c < chunks; c++) {
        double start = now_ns();
        if (use_read)
            for (int i = 0; i < CHUNK; i++) (void)!read(fd, &byte, 1);
        else
            for (int i = 0; i < CHUNK; i++) syscall(SYS_getppid);
        chunk_ns[c] = (now_ns() - start) / CHUNK;
        total += chunk_ns[c];
    }
    qsort(chunk_ns, chunks, sizeof *chunk_ns, compare);
    printf("%.2f %.2f\n", total / chunks, chunk_ns[chunks / 10]);
    return 0;
}
