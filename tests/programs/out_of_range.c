/* Makes a syscall whose number no table has, and exits. */
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    long r = syscall(1000);
    printf("syscall 1000: %ld\n", r);
    return 0;
}
