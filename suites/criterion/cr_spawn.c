/* cr_spawn.c — a Criterion test binary whose tests leak from a thread they start and from a child they fork. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

__attribute__((noinline)) static void *thread_open(void *arg)
{
    sqlite3 *db = NULL;
    sqlite3_open("file:from_thread?mode=memory", &db);
    return db;
}

__attribute__((noinline)) static void child_open(void)
{
    sqlite3 *db = NULL;
    sqlite3_open("file:from_child?mode=memory", &db);
}

Test(spawn, thread_leaks)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, thread_open, NULL), 0);
    pthread_join(t, NULL);
}

Test(spawn, forked_child_leaks)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        child_open();
        _exit(0); /* a child without exit handlers: its journal still tells */
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
