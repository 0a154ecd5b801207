/* Threads make calls the main thread never makes: gettid, sched_yield. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *work(void *arg) {
    (void)arg;
    syscall(SYS_gettid);
    sched_yield();
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, work, NULL) != 0) return 2;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    puts("threads done");
    return 0;
}
