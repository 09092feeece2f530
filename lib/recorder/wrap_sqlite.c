/* wrap_sqlite.c — interposed SQLite opens and closes. */
#include <sqlite3.h>
#include <string.h>

#include "recorder.h"

static const char *const sqlite_libs[] = {"libsqlite3.so.0", "libsqlite3.so", NULL};
/* the functions wrapped here: their real ones, shared with dlsym.c through clk_sqlite_wrapped[] */
CLK_REAL_SLOT(sqlite3_open);
CLK_REAL_SLOT(sqlite3_open16);
CLK_REAL_SLOT(sqlite3_open_v2);
CLK_REAL_SLOT(sqlite3_close);
CLK_REAL_SLOT(sqlite3_close_v2);

typedef int (*open_fn)(const char *, sqlite3 **);
typedef int (*open16_fn)(const void *, sqlite3 **);
typedef int (*open_v2_fn)(const char *, sqlite3 **, int, const char *);
typedef int (*close_fn)(sqlite3 *);
typedef const char *(*db_filename_fn)(sqlite3 *, const char *);

/* The target is the file's absolute path when SQLite knows it, else what the caller passed. */
static const char *target_of(sqlite3 *db, const char *given)
{
    if (given && given[0] == ':' && !strcmp(given, ":memory:"))
        return given; /* no file to look up: spares the lookup in the worst-case loop */
    db_filename_fn fn = CLK_REAL(db_filename_fn, sqlite3_db_filename, sqlite_libs);
    /* NULL names the main database without the name compares "main" costs (~100
     * instructions an open); read at 3.40's source, older ones are asked by name */
    static int by_null = -1;
    if (by_null < 0) {
        int (*version)(void) = (int (*)(void))clk_real("sqlite3_libversion_number", sqlite_libs);
        by_null = version && version() >= 3040000;
    }
    const char *path = fn && db && by_null ? fn(db, NULL) : NULL;
    if (!path && fn && db)
        path = fn(db, "main");
    if (path && path[0])
        return path;
    return given && given[0] ? given : ":memory:";
}

/* UTF-16 file names are only for the report: ASCII kept, the rest as '?'. */
static void narrow16(const void *w, char *out, size_t cap)
{
    const unsigned short *p = w;
    size_t n = 0;
    for (; p && *p && n + 1 < cap; p++)
        out[n++] = *p < 0x80 ? (char)*p : '?';
    out[n] = 0;
}

static void after_open(sqlite3 **ppDb, const char *given, int rc, uint32_t stack)
{
    /* a failed open still hands back a connection the caller must close */
    if (ppDb && *ppDb)
        clk_track_open(CONNLEAK_RAW_SQLITE, (uint64_t)(uintptr_t)*ppDb, target_of(*ppDb, given), rc != SQLITE_OK, rc,
                       stack);
}

__attribute__((visibility("default"))) int sqlite3_open(const char *filename, sqlite3 **ppDb)
{
    open_fn real = CLK_REAL_WRAPPED(open_fn, sqlite3_open, sqlite_libs);
    if (!real)
        return SQLITE_ERROR;
    if (clk_in_wrapper)
        return real(filename, ppDb);
    clk_in_wrapper++;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    int rc = real(filename, ppDb);
    after_open(ppDb, filename, rc, stack);
    clk_in_wrapper--;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_open16(const void *filename, sqlite3 **ppDb)
{
    open16_fn real = CLK_REAL_WRAPPED(open16_fn, sqlite3_open16, sqlite_libs);
    if (!real)
        return SQLITE_ERROR;
    if (clk_in_wrapper)
        return real(filename, ppDb);
    clk_in_wrapper++;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    int rc = real(filename, ppDb);
    char given[1024];
    narrow16(filename, given, sizeof given);
    after_open(ppDb, given, rc, stack);
    clk_in_wrapper--;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_open_v2(const char *filename, sqlite3 **ppDb, int flags,
                                                           const char *zVfs)
{
    open_v2_fn real = CLK_REAL_WRAPPED(open_v2_fn, sqlite3_open_v2, sqlite_libs);
    if (!real)
        return SQLITE_ERROR;
    if (clk_in_wrapper)
        return real(filename, ppDb, flags, zVfs);
    clk_in_wrapper++;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    int rc = real(filename, ppDb, flags, zVfs);
    after_open(ppDb, filename, rc, stack);
    clk_in_wrapper--;
    return rc;
}

/* v2 makes a zombie of a busy connection and returns OK: gone either way for us. */
static int do_close(close_fn real, sqlite3 *db, int is_v2)
{
    if (!real)
        return SQLITE_ERROR;
    if (!db || clk_in_wrapper)
        return real(db); /* closing NULL is a no-op, not an event */
    clk_in_wrapper++;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    struct clk_pending p;
    int rc = SQLITE_OK;
    /* a double close is recorded and not passed on: the real call would be a use after free */
    if (clk_track_close_begin(CONNLEAK_RAW_SQLITE, (uint64_t)(uintptr_t)db, stack, &p) == CLK_CLOSE_PASS) {
        rc = real(db);
        clk_track_close_done(&p, is_v2 || rc != SQLITE_BUSY, rc);
    }
    clk_in_wrapper--;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_close(sqlite3 *db)
{
    return do_close(CLK_REAL_WRAPPED(close_fn, sqlite3_close, sqlite_libs), db, 0);
}

__attribute__((visibility("default"))) int sqlite3_close_v2(sqlite3 *db)
{
    return do_close(CLK_REAL_WRAPPED(close_fn, sqlite3_close_v2, sqlite_libs), db, 1);
}

CLK_OWN(sqlite3_open);
CLK_OWN(sqlite3_open16);
CLK_OWN(sqlite3_open_v2);
CLK_OWN(sqlite3_close);
CLK_OWN(sqlite3_close_v2);
const struct clk_wrapped clk_sqlite_wrapped[] = {
    CLK_WRAPPED(sqlite3_open, sqlite_libs),  CLK_WRAPPED(sqlite3_open16, sqlite_libs),
    CLK_WRAPPED(sqlite3_open_v2, sqlite_libs), CLK_WRAPPED(sqlite3_close, sqlite_libs),
    CLK_WRAPPED(sqlite3_close_v2, sqlite_libs), {NULL, NULL, NULL, NULL},
};
