/* wrap_sqlite.c — interposed SQLite opens and closes. */
#include <sqlite3.h>
#include <string.h>

#include "recorder.h"

/* The family's names (real.c): the wrapped functions, then the helpers they call. */
enum { S_OPEN, S_OPEN16, S_OPEN_V2, S_CLOSE, S_CLOSE_V2, S_NWRAPPED, S_DB_FILENAME = S_NWRAPPED, S_LIBVERSION,
       S_NEXT_STMT, S_SQL };
static const char *const sqlite_libs[] = {"libsqlite3.so.0", "libsqlite3.so", NULL};
static const char *const sqlite_names[] = {"sqlite3_open",        "sqlite3_open16",           "sqlite3_open_v2",
                                           "sqlite3_close",       "sqlite3_close_v2",         "sqlite3_db_filename",
                                           "sqlite3_libversion_number", "sqlite3_next_stmt", "sqlite3_sql", NULL};

static struct clk_family sqlite_family = {.libs = sqlite_libs, .names = sqlite_names, .nwrapped = S_NWRAPPED};

typedef int (*open_fn)(const char *, sqlite3 **);
typedef int (*open16_fn)(const void *, sqlite3 **);
typedef int (*open_v2_fn)(const char *, sqlite3 **, int, const char *);
typedef int (*close_fn)(sqlite3 *);
typedef const char *(*db_filename_fn)(sqlite3 *, const char *);

/* The target is the file's absolute path when SQLite knows it, else what the caller passed. */
static const char *target_of(const struct clk_copy *c, sqlite3 *db, const char *given)
{
    if (given && given[0] == ':' && !strcmp(given, ":memory:"))
        return given; /* no file to look up: spares the lookup in the worst-case loop */
    db_filename_fn fn = (db_filename_fn)clk_copy_fn(c, S_DB_FILENAME);
    /* NULL names the main database without the name compares "main" costs (~100
     * instructions an open); read at 3.40's source, older ones are asked by name.
     * The copy's note: 0 not asked yet, 1 by name, 2 NULL. */
    int note = __atomic_load_n(&c->note, __ATOMIC_RELAXED);
    if (!note) {
        int (*version)(void) = (int (*)(void))clk_copy_fn(c, S_LIBVERSION);
        note = version && version() >= 3040000 ? 2 : 1;
        __atomic_store_n((int *)&c->note, note, __ATOMIC_RELAXED);
    }
    const char *path = fn && db && note == 2 ? fn(db, NULL) : NULL;
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

static void after_open(const struct clk_copy *c, sqlite3 **ppDb, const char *given, int rc, uint32_t stack, void *ra)
{
    /* a failed open still hands back a connection the caller must close */
    if (!ppDb || !*ppDb)
        return;
    int flags = rc != SQLITE_OK;
    /* Python's sqlite3 module: its closes say who closed (pysqlite.c); only where an interpreter runs */
    if (__builtin_expect(__atomic_load_n(&clk_py_active, __ATOMIC_RELAXED) > 0, 0) && clk_pysqlite_opener(ra))
        flags |= CLK_OPEN_PYSQLITE;
    clk_track_open(CONNLEAK_RAW_SQLITE, (uint64_t)(uintptr_t)*ppDb, target_of(c, *ppDb, given), flags, rc, stack);
}

/* Each wrapper: the real function for this caller (real.c); straight to it
 * when this thread is inside our own bookkeeping or SQLite calls itself;
 * else the stack, the real call, the record. clk_busy is set around our own
 * work only, never across the real call: an open made inside it (an
 * auto-extension, a VFS, a signal handler) is an event of its own, and a
 * longjmp out of it leaves nothing behind. */
__attribute__((visibility("default"))) int sqlite3_open(const char *filename, sqlite3 **ppDb)
{
    void *ra = __builtin_return_address(0);
    struct clk_copy own;
    const struct clk_copy *c;
    open_fn real = (open_fn)clk_real_for(&sqlite_family, S_OPEN, ra, &own, &c);
    if (clk_busy || clk_self_call(c, S_OPEN, ra))
        return real(filename, ppDb);
    clk_busy = 1;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    clk_busy = 0;
    int rc = real(filename, ppDb);
    clk_busy = 1;
    after_open(c, ppDb, filename, rc, stack, ra);
    clk_busy = 0;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_open16(const void *filename, sqlite3 **ppDb)
{
    void *ra = __builtin_return_address(0);
    struct clk_copy own;
    const struct clk_copy *c;
    open16_fn real = (open16_fn)clk_real_for(&sqlite_family, S_OPEN16, ra, &own, &c);
    if (clk_busy || clk_self_call(c, S_OPEN16, ra))
        return real(filename, ppDb);
    clk_busy = 1;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    clk_busy = 0;
    int rc = real(filename, ppDb);
    clk_busy = 1;
    char given[1024];
    narrow16(filename, given, sizeof given);
    after_open(c, ppDb, given, rc, stack, ra);
    clk_busy = 0;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_open_v2(const char *filename, sqlite3 **ppDb, int flags,
                                                           const char *zVfs)
{
    void *ra = __builtin_return_address(0);
    struct clk_copy own;
    const struct clk_copy *c;
    open_v2_fn real = (open_v2_fn)clk_real_for(&sqlite_family, S_OPEN_V2, ra, &own, &c);
    if (clk_busy || clk_self_call(c, S_OPEN_V2, ra))
        return real(filename, ppDb, flags, zVfs);
    clk_busy = 1;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    clk_busy = 0;
    int rc = real(filename, ppDb, flags, zVfs);
    clk_busy = 1;
    after_open(c, ppDb, filename, rc, stack, ra);
    clk_busy = 0;
    return rc;
}

/* sqlite3_close refused (SQLITE_BUSY): the statements that kept it open, by their SQL, read from
 * SQLite without changing its state (sqlite3_next_stmt and sqlite3_sql only read its list). */
#define UNFINALIZED_MAX 8
static void note_unfinalized(const struct clk_copy *c, sqlite3 *db)
{
    sqlite3_stmt *(*next)(sqlite3 *, sqlite3_stmt *) =
        (sqlite3_stmt * (*)(sqlite3 *, sqlite3_stmt *)) clk_copy_fn(c, S_NEXT_STMT);
    const char *(*sql)(sqlite3_stmt *) = (const char *(*)(sqlite3_stmt *))clk_copy_fn(c, S_SQL);
    if (!next || !sql)
        return;
    int n = 0;
    for (sqlite3_stmt *s = next(db, NULL); s && n < UNFINALIZED_MAX; s = next(db, s), n++) {
        const char *text = sql(s);
        clk_track_note_sql(CONNLEAK_RAW_SQLITE, (uint64_t)(uintptr_t)db, text ? text : "?");
    }
}

/* v2 makes a zombie of a busy connection and returns OK: gone either way for us.
 * Inlined, so that clk_stack_here is called from the wrapper itself. */
static inline __attribute__((always_inline)) int do_close(int i, void *ra, sqlite3 *db, int is_v2)
{
    struct clk_copy own;
    const struct clk_copy *c;
    close_fn real = (close_fn)clk_real_for(&sqlite_family, i, ra, &own, &c);
    if (!db || clk_busy || clk_self_call(c, i, ra))
        return real(db); /* closing NULL is a no-op, not an event */
    clk_busy = 1;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    struct clk_pending p;
    int rc = SQLITE_OK;
    /* a double close is recorded and not passed on: the real call would be a use after free */
    if (clk_track_close_begin(CONNLEAK_RAW_SQLITE, (uint64_t)(uintptr_t)db, stack, &p) == CLK_CLOSE_PASS) {
        if (__builtin_expect(p.flags & CLK_OPEN_PYSQLITE, 0)) /* the program's close() or the deallocator */
            p.flags = (uint16_t)((p.flags & ~CLK_OPEN_PYSQLITE) | clk_pysqlite_verdict(ra));
        clk_busy = 0;
        rc = real(db);
        clk_busy = 1;
        clk_track_close_done(&p, is_v2 || rc != SQLITE_BUSY, rc);
        if (!is_v2 && rc == SQLITE_BUSY)
            note_unfinalized(c, db);
    }
    clk_busy = 0;
    return rc;
}

__attribute__((visibility("default"))) int sqlite3_close(sqlite3 *db)
{
    return do_close(S_CLOSE, __builtin_return_address(0), db, 0);
}

__attribute__((visibility("default"))) int sqlite3_close_v2(sqlite3 *db)
{
    return do_close(S_CLOSE_V2, __builtin_return_address(0), db, 1);
}

CLK_OWN(sqlite3_open);
CLK_OWN(sqlite3_open16);
CLK_OWN(sqlite3_open_v2);
CLK_OWN(sqlite3_close);
CLK_OWN(sqlite3_close_v2);
const struct clk_wrapped clk_sqlite_wrapped[] = {
    CLK_WRAPPED(sqlite3_open, &sqlite_family, S_OPEN),
    CLK_WRAPPED(sqlite3_open16, &sqlite_family, S_OPEN16),
    CLK_WRAPPED(sqlite3_open_v2, &sqlite_family, S_OPEN_V2),
    CLK_WRAPPED(sqlite3_close, &sqlite_family, S_CLOSE),
    CLK_WRAPPED(sqlite3_close_v2, &sqlite_family, S_CLOSE_V2),
    {NULL, NULL, NULL, 0},
};
