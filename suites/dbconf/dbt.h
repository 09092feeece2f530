/* dbt.h — helpers of the dbconf suites: the SQLite and PostgreSQL fixtures one test body runs on, event recording, stderr capture. */
#ifndef DBT_H
#define DBT_H

#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "connleak.h"
#include "dbconf.h"

/* ---- the fixture a shared test body runs on ---- */

struct dbt_backend {
    dbconf_kind kind;
    const char *name;        /* "sqlite", "postgresql" */
    char url[2048];          /* a database of this test's own */
    char dir[512];           /* SQLite: its private directory */
    char dbname[64];         /* PostgreSQL: its private database */
    const char *long_sql;    /* runs for many seconds unless interrupted */
    const char *session_sql; /* one value that names the server session (PostgreSQL) or NULL */
};
extern struct dbt_backend dbt;

void dbt_sqlite_setup(void);
void dbt_sqlite_teardown(void);
void dbt_pg_setup(void);
void dbt_pg_teardown(void);

/* One test body, run once per backend: suites <prefix>_sqlite and <prefix>_pg. */
#define DBT_BOTH(prefix, name, ...)                                                                   \
    static void prefix##_##name##_body(void);                                                         \
    Test(prefix##_sqlite, name, .init = dbt_sqlite_setup, .fini = dbt_sqlite_teardown, ##__VA_ARGS__) \
    {                                                                                                 \
        prefix##_##name##_body();                                                                     \
    }                                                                                                 \
    Test(prefix##_pg, name, .init = dbt_pg_setup, .fini = dbt_pg_teardown, ##__VA_ARGS__)             \
    {                                                                                                 \
        prefix##_##name##_body();                                                                     \
    }                                                                                                 \
    static void prefix##_##name##_body(void)

/* A configuration for dbt.url: test mode on, the pool settings given
 * (pool_timeout in seconds). Fails the test on error. */
dbconf_config *dbt_config(int pool_size, int max_overflow, double pool_timeout);
dbconf_config *dbt_config_url(const char *url);
dbconf_engine *dbt_engine(const dbconf_config *cfg);
dbconf_conn *dbt_checkout(dbconf_engine *e);
void dbt_exec(dbconf_conn *c, const char *sql);
/* The first value of a query as a malloc'd string (fails the test on error). */
char *dbt_value(dbconf_conn *c, const char *sql);
long long dbt_int(dbconf_conn *c, const char *sql);

/* ---- PostgreSQL ---- */

/* Fails the test with a clear message when no server is configured
 * (DATABASE_URL or PGHOST). */
void dbt_pg_require(void);
/* A libpq conninfo for database `dbname` on the test server (malloc'd). */
char *dbt_pg_conninfo(const char *dbname);
/* The same as a postgresql:// URL (malloc'd). */
char *dbt_pg_uri(const char *dbname);
/* A direct (unpooled) connection to the server's "postgres" database. */
void *dbt_pg_admin(void); /* PGconn* */
/* A fresh database name unique to this process. */
void dbt_pg_new_name(char *out, size_t n, const char *stem);

/* ---- events ---- */

#define DBT_MAX_EVENTS 4096
struct dbt_event {
    dbconf_event ev;
    void *handle;
};
struct dbt_events {
    struct dbt_event list[DBT_MAX_EVENTS];
    uint64_t count[6];   /* per dbconf_event (atomic) */
    size_t n;            /* (atomic) */
};
/* Subscribes a recorder of every event of e. */
void dbt_record_events(dbconf_engine *e, struct dbt_events *rec);
/* "connect,checkout,..." for the recorded sequence (malloc'd). */
char *dbt_event_string(const struct dbt_events *rec);
const char *dbt_event_name(dbconf_event ev);

/* ---- misc ---- */

double dbt_now(void);
/* Captures what this process writes on fd 2 between begin and end (malloc'd). */
void dbt_stderr_begin(void);
char *dbt_stderr_end(void);
/* Does any of the frames name `function` (connleak_frame_function)? */
int dbt_frames_name(const connleak_conn *c, const char *function);

#endif
