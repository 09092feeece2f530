/* fx_stress.c — threads churning SQLite connections while the main thread forks and execs leaking children. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long per_thread;

__attribute__((noinline)) static void *churn(void *arg)
{
    for (long i = 0; i < per_thread; i++) {
        sqlite3 *db;
        if (sqlite3_open(":memory:", &db) != SQLITE_OK)
            abort();
        sqlite3_close(db);
    }
    return NULL;
}

__attribute__((noinline)) static void stress_child_leak(void)
{
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "child")) {
        stress_child_leak();
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: fx_stress THREADS PER_THREAD FORKS | fx_stress child\n");
        return 2;
    }
    int threads = atoi(argv[1]), forks = atoi(argv[3]);
    per_thread = atol(argv[2]);
    pthread_t t[64];
    for (int i = 0; i < threads && i < 64; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    /* forks while the threads hold (or are about to take) the recorder's locks;
     * a child of a threaded process may only exec or _exit (SQLite's own
     * mutexes may be held by a thread that does not exist in the child) */
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (i % 2)
                execl(argv[0], argv[0], "child", (char *)NULL);
            _exit(i % 2 ? 127 : 0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            return 3;
    }
    for (int i = 0; i < threads && i < 64; i++)
        pthread_join(t[i], NULL);
    return 0;
}
