/* fx_policy.c — fixture: leaks and double-closes SQLite connections from distinct functions, files and modules, one per argument. */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "fx_policy.h"

/* Each opener is its own non-inlined function: suppressions match them by name. */

NOINLINE static void open_cache(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fx_fail("open_cache");
}

NOINLINE static void open_session(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fx_fail("open_session");
}

NOINLINE static sqlite3 *open_for_twice(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fx_fail("open_for_twice");
    return db;
}

NOINLINE static void close_once(sqlite3 *db)
{
    sqlite3_close(db);
}

NOINLINE static void close_twice(sqlite3 *db)
{
    sqlite3_close(db);
}

NOINLINE static void clean(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fx_fail("clean");
    sqlite3_close(db);
}

void fx_fail(const char *what)
{
    fprintf(stderr, "fx_policy: %s failed\n", what);
    exit(3);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fx_policy (cache|session|other|plugin|double-close|clean)...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *m = argv[i];
        if (!strcmp(m, "cache"))
            open_cache();
        else if (!strcmp(m, "session"))
            open_session();
        else if (!strcmp(m, "other"))
            open_elsewhere(); /* fx_policy_other.c: matched by file */
        else if (!strcmp(m, "plugin"))
            plugin_open(); /* libfxpolicyplug.so: matched by module */
        else if (!strcmp(m, "double-close")) {
            sqlite3 *db = open_for_twice();
            close_once(db);
            close_twice(db);
        } else if (!strcmp(m, "clean"))
            clean();
        else {
            fprintf(stderr, "fx_policy: unknown mode %s\n", m);
            return 2;
        }
    }
    return 0;
}
