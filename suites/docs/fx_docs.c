/* fx_docs.c — fixture for suites/docs: leaks, a double close, an unknown close, a leak on a thread and a PostgreSQL leak, each from a function of its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "../fixtures/fx_unseen.h"

#define NOINLINE __attribute__((noinline))

static void fail(const char *what)
{
    fprintf(stderr, "fx_docs: %s failed\n", what);
    exit(3);
}

NOINLINE static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        fail("sqlite3_open");
    return db;
}

/* Two distinct leaks: each opener is a function of its own, both reached through open_db. */
NOINLINE static void open_alpha_cache(void) { (void)open_db(":memory:"); }
NOINLINE static void open_beta_store(void) { (void)open_db(":memory:"); }

/* One opener, one line, two targets: two findings with one fingerprint (--gen-suppressions writes one rule). */
NOINLINE static void open_settings(void)
{
    const char *targets[] = {"file:settings?mode=memory", ":memory:"};
    for (int i = 0; i < 2; i++)
        (void)open_db(targets[i]);
}

NOINLINE static void close_first(sqlite3 *db) { sqlite3_close(db); }
NOINLINE static void close_again(sqlite3 *db) { sqlite3_close(db); }

NOINLINE static void double_close(void)
{
    sqlite3 *db = open_db(":memory:");
    close_first(db);
    close_again(db);
}

/* A close of a handle the detector never saw opened (SQLite's own open, reached past the wrappers). */
NOINLINE static void close_stranger(void)
{
    int (*real_open)(const char *, sqlite3 **, int, const char *) =
        (int (*)(const char *, sqlite3 **, int, const char *))fx_unseen_symbol("libsqlite3.so.0", "sqlite3_open_v2");
    sqlite3 *db = NULL;
    if (!real_open || real_open(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        fail("real sqlite3_open_v2");
    sqlite3_close(db);
}

NOINLINE static void *worker_body(void *arg)
{
    (void)open_db(":memory:");
    return arg;
}

NOINLINE static void spawn_worker(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, worker_body, NULL) != 0 || pthread_join(t, NULL) != 0)
        fail("worker thread");
}

/* A PGconn is open whether or not the server answered: PQfinish is still owed. */
NOINLINE static void connect_orders(void)
{
    PGconn *c = PQconnectdb("connect_timeout=5");
    if (!c)
        fail("PQconnectdb");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "gen")) { /* --gen-suppressions: 2 distinct leaks and a double close */
        open_alpha_cache();
        open_beta_store();
        double_close();
    } else if (!strcmp(mode, "targets")) { /* two findings sharing a stack, and another leak */
        open_settings();
        open_alpha_cache();
    } else if (!strcmp(mode, "all")) {
        /* the stranger first: after the double close its handle could reuse the freed one's address */
        close_stranger();
        open_alpha_cache();
        open_beta_store();
        double_close();
        spawn_worker();
        connect_orders();
    } else if (!strcmp(mode, "held")) { /* --held-longer-than: one held 50 ms and closed, one closed at once */
        sqlite3 *db = open_db(":memory:");
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        close_first(db);
        close_first(open_db(":memory:"));
    } else if (!strcmp(mode, "held-exit")) { /* a fork child leaves by _exit holding one; the parent lives on 300 ms */
        pid_t pid = fork();
        if (pid == 0) {
            (void)open_db(":memory:");
            _exit(0);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
            fail("fork child");
        nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL);
    } else if (!strcmp(mode, "busy")) { /* a close that returns SQLITE_BUSY: a statement left unfinalized */
        sqlite3 *db = open_db(":memory:");
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "select 42 as docs_marker", -1, &st, NULL) != SQLITE_OK)
            fail("sqlite3_prepare_v2");
        if (sqlite3_close(db) != SQLITE_BUSY)
            fail("a busy sqlite3_close");
    } else if (!strcmp(mode, "clean")) {
        close_first(open_db(":memory:"));
    } else {
        fprintf(stderr, "usage: fx_docs gen | all | targets | held | held-exit | busy | clean\n");
        return 2;
    }
    printf("fx_docs %s done\n", mode);
    return 0;
}
