/* fx_formats.c — fixture for the format suites: one leak site hit twice, a double close and an unknown close, each three frames deep. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../fixtures/fx_unseen.h"

#define NOINLINE __attribute__((noinline))

/* Every stack below is opener/closer <- mode_mixed <- main, so `--stack-depth 3`
 * ends each one at main and the goldens hold no libc frames (their lines and
 * offsets differ between machines). Line numbers are part of the goldens:
 * regenerate them (CONNLEAK_UPDATE_GOLDEN=1) after editing this file. */

static void fail(const char *what)
{
    fprintf(stderr, "fx_formats: %s failed\n", what);
    exit(3);
}

NOINLINE static void leak_twice(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        fail("sqlite3_open");
}

NOINLINE static sqlite3 *open_once(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fail("sqlite3_open");
    return db;
}

NOINLINE static void close_first(sqlite3 *db)
{
    sqlite3_close(db);
}

NOINLINE static void close_again(sqlite3 *db)
{
    sqlite3_close(db);
}

/* A handle from SQLite's own sqlite3_open_v2, found with glibc's own dlsym (through dlvsym) so the detector never sees the open. */
NOINLINE static sqlite3 *open_unseen(void)
{
    int (*real_open)(const char *, sqlite3 **, int, const char *) =
        (int (*)(const char *, sqlite3 **, int, const char *))fx_unseen_symbol("libsqlite3.so.0", "sqlite3_open_v2");
    sqlite3 *db = NULL;
    if (!real_open || real_open(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        fail("real sqlite3_open_v2");
    return db;
}

NOINLINE static void close_stranger(sqlite3 *db)
{
    sqlite3_close(db);
}

/* The leaked database's name carries every character the formats must escape. */
#define ODD_NAME "odd & <name> \"q\" 'x'\t,:%.db"

NOINLINE static int mode_mixed(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, ODD_NAME);
    for (int i = 0; i < 2; i++)
        leak_twice(path);
    /* the stranger first: after the double close its handle could reuse the freed one's address */
    close_stranger(open_unseen());
    sqlite3 *db = open_once();
    close_first(db);
    close_again(db);
    printf("mixed done\n");
    return 0;
}

/* Linux file names are bytes: one that is not UTF-8 must still give well-formed XML and JSON. */
NOINLINE static int mode_bad_utf8(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bad\xff\xc3(\xed\xa0\x80.db", dir);
    leak_twice(path);
    return 0;
}

NOINLINE static int mode_clean(void)
{
    close_first(open_once());
    printf("clean done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "mixed"))
        return mode_mixed(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "bad-utf8"))
        return mode_bad_utf8(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "clean"))
        return mode_clean();
    fprintf(stderr, "usage: fx_formats mixed DIR | bad-utf8 DIR | clean\n");
    return 2;
}
