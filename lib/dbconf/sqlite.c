/* sqlite.c — the SQLite backend: open, per-connection PRAGMAs, echo and statement timeout, statements, BEGIN modes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct sq_engine {
    char *filename; /* what sqlite3_open_v2 gets */
};

/* Per connection: the echo and statement-timeout hooks read it. */
struct sq_state {
    const dbconf_engine *e;
    double timeout;   /* seconds, 0: none */
    double started;   /* when the running statement began */
    int timed_out;    /* the progress handler interrupted it */
};

static int sq_engine_init(dbconf_engine *e, char *err, size_t errlen)
{
    struct sq_engine *se = calloc(1, sizeof *se);
    if (!se)
        return dbc_fail(err, errlen, "dbconf: out of memory");
    e->be_data = se;
    se->filename = dbc_sqlite_filename(e->cfg->url, err, errlen);
    if (!se->filename)
        return -1;
    char *path = dbc_sqlite_disk_path(se->filename);
    if (!path) {
        e->target = dbc_strdup(se->filename);
    } else if (path[0] == '/') {
        e->target = path;
        path = NULL;
    } else {
        /* reports should name the file wherever they are read */
        char cwd[4096];
        e->target = getcwd(cwd, sizeof cwd) ? dbc_printf("%s/%s", cwd, path) : dbc_strdup(path);
    }
    free(path);
    if (!e->target)
        return dbc_fail(err, errlen, "dbconf: out of memory");
    return 0;
}

static void sq_engine_free(dbconf_engine *e)
{
    struct sq_engine *se = e->be_data;
    if (se)
        free(se->filename);
    free(se);
    free(e->target);
    e->be_data = NULL;
    e->target = NULL;
}

/* SQLITE_TRACE_STMT fires as each statement starts: echo it and start its clock. */
static int sq_trace(unsigned type, void *ctx, void *p, void *x)
{
    struct sq_state *st = ctx;
    const char *sql = x;
    if (type != SQLITE_TRACE_STMT || !sql)
        return 0;
    dbc_echo(st->e, sql);
    if (strncmp(sql, "--", 2) != 0) /* "--" marks a trigger running inside the statement */
        st->started = dbc_now();
    return 0;
}

/* Called every few thousand VM steps; a non-zero return interrupts the statement. */
static int sq_progress(void *ctx)
{
    struct sq_state *st = ctx;
    if (st->started > 0 && dbc_now() - st->started > st->timeout) {
        st->timed_out = 1;
        return 1;
    }
    return 0;
}

static int sq_error(struct sq_state *st, sqlite3 *db, int rc, const char *msg, char *err, size_t errlen)
{
    if ((rc & 0xff) == SQLITE_INTERRUPT && st && st->timed_out)
        return dbc_fail(err, errlen, "dbconf: statement timeout of %g s exceeded: SQLite interrupted the statement",
                        st->timeout);
    return dbc_fail(err, errlen, "dbconf: SQLite error %d (%s): %s", rc, sqlite3_errstr(rc),
                    msg ? msg : sqlite3_errmsg(db));
}

static int first_value_cb(void *ctx, int n, char **vals, char **names)
{
    char *out = ctx;
    snprintf(out, 32, "%s", n > 0 && vals[0] ? vals[0] : "");
    return 0;
}

/* The PRAGMAs every new connection gets (they last as long as the connection). */
static int sq_setup(dbconf_engine *e, sqlite3 *db, struct sq_state *st, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc;
    /* the busy timeout goes first so that two connections switching a new
     * file to WAL at once wait for each other instead of failing */
    sqlite3_busy_timeout(db, e->busy_timeout_ms);

    /* WAL lets readers go on while one connection writes; a deferred reader
     * that later writes can still meet SQLITE_BUSY, which is why
     * dbconf_begin(.., with_for_update=1) takes the write lock up front */
    char mode[32] = "";
    /* a connection that finds another one in the middle of the switch (or of WAL
     * recovery) can be told SQLITE_BUSY without its busy handler being asked:
     * try again, within the busy timeout */
    for (int waited_ms = 0;; waited_ms += 10) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", first_value_cb, mode, &msg);
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= e->busy_timeout_ms)
            break;
        sqlite3_free(msg);
        msg = NULL;
        sqlite3_sleep(10);
    }
    if (rc != SQLITE_OK)
        goto fail;
    if (strcmp(mode, "wal") != 0) {
        if (e->cfg->inmemory)
            dbc_engine_set_notice(e, "%s is an in-memory database: it keeps journal_mode=%s (WAL needs a file)",
                                  e->target, mode);
        else
            dbc_engine_set_notice(e, "%s could not switch to WAL and keeps journal_mode=%s", e->target, mode);
    }

    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA foreign_keys = ON;"
             /* renaming a table must rewrite the references to it (migrations rely on it) */
             "PRAGMA legacy_alter_table = OFF;"
             /* under WAL, NORMAL is safe against corruption and much faster than FULL */
             "PRAGMA synchronous = NORMAL;"
             "PRAGMA cache_size = 20000;"
             /* how long a statement waits for a lock before SQLITE_BUSY */
             "PRAGMA busy_timeout = %d;",
             e->busy_timeout_ms);
    rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        goto fail;
    return 0;
fail:
    sq_error(st, db, rc, msg, err, errlen);
    sqlite3_free(msg);
    return -1;
}

static int sq_connect(dbconf_engine *e, void **handle, void **state, char *err, size_t errlen)
{
    struct sq_engine *se = e->be_data;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(se->filename, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        dbc_fail(err, errlen, "dbconf: cannot open SQLite database %s: %s", e->target,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db); /* a failed open still returns a handle to close */
        return -1;
    }
    sqlite3_extended_result_codes(db, 1);
    struct sq_state *st = calloc(1, sizeof *st);
    if (!st) {
        sqlite3_close(db);
        return dbc_fail(err, errlen, "dbconf: out of memory");
    }
    st->e = e;
    st->timeout = e->cfg->timeout;
    if (e->cfg->echo || st->timeout > 0)
        sqlite3_trace_v2(db, SQLITE_TRACE_STMT, sq_trace, st);
    if (st->timeout > 0)
        sqlite3_progress_handler(db, 1000, sq_progress, st);
    if (sq_setup(e, db, st, err, errlen) != 0) {
        sqlite3_close(db);
        free(st);
        return -1;
    }
    *handle = db;
    *state = st;
    return 0;
}

static void sq_close(dbconf_engine *e, void *handle, void *state)
{
    /* close_v2: statements the user left unfinalized do not keep it open forever */
    sqlite3_close_v2(handle);
    free(state);
}

static int sq_exec(dbconf_conn *c, const char *sql, char *err, size_t errlen)
{
    struct sq_state *st = c->state;
    char *msg = NULL;
    st->timed_out = 0;
    int rc = sqlite3_exec(c->handle, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sq_error(st, c->handle, rc, msg, err, errlen);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sq_query_value(dbconf_conn *c, const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
    struct sq_state *st = c->state;
    sqlite3 *db = c->handle;
    sqlite3_stmt *stmt = NULL;
    st->timed_out = 0;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sq_error(st, db, rc, NULL, err, errlen);
    if (!stmt)
        return 0; /* only whitespace or comments */
    int got = 0;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(stmt, 0);
        if (out && outlen)
            snprintf(out, outlen, "%s", v ? (const char *)v : "");
        got = 1;
    } else if (rc != SQLITE_DONE) {
        sq_error(st, db, sqlite3_extended_errcode(db), NULL, err, errlen);
        sqlite3_finalize(stmt);
        return -1;
    }
    sqlite3_finalize(stmt);
    if (!got && out && outlen)
        out[0] = 0;
    return got;
}

static int sq_in_transaction(const dbconf_conn *c)
{
    return !sqlite3_get_autocommit(c->handle);
}

static int sq_usable(const dbconf_conn *c)
{
    return 1; /* a local file does not drop connections */
}

/* IMMEDIATE takes the write lock at BEGIN: a second writer waits (busy
 * timeout) instead of failing when it first writes after reading. */
static const char *sq_begin_sql(int with_for_update)
{
    return with_for_update ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED";
}

const struct dbc_backend dbc_sqlite_backend = {
    .name = "sqlite",
    .engine_init = sq_engine_init,
    .engine_free = sq_engine_free,
    .connect = sq_connect,
    .close = sq_close,
    .ping = NULL,
    .exec = sq_exec,
    .query_value = sq_query_value,
    .in_transaction = sq_in_transaction,
    .usable = sq_usable,
    .begin_sql = sq_begin_sql,
};
