/* Makes a cgroup below its own and another below that, moves itself into
 * the deeper one, calls statfs there (and nowhere else), then moves back
 * and removes both. Exits 3 if statfs fails (under a profile that lacks
 * it), 2 on set-up errors. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

static int move_to(const char *dir) {
    char procs[4200];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    int fd = open(procs, O_WRONLY);
    if (fd < 0) return -1;
    int ok = write(fd, "0", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

int main(void) {
    char line[4096] = {0};
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 2;
    char *own = NULL;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            own = line + 3;
            own[strcspn(own, "\n")] = 0;
            break;
        }
    fclose(f);
    if (!own) return 2;
    const char *mount = access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0
                            ? "/sys/fs/cgroup/unified"
                            : "/sys/fs/cgroup";
    char parent[4096], child[4200], inner[4300];
    snprintf(parent, sizeof parent, "%s%s", mount, strcmp(own, "/") == 0 ? "" : own);
    snprintf(child, sizeof child, "%s/sub-%d", parent, (int)getpid());
    snprintf(inner, sizeof inner, "%s/inner", child);
    if (mkdir(child, 0755) != 0 || mkdir(inner, 0755) != 0 || move_to(inner) != 0) {
        perror(inner);
        return 2;
    }
    struct statfs st;
    int status = statfs("/", &st) == 0 ? 0 : 3;
    if (move_to(parent) != 0 || rmdir(inner) != 0 || rmdir(child) != 0) return 2;
    if (status != 0) fputs("statfs failed in the child cgroup\n", stderr);
    return status;
}
