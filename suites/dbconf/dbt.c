/* dbt.c — helpers of the dbconf suites: per-test SQLite files and PostgreSQL databases, event recording, stderr capture. */
#include "dbt.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

struct dbt_backend dbt;

double dbt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- SQLite fixture ---- */

void dbt_sqlite_setup(void)
{
    memset(&dbt, 0, sizeof dbt);
    dbt.kind = DBCONF_SQLITE;
    dbt.name = "sqlite";
    const char *tmp = getenv("TMPDIR");
    snprintf(dbt.dir, sizeof dbt.dir, "%s/dbconf-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dbt.dir) != NULL, "mkdtemp %s failed", dbt.dir);
    snprintf(dbt.url, sizeof dbt.url, "sqlite:///%s/test.db", dbt.dir);
    /* counts forever: only an interrupt ends it */
    dbt.long_sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                   "SELECT count(*) FROM n WHERE x < 0";
    dbt.session_sql = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

void dbt_sqlite_teardown(void)
{
    dbconf_dispose_all_engines();
    if (dbt.dir[0])
        nftw(dbt.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- PostgreSQL fixture ---- */

void dbt_pg_require(void)
{
    const char *url = getenv("DATABASE_URL"), *host = getenv("PGHOST");
    if ((!url || !*url) && (!host || !*host))
        cr_assert_fail("PostgreSQL tests need a server: set DATABASE_URL or PGHOST/PGPORT/PGUSER "
                       "(scripts/test and `connleak run --postgres` export them)");
}

/* host, port and user of the test server as conninfo pairs ("" when libpq's
 * environment defaults apply). */
static char *server_pairs(void)
{
    dbt_pg_require();
    const char *url = getenv("DATABASE_URL");
    if (!url || !*url)
        return strdup("");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    cr_assert(opts != NULL, "DATABASE_URL is not a valid libpq URL: %s", perr ? perr : "?");
    char *out = calloc(1, 4096);
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        n += (size_t)snprintf(out + n, 4096 - n, "%s='%s' ", o->keyword, o->val);
    }
    PQconninfoFree(opts);
    return out;
}

char *dbt_pg_conninfo(const char *dbname)
{
    char *pairs = server_pairs();
    char *s = NULL;
    cr_assert(asprintf(&s, "%sdbname='%s'", pairs, dbname) > 0);
    free(pairs);
    return s;
}

char *dbt_pg_uri(const char *dbname)
{
    dbt_pg_require();
    /* take the effective values from a live connection: they cover both
     * DATABASE_URL and the PG* variables */
    PGconn *pg = dbt_pg_admin();
    const char *host = PQhost(pg), *port = PQport(pg), *user = PQuser(pg);
    char *s = NULL;
    if (host && host[0] == '/')
        cr_assert(asprintf(&s, "postgresql://%s@/%s?host=%s&port=%s", user, dbname, host, port) > 0);
    else
        cr_assert(asprintf(&s, "postgresql://%s@%s:%s/%s", user, host, port, dbname) > 0);
    PQfinish(pg);
    return s;
}

void *dbt_pg_admin(void)
{
    char *ci = dbt_pg_conninfo("postgres");
    PGconn *pg = PQconnectdb(ci);
    free(ci);
    cr_assert(PQstatus(pg) == CONNECTION_OK, "cannot reach the test PostgreSQL server: %s", PQerrorMessage(pg));
    return pg;
}

void dbt_pg_new_name(char *out, size_t n, const char *stem)
{
    static int seq;
    snprintf(out, n, "dbconf_%s_%d_%d_%ld", stem, (int)getpid(), ++seq, (long)(dbt_now() * 1000) % 100000);
}

void dbt_pg_setup(void)
{
    memset(&dbt, 0, sizeof dbt);
    dbt.kind = DBCONF_POSTGRES;
    dbt.name = "postgresql";
    dbt_pg_new_name(dbt.dbname, sizeof dbt.dbname, "t");
    char *ci = dbt_pg_conninfo(dbt.dbname);
    snprintf(dbt.url, sizeof dbt.url, "%s", ci);
    free(ci);
    dbt.long_sql = "SELECT pg_sleep(30)";
    dbt.session_sql = "SELECT pg_backend_pid()";
    dbconf_config *cfg = dbt_config_url(dbt.url);
    char err[512] = "";
    cr_assert(dbconf_create_db(cfg, NULL, err, sizeof err) == 0, "create database %s: %s", dbt.dbname, err);
    dbconf_config_free(cfg);
}

void dbt_pg_teardown(void)
{
    dbconf_dispose_all_engines();
    if (!dbt.dbname[0])
        return;
    dbconf_config *cfg = dbconf_config_new(dbt.url, NULL, 0);
    if (cfg) {
        char err[512];
        if (dbconf_drop_db(cfg, err, sizeof err) != 0)
            fprintf(stderr, "teardown: %s\n", err);
        dbconf_config_free(cfg);
    }
}

/* ---- configurations and connections ---- */

dbconf_config *dbt_config_url(const char *url)
{
    char err[512] = "";
    dbconf_config *cfg = dbconf_config_new(url, err, sizeof err);
    cr_assert(cfg != NULL, "dbconf_config_new: %s", err);
    cr_assert_eq(dbconf_config_set_test_mode(cfg, DBCONF_TEST_MODE_ON), 0);
    return cfg;
}

dbconf_config *dbt_config(int pool_size, int max_overflow, double pool_timeout)
{
    dbconf_config *cfg = dbt_config_url(dbt.url);
    cr_assert_eq(dbconf_config_set_pool_size(cfg, pool_size), 0);
    cr_assert_eq(dbconf_config_set_max_overflow(cfg, max_overflow), 0);
    cr_assert_eq(dbconf_config_set_pool_timeout(cfg, pool_timeout), 0);
    return cfg;
}

dbconf_engine *dbt_engine(const dbconf_config *cfg)
{
    char err[512] = "";
    dbconf_engine *e = dbconf_engine_get(cfg, err, sizeof err);
    cr_assert(e != NULL, "dbconf_engine_get: %s", err);
    return e;
}

dbconf_conn *dbt_checkout(dbconf_engine *e)
{
    char err[512] = "";
    dbconf_conn *c = dbconf_checkout(e, err, sizeof err);
    cr_assert(c != NULL, "dbconf_checkout: %s", err);
    return c;
}

void dbt_exec(dbconf_conn *c, const char *sql)
{
    char err[512] = "";
    cr_assert_eq(dbconf_exec(c, sql, err, sizeof err), 0, "%s: %s", sql, err);
}

char *dbt_value(dbconf_conn *c, const char *sql)
{
    char out[512] = "", err[512] = "";
    int rc = dbconf_query_value(c, sql, out, sizeof out, err, sizeof err);
    cr_assert_eq(rc, 1, "%s: rc %d: %s", sql, rc, err);
    return strdup(out);
}

long long dbt_int(dbconf_conn *c, const char *sql)
{
    char *v = dbt_value(c, sql);
    long long n = atoll(v);
    free(v);
    return n;
}

/* ---- events ---- */

static void record(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user)
{
    struct dbt_events *rec = user;
    size_t i = __atomic_fetch_add(&rec->n, 1, __ATOMIC_ACQ_REL);
    if (i < DBT_MAX_EVENTS) {
        rec->list[i].ev = ev;
        rec->list[i].handle = dbconf_conn_handle(c);
    }
    __atomic_add_fetch(&rec->count[ev], 1, __ATOMIC_ACQ_REL);
}

void dbt_record_events(dbconf_engine *e, struct dbt_events *rec)
{
    memset(rec, 0, sizeof *rec);
    cr_assert_eq(dbconf_pool_subscribe(e, DBCONF_EVENTS_ALL, record, rec), 0);
}

const char *dbt_event_name(dbconf_event ev)
{
    switch (ev) {
    case DBCONF_EVENT_CONNECT: return "connect";
    case DBCONF_EVENT_CHECKOUT: return "checkout";
    case DBCONF_EVENT_CHECKIN: return "checkin";
    case DBCONF_EVENT_CLOSE: return "close";
    case DBCONF_EVENT_CLOSE_DETACHED: return "close_detached";
    }
    return "?";
}

char *dbt_event_string(const struct dbt_events *rec)
{
    char *s = calloc(1, 16 * DBT_MAX_EVENTS + 1);
    size_t n = __atomic_load_n(&rec->n, __ATOMIC_ACQUIRE), len = 0;
    for (size_t i = 0; i < n && i < DBT_MAX_EVENTS; i++)
        len += (size_t)sprintf(s + len, "%s%s", i ? "," : "", dbt_event_name(rec->list[i].ev));
    return s;
}

/* ---- stderr capture ---- */

static int saved_fd = -1;
static char capture_path[512];

void dbt_stderr_begin(void)
{
    fflush(stderr);
    snprintf(capture_path, sizeof capture_path, "/tmp/dbconf-stderr.XXXXXX");
    int fd = mkstemp(capture_path);
    cr_assert(fd >= 0);
    saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

char *dbt_stderr_end(void)
{
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    saved_fd = -1;
    FILE *f = fopen(capture_path, "r");
    cr_assert(f != NULL);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    unlink(capture_path);
    return buf;
}

int dbt_frames_name(const connleak_conn *c, const char *function)
{
    for (int i = 0; i < c->nframes; i++)
        if (strcmp(connleak_frame_function(c->frames[i]), function) == 0)
            return 1;
    return 0;
}
