/* `refused SYSCALL COUNT SECONDS`: makes SYSCALL (`mkdir`, `statfs`, or
 * `none`) COUNT times, writes one line per call and then `done`, and
 * sleeps SECONDS. Raw syscalls only, so that `refused none 0 0` makes
 * every syscall the other forms make but the one named: recorded, it is
 * the profile the named one falls outside of. `thread-SYSCALL` makes the
 * calls on a second thread, which the main thread joins (a thread killed
 * by the profile ends, the process goes on). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void say(const char *text) { syscall(SYS_write, 1, text, strlen(text)); }

static void say_result(const char *name, long ret) {
    char line[64];
    int n = 0;
    for (const char *p = name; *p && n < 32; p++) line[n++] = *p;
    line[n++] = ':';
    line[n++] = ' ';
    int e = ret < 0 ? errno : 0;
    if (e == 0) {
        line[n++] = '0';
    } else {
        char digits[8];
        int d = 0;
        while (e > 0 && d < 8) { digits[d++] = (char)('0' + e % 10); e /= 10; }
        line[n++] = '-';
        while (d > 0) line[n++] = digits[--d];
    }
    line[n++] = '\n';
    syscall(SYS_write, 1, line, n);
}

static const char *name;
static long count;

static void *calls(void *arg) {
    (void)arg;
    for (long i = 0; i < count; i++) {
        long ret;
        if (strcmp(name, "mkdir") == 0) {
            ret = syscall(SYS_mkdir, "/tmp/refused", 0700);
        } else if (strcmp(name, "statfs") == 0) {
            char buf[256];
            ret = syscall(SYS_statfs, "/", buf);
        } else {
            break;
        }
        say_result(name, ret);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 64;
    name = argv[1];
    count = atol(argv[2]);
    struct timespec pause = {atol(argv[3]), 0};
    int threaded = strncmp(name, "thread-", 7) == 0;
    if (threaded) name += 7;
    if (strcmp(name, "mkdir") != 0 && strcmp(name, "statfs") != 0 && strcmp(name, "none") != 0)
        return 64;
    if (threaded) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, calls, NULL) != 0) return 2;
        pthread_join(thread, NULL);
    } else {
        calls(NULL);
    }
    say("done\n");
    syscall(SYS_nanosleep, &pause, NULL);
    return 0;
}
