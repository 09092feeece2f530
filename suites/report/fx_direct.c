/* fx_direct.c — a program for direct preloading (LD_PRELOAD without the CLI): a leak and a double close; a fork
 * whose two processes each leak one; a clean run.
 *
 *   fx_direct leak-double STATUS   prints one line on stdout, leaks one connection, closes another twice,
 *                                  exits with STATUS
 *   fx_direct fork                 parent and child each leak one connection; prints parent=PID child=PID
 *   fx_direct clean                opens and closes one connection
 *   fx_direct quick-exit           leaks one connection and ends with _exit (no report, nothing left behind)
 *   fx_direct held                 holds one connection 300 ms, closes it, leaks another */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static sqlite3 *keep[4]; /* reachable: the leaks are the detector's to find, not the compiler's to drop */

NOINLINE static void direct_open_leak(void)
{
    sqlite3_open(":memory:", &keep[0]);
}

NOINLINE static sqlite3 *direct_open_twice(void)
{
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    return db;
}

NOINLINE static void direct_close_first(sqlite3 *db)
{
    sqlite3_close(db);
}

NOINLINE static void direct_close_again(sqlite3 *db)
{
    sqlite3_close(db); /* not passed on to SQLite by the detector */
}

NOINLINE static void parent_open_leak(void)
{
    sqlite3_open(":memory:", &keep[1]);
}

NOINLINE static void child_open_leak(void)
{
    sqlite3_open(":memory:", &keep[2]);
}

NOINLINE static void direct_hold_slowly(void)
{
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    usleep(300 * 1000);
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "leak-double")) {
        printf("direct stdout line\n");
        direct_open_leak();
        sqlite3 *db = direct_open_twice();
        direct_close_first(db);
        direct_close_again(db);
        return argc > 2 ? atoi(argv[2]) : 0;
    }
    if (!strcmp(mode, "fork")) {
        fflush(stdout);
        pid_t child = fork();
        if (child < 0)
            return 99;
        if (child == 0) {
            child_open_leak();
            exit(0);
        }
        int status;
        waitpid(child, &status, 0);
        parent_open_leak();
        printf("parent=%d child=%d\n", (int)getpid(), (int)child);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
    }
    if (!strcmp(mode, "clean")) {
        sqlite3 *db = direct_open_twice();
        direct_close_first(db);
        printf("clean done\n");
        return 0;
    }
    if (!strcmp(mode, "quick-exit")) {
        direct_open_leak();
        _exit(0);
    }
    if (!strcmp(mode, "held")) {
        direct_hold_slowly();
        direct_open_leak();
        return 0;
    }
    fprintf(stderr, "usage: fx_direct leak-double STATUS | fork | clean | quick-exit | held\n");
    return 2;
}
