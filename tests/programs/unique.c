/* `a` calls getpriority, `b` calls getpgid, each for about half a second,
 * so that two recordings of them overlap in time. */
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    int a = strcmp(argv[1], "a") == 0;
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 50; i++) {
        if (a) getpriority(PRIO_PROCESS, 0); else getpgid(0);
        nanosleep(&pause, NULL);
    }
    return 0;
}
