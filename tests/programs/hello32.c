/* Built with -m32: every syscall it makes is an ia32 compat syscall. */
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    syscall(SYS_getppid);
    write(1, "hello from 32 bits\n", 19);
    return 0;
}
