/* test_sqlite.c — what only SQLite does: per-connection PRAGMAs, in-memory engines, BEGIN modes, busy timeout, URLs, version, create/drop. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbt.h"

TestSuite(sqlite, .init = dbt_sqlite_setup, .fini = dbt_sqlite_teardown, .timeout = 30);

static void assert_pragmas(dbconf_conn *c, const char *journal_mode, const char *busy_ms)
{
    static const struct {
        const char *pragma, *want;
    } fixed[] = {
        {"PRAGMA foreign_keys", "1"},
        {"PRAGMA legacy_alter_table", "0"},
        {"PRAGMA synchronous", "1"}, /* NORMAL */
        {"PRAGMA cache_size", "20000"},
    };
    char *v = dbt_value(c, "PRAGMA journal_mode");
    cr_assert_str_eq(v, journal_mode);
    free(v);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        v = dbt_value(c, fixed[i].pragma);
        cr_assert_str_eq(v, fixed[i].want, "%s is %s, want %s", fixed[i].pragma, v, fixed[i].want);
        free(v);
    }
    v = dbt_value(c, "PRAGMA busy_timeout");
    cr_assert_str_eq(v, busy_ms);
    free(v);
    /* autocommit until someone begins */
    cr_assert_not(dbconf_in_transaction(c));
}

Test(sqlite, pragmas_of_a_file_connection)
{
    dbconf_config *cfg = dbt_config(5, 10, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    assert_pragmas(c, "wal", "5000");
    cr_assert_null(dbconf_engine_notice(e), "a file switches to WAL without a note");
    dbconf_checkin(c);
    dbconf_config_free(cfg);
}

Test(sqlite, pragmas_of_an_in_memory_connection)
{
    dbconf_config *cfg = dbt_config_url("sqlite:///:memory:");
    dbconf_engine *e = dbt_engine(cfg);
    dbt_stderr_begin();
    char err[512] = "";
    dbconf_conn *c = dbconf_checkout(e, err, sizeof err);
    char *out = dbt_stderr_end();
    cr_assert_not_null(c, "an in-memory database must not fail for lack of WAL: %s", err);
    assert_pragmas(c, "memory", "5000");
    const char *note = dbconf_engine_notice(e);
    cr_assert(note && strstr(note, "in-memory") && strstr(note, "WAL"), "notice: %s", note ? note : "(none)");
    cr_assert(strstr(out, note), "the note is said on stderr: %s", out);
    dbconf_checkin(c);
    free(out);
    dbconf_config_free(cfg);
}

Test(sqlite, busy_timeout_follows_test_mode)
{
    static const struct {
        dbconf_test_mode mode;
        const char *env; /* NULL: unset */
        const char *want;
    } cases[] = {
        {DBCONF_TEST_MODE_ON, NULL, "5000"},
        {DBCONF_TEST_MODE_OFF, "1", "60000"}, /* the explicit option wins */
        {DBCONF_TEST_MODE_ENV, NULL, "60000"},
        {DBCONF_TEST_MODE_ENV, "1", "5000"},
        {DBCONF_TEST_MODE_ENV, "yes", "5000"},
        {DBCONF_TEST_MODE_ENV, "0", "60000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].env)
            setenv(DBCONF_TEST_MODE_VAR, cases[i].env, 1);
        else
            unsetenv(DBCONF_TEST_MODE_VAR);
        dbconf_config *cfg = dbt_config(1, 0, 1.0);
        dbconf_config_set_test_mode(cfg, cases[i].mode);
        cr_assert_eq(dbconf_config_busy_timeout_ms(cfg, NULL, 0), atoi(cases[i].want));
        dbconf_engine *e = dbt_engine(cfg);
        dbconf_conn *c = dbt_checkout(e);
        char *v = dbt_value(c, "PRAGMA busy_timeout");
        cr_assert_str_eq(v, cases[i].want, "case %zu", i);
        free(v);
        dbconf_checkin(c);
        dbconf_engine_dispose(e);
        dbconf_config_free(cfg);
    }
    setenv(DBCONF_TEST_MODE_VAR, "maybe", 1);
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_config_set_test_mode(cfg, DBCONF_TEST_MODE_ENV);
    char err[512] = "";
    cr_assert_null(dbconf_engine_get(cfg, err, sizeof err));
    cr_assert(strstr(err, DBCONF_TEST_MODE_VAR) && strstr(err, "maybe"), "unclear error: %s", err);
    unsetenv(DBCONF_TEST_MODE_VAR);
    dbconf_config_free(cfg);
}

Test(sqlite, in_memory_engine_is_one_long_lived_connection)
{
    dbconf_config *cfg = dbt_config_url("sqlite:///:memory:");
    /* whatever was asked, an in-memory database gets a pool of one */
    dbconf_config_set_pool_size(cfg, 5);
    dbconf_config_set_max_overflow(cfg, 10);
    dbconf_config_set_pool_timeout(cfg, 0.2);
    cr_assert(dbconf_config_is_inmemory(cfg));
    cr_assert_eq(dbconf_config_pool_size(cfg), 1);
    cr_assert_eq(dbconf_config_max_overflow(cfg), 0);
    dbconf_engine *e = dbt_engine(cfg);

    dbconf_conn *c = dbt_checkout(e);
    void *h = dbconf_conn_handle(c);
    dbt_exec(c, "CREATE TABLE kept (x INTEGER); INSERT INTO kept VALUES (1)");
    /* no second connection, even while the first is out */
    char err[512] = "";
    cr_assert_null(dbconf_checkout(e, err, sizeof err));
    cr_assert(strstr(err, "pool exhausted"), "%s", err);
    /* an open transaction is rolled back, but the connection (the database) stays */
    char e2[512];
    cr_assert_eq(dbconf_begin(c, 0, e2, sizeof e2), 0, "%s", e2);
    dbt_exec(c, "INSERT INTO kept VALUES (2)");
    dbconf_checkin(c);

    c = dbt_checkout(e);
    cr_assert_eq(dbconf_conn_handle(c), h);
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM kept"), 1, "the table made through one checkout is seen by the next");
    dbconf_checkin(c);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.connects, 1);
    cr_assert_eq(st.closes, 0);
    cr_assert_eq(st.open, 1);
    cr_assert_eq(st.pool_size, 1);
    cr_assert_eq(st.max_overflow, 0);
    dbconf_config_free(cfg);
}

Test(sqlite, other_in_memory_spellings)
{
    static const char *const urls[] = {"sqlite://", "file:dbconf_mem?mode=memory&cache=shared",
                                       "sqlite:///file:dbconf_mem2?mode=memory&cache=shared"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        dbconf_config *cfg = dbt_config_url(urls[i]);
        cr_assert(dbconf_config_is_inmemory(cfg), "%s", urls[i]);
        cr_assert_eq(dbconf_config_pool_size(cfg), 1);
        dbconf_engine *e = dbt_engine(cfg);
        dbconf_conn *c = dbt_checkout(e);
        dbt_exec(c, "CREATE TABLE m (x)");
        char *v = dbt_value(c, "PRAGMA journal_mode");
        cr_assert_str_eq(v, "memory", "%s", urls[i]);
        free(v);
        dbconf_checkin(c);
        c = dbt_checkout(e);
        cr_assert_eq(dbt_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 'm'"), 1);
        dbconf_checkin(c);
        dbconf_config_free(cfg);
    }
    dbconf_config *cfg = dbt_config_url(dbt.url);
    cr_assert_not(dbconf_config_is_inmemory(cfg));
    dbconf_config_free(cfg);
}

/* ---- BEGIN modes ---- */

static dbconf_engine *two_connection_engine(dbconf_config **cfg)
{
    *cfg = dbt_config(2, 0, 2.0);
    dbconf_engine *e = dbt_engine(*cfg);
    dbconf_conn *c = dbt_checkout(e);
    dbt_exec(c, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (0)");
    dbconf_checkin(c);
    return e;
}

Test(sqlite, deferred_reader_that_writes_meets_busy)
{
    dbconf_config *cfg;
    dbconf_engine *e = two_connection_engine(&cfg);
    dbconf_conn *a = dbt_checkout(e), *b = dbt_checkout(e);
    cr_assert_neq(dbconf_conn_handle(a), dbconf_conn_handle(b), "two connections to one file");
    char err[512] = "";

    cr_assert_eq(dbconf_begin(a, 0, err, sizeof err), 0, "%s", err); /* BEGIN DEFERRED */
    cr_assert_eq(dbt_int(a, "SELECT count(*) FROM t"), 1);           /* a now reads a snapshot */
    cr_assert_eq(dbconf_begin(b, 1, err, sizeof err), 0, "%s", err);
    dbt_exec(b, "INSERT INTO t VALUES (1)");
    cr_assert_eq(dbconf_commit(b, err, sizeof err), 0, "%s", err);

    double t0 = dbt_now();
    int rc = dbconf_exec(a, "INSERT INTO t VALUES (2)", err, sizeof err);
    int code = sqlite3_extended_errcode(dbconf_conn_sqlite(a));
    cr_assert_eq(rc, -1, "the stale reader cannot write");
    cr_assert_eq(code & 0xff, SQLITE_BUSY, "extended code %d: %s", code, err);
    cr_assert(dbt_now() - t0 < 4.0, "no point waiting: the snapshot is stale");
    cr_assert(strstr(err, "locked") || strstr(err, "busy"), "%s", err);
    dbconf_rollback(a, NULL, 0);
    dbconf_checkin(a);
    dbconf_checkin(b);
    dbconf_config_free(cfg);
}

struct writer {
    dbconf_conn *c;
    int begin_rc, insert_rc, commit_rc;
    double waited;
    char err[512];
};

static void *immediate_writer(void *p)
{
    struct writer *w = p;
    double t0 = dbt_now();
    w->begin_rc = dbconf_begin(w->c, 1, w->err, sizeof w->err);
    w->waited = dbt_now() - t0;
    if (w->begin_rc == 0) {
        char v[32];
        dbconf_query_value(w->c, "SELECT count(*) FROM t", v, sizeof v, NULL, 0);
        w->insert_rc = dbconf_exec(w->c, "INSERT INTO t VALUES (20)", w->err, sizeof w->err);
        w->commit_rc = dbconf_commit(w->c, w->err, sizeof w->err);
    }
    return NULL;
}

Test(sqlite, immediate_transactions_serialize_writers)
{
    dbconf_config *cfg;
    dbconf_engine *e = two_connection_engine(&cfg);
    dbconf_conn *a = dbt_checkout(e);
    struct writer w = {.c = dbt_checkout(e)};
    char err[512] = "";

    cr_assert_eq(dbconf_begin(a, 1, err, sizeof err), 0, "%s", err); /* BEGIN IMMEDIATE: a holds the write lock */
    cr_assert_eq(dbt_int(a, "SELECT count(*) FROM t"), 1);
    pthread_t t;
    pthread_create(&t, NULL, immediate_writer, &w);
    usleep(300000); /* the other writer queues on the lock meanwhile */
    cr_assert_eq(dbconf_exec(a, "INSERT INTO t VALUES (10)", err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_commit(a, err, sizeof err), 0, "%s", err);
    pthread_join(t, NULL);

    cr_assert_eq(w.begin_rc, 0, "the second writer waited instead of failing: %s", w.err);
    cr_assert_eq(w.insert_rc, 0, "%s", w.err);
    cr_assert_eq(w.commit_rc, 0, "%s", w.err);
    cr_assert(w.waited >= 0.2 && w.waited < 5.0, "second BEGIN IMMEDIATE waited %.3f s", w.waited);
    cr_assert_eq(dbt_int(a, "SELECT count(*) FROM t"), 3, "both writes are in");
    dbconf_checkin(a);
    dbconf_checkin(w.c);
    dbconf_config_free(cfg);
}

Test(sqlite, autocommit_by_default)
{
    dbconf_config *cfg;
    dbconf_engine *e = two_connection_engine(&cfg);
    dbconf_conn *a = dbt_checkout(e), *b = dbt_checkout(e);
    dbt_exec(a, "INSERT INTO t VALUES (5)");
    cr_assert_not(dbconf_in_transaction(a));
    cr_assert_eq(dbt_int(b, "SELECT count(*) FROM t WHERE x = 5"), 1, "visible at once on another connection");
    dbconf_checkin(a);
    dbconf_checkin(b);
    dbconf_config_free(cfg);
}

/* ---- versions, URLs, keys ---- */

Test(sqlite, refuses_old_sqlite)
{
    char err[512] = "";
    cr_assert_eq(dbconf_sqlite_check_version(3023002, err, sizeof err), -1);
    cr_assert(strstr(err, "3.24.0") && strstr(err, "3.23.2"), "the error names both versions: %s", err);
    cr_assert_eq(dbconf_sqlite_check_version(3024000, NULL, 0), 0);
    cr_assert_eq(dbconf_sqlite_check_version(sqlite3_libversion_number(), NULL, 0), 0);
}

Test(sqlite, url_forms)
{
    char err[512] = "";
    /* relative to the working directory, reported absolute */
    cr_assert_eq(chdir(dbt.dir), 0);
    dbconf_config *rel = dbt_config_url("sqlite:///relative.db");
    dbconf_engine *e = dbt_engine(rel);
    char want[1024];
    snprintf(want, sizeof want, "%s/relative.db", dbt.dir);
    cr_assert_str_eq(dbconf_engine_target(e), want);
    dbconf_checkin(dbt_checkout(e));
    cr_assert_eq(access(want, F_OK), 0, "the file was created");
    dbconf_config_free(rel);

    /* a driver suffix and a URI filename with uri=true */
    char url[1024];
    snprintf(url, sizeof url, "sqlite+aiosqlite:///%s/driver.db", dbt.dir);
    dbconf_config *cfg = dbt_config_url(url);
    dbconf_checkin(dbt_checkout(dbt_engine(cfg)));
    dbconf_config_free(cfg);
    snprintf(url, sizeof url, "sqlite:///%s/uri.db?mode=rwc&uri=true", dbt.dir);
    cfg = dbt_config_url(url);
    dbconf_checkin(dbt_checkout(dbt_engine(cfg)));
    snprintf(want, sizeof want, "%s/uri.db", dbt.dir);
    cr_assert_eq(access(want, F_OK), 0);
    dbconf_config_free(cfg);

    cr_assert_null(dbconf_config_new("sqlite:///x.db?mode=ro", err, sizeof err));
    cr_assert(strstr(err, "uri=true"), "%s", err);
    cr_assert_null(dbconf_config_new("mysql://admin:s3cret@db/app", err, sizeof err));
    cr_assert(strstr(err, "mysql") && !strstr(err, "s3cret"), "names the scheme, never the password: %s", err);
    cr_assert_null(dbconf_config_new("", err, sizeof err));
}

Test(sqlite, unique_key_is_kind_and_url)
{
    dbconf_config *a = dbt_config_url(dbt.url), *b = dbt_config_url(dbt.url);
    dbconf_config_set_echo(b, 1);
    dbconf_config_set_timeout(b, 3);
    cr_assert_str_eq(dbconf_config_unique_key(a), dbconf_config_unique_key(b));
    char want[2100];
    snprintf(want, sizeof want, "sqlite %s", dbt.url);
    cr_assert_str_eq(dbconf_config_unique_key(a), want);
    dbconf_config *m = dbt_config_url("sqlite:///:memory:");
    cr_assert_str_neq(dbconf_config_unique_key(a), dbconf_config_unique_key(m));
    cr_assert_eq(dbconf_config_kind(a), DBCONF_SQLITE);
    dbconf_config_free(a);
    dbconf_config_free(b);
    dbconf_config_free(m);
}

Test(sqlite, config_rejects_bad_values)
{
    dbconf_config *cfg = dbt_config_url(dbt.url);
    cr_assert_eq(dbconf_config_set_pool_size(cfg, 0), -1);
    cr_assert_eq(dbconf_config_set_max_overflow(cfg, -2), -1);
    cr_assert_eq(dbconf_config_set_pool_timeout(cfg, 0), -1);
    cr_assert_eq(dbconf_config_set_timeout(cfg, -1), 0, "<= 0 means no timeout");
    cr_assert_eq(dbconf_config_timeout(cfg), 0);
    cr_assert_eq(dbconf_config_pool_size(cfg), DBCONF_DEFAULT_POOL_SIZE);
    cr_assert_eq(dbconf_config_max_overflow(cfg), DBCONF_DEFAULT_MAX_OVERFLOW);
    dbconf_config_free(cfg);
}

/* ---- create / drop ---- */

Test(sqlite, create_and_drop_a_file_database)
{
    char url[1100], path[1024], wal[1100];
    snprintf(path, sizeof path, "%s/made.db", dbt.dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(url, sizeof url, "sqlite:///%s", path);
    dbconf_config *cfg = dbt_config_url(url);
    char err[512] = "";
    cr_assert_eq(dbconf_db_exists(cfg, NULL, 0), 0);
    cr_assert_eq(dbconf_create_db(cfg, "CREATE TABLE a (x); CREATE TABLE b (y REFERENCES a (x))", err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(dbconf_db_exists(cfg, NULL, 0), 1);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 2);
    dbt_exec(c, "INSERT INTO a VALUES (1)");
    dbconf_checkin(c);
    cr_assert_eq(access(wal, F_OK), 0, "WAL file while the engine is open");
    cr_assert_eq(dbconf_engine_cache_size(), 1);

    cr_assert_eq(dbconf_drop_db(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_engine_cache_size(), 0, "drop disposed the engine");
    cr_assert_neq(access(path, F_OK), 0);
    cr_assert_neq(access(wal, F_OK), 0);
    cr_assert_eq(dbconf_db_exists(cfg, NULL, 0), 0);
    cr_assert_eq(dbconf_drop_db(cfg, err, sizeof err), 0, "dropping what is gone is fine: %s", err);

    /* a bad schema fails and says why */
    cr_assert_eq(dbconf_create_db(cfg, "CREATE TABLE broken (", err, sizeof err), -1);
    cr_assert(strstr(err, "syntax error") || strstr(err, "incomplete"), "%s", err);
    dbconf_config_free(cfg);
}

Test(sqlite, in_memory_schema_lives_in_its_engine)
{
    dbconf_config *cfg = dbt_config_url("sqlite:///:memory:");
    char err[512] = "";
    cr_assert_eq(dbconf_create_db(cfg, "CREATE TABLE s (x)", err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_db_exists(cfg, NULL, 0), 1);
    dbconf_conn *c = dbt_checkout(dbt_engine(cfg));
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 's'"), 1);
    dbconf_checkin(c);
    cr_assert_eq(dbconf_drop_db(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_db_exists(cfg, NULL, 0), 0);
    c = dbt_checkout(dbt_engine(cfg));
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM sqlite_master WHERE name = 's'"), 0, "a new engine, a new database");
    dbconf_checkin(c);
    dbconf_config_free(cfg);
}
