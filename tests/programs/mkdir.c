/* `mkdir PATH`: exit 0 if the directory was made, 3 on EPERM, 4 on another
 * error. `stat PATH`: stats PATH. Both print a line, so that the only
 * syscall one makes and the other does not is mkdir. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    if (argc != 3) return 64;
    struct stat st;
    if (strcmp(argv[1], "stat") == 0) {
        int ok = stat(argv[2], &st) == 0;
        printf("stat: %s\n", ok ? "ok" : strerror(errno));
        return ok ? 0 : 4;
    }
    if (mkdir(argv[2], 0700) == 0) { puts("made"); return 0; }
    printf("mkdir: %s\n", strerror(errno));
    return errno == EPERM ? 3 : 4;
}
