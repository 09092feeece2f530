/* dbconf.h — public API of dbconf: SQLite and PostgreSQL configurations, pooled engines, pool events and connleak tracking. */
#ifndef DBCONF_H
#define DBCONF_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function that can fail takes (char *err, size_t errlen): on failure it
 * writes one line there (may be NULL) and returns -1 or NULL. Texts never hold
 * a password. */

/* ------------------------------------------------------------------ */
/* Configurations                                                     */
/* ------------------------------------------------------------------ */

typedef enum dbconf_kind {
    DBCONF_SQLITE = 1,
    DBCONF_POSTGRES = 2
} dbconf_kind;

/* Oldest SQLite an engine accepts (upserts and the pragmas we set need it). */
#define DBCONF_MIN_SQLITE_VERSION_NUMBER 3024000
#define DBCONF_MIN_SQLITE_VERSION "3.24.0"

/* Test mode shortens SQLite's busy timeout (5 s instead of 60 s). */
typedef enum dbconf_test_mode {
    DBCONF_TEST_MODE_ENV = -1,   /* default: $DBCONF_TEST_MODE (1/true/yes/on or 0/false/no/off; unset: off) */
    DBCONF_TEST_MODE_OFF = 0,
    DBCONF_TEST_MODE_ON = 1
} dbconf_test_mode;
#define DBCONF_TEST_MODE_VAR "DBCONF_TEST_MODE"

/* Defaults of the pool (a QueuePool's). */
#define DBCONF_DEFAULT_POOL_SIZE 5
#define DBCONF_DEFAULT_MAX_OVERFLOW 10
#define DBCONF_DEFAULT_POOL_TIMEOUT 30.0

typedef struct dbconf_config dbconf_config;

/* A configuration for `url`, one of:
 *   sqlite:///relative/path.db   sqlite:////absolute/path.db   sqlite:///:memory:
 *   sqlite:// (in memory)        sqlite:///file:name?mode=memory&cache=shared
 *   file:path?mode=...           (an SQLite URI filename)
 *   postgresql://user:pw@host:port/db?...   postgres://...   (a `+driver` suffix
 *                                  after the scheme, e.g. postgresql+asyncpg, is accepted)
 *   host=... dbname=... user=...  (a libpq conninfo string)
 * The kind comes from the URL. Echo off, no timeouts, default pool. */
dbconf_config *dbconf_config_new(const char *url, char *err, size_t errlen);
dbconf_config *dbconf_config_copy(const dbconf_config *cfg);
void dbconf_config_free(dbconf_config *cfg);

/* Setters return 0, or -1 (errno EINVAL) for a value out of range. */
int dbconf_config_set_echo(dbconf_config *cfg, int echo);          /* log every statement on stderr */
int dbconf_config_set_timeout(dbconf_config *cfg, double seconds); /* statement timeout; <= 0: none */
int dbconf_config_set_connect_timeout(dbconf_config *cfg, double seconds); /* PostgreSQL; <= 0: none */
int dbconf_config_set_pool_size(dbconf_config *cfg, int n);        /* idle connections kept, >= 1 */
int dbconf_config_set_max_overflow(dbconf_config *cfg, int n);     /* extra connections beyond pool_size; -1: unlimited */
int dbconf_config_set_pool_timeout(dbconf_config *cfg, double seconds); /* checkout wait when exhausted, > 0 */
int dbconf_config_set_test_mode(dbconf_config *cfg, dbconf_test_mode mode);

dbconf_kind dbconf_config_kind(const dbconf_config *cfg);
const char *dbconf_config_url(const dbconf_config *cfg);
int dbconf_config_echo(const dbconf_config *cfg);
double dbconf_config_timeout(const dbconf_config *cfg);          /* 0 when none */
double dbconf_config_connect_timeout(const dbconf_config *cfg);  /* 0 when none */
int dbconf_config_pool_size(const dbconf_config *cfg);           /* effective: 1 for in-memory */
int dbconf_config_max_overflow(const dbconf_config *cfg);        /* effective: 0 for in-memory */
double dbconf_config_pool_timeout(const dbconf_config *cfg);
/* The test mode in effect (the environment read now when the mode is ENV);
 * -1 with err for an unreadable $DBCONF_TEST_MODE. */
int dbconf_config_test_mode(const dbconf_config *cfg, char *err, size_t errlen);
/* 1 for an in-memory SQLite database (":memory:" or "mode=memory" in the URL, or sqlite:// naming no file), else 0. */
int dbconf_config_is_inmemory(const dbconf_config *cfg);
/* "sqlite " or "postgresql " followed by the URL: the same key means the same
 * database. It holds the URL as given, password included: not for logs. */
const char *dbconf_config_unique_key(const dbconf_config *cfg);
/* The busy timeout SQLite connections get, in ms (5000 in test mode, 60000
 * otherwise); -1 with err for a bad $DBCONF_TEST_MODE. */
int dbconf_config_busy_timeout_ms(const dbconf_config *cfg, char *err, size_t errlen);

/* Checks an SQLite version number (as sqlite3_libversion_number() gives it)
 * against DBCONF_MIN_SQLITE_VERSION: 0 when recent enough, else -1 and an
 * error naming both versions. Engines check the loaded library with it. */
int dbconf_sqlite_check_version(int version_number, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Engines (pools), cached per thread                                 */
/* ------------------------------------------------------------------ */

typedef struct dbconf_engine dbconf_engine;
typedef struct dbconf_conn dbconf_conn;

/* The engine of `cfg` for the calling thread. Engines are cached per
 * (calling thread, kind, URL, echo, statement timeout, and the remaining pool
 * settings): the same key returns the same engine, another thread gets its own.
 * No connection is opened here. The engine is disposed when the thread that
 * got it exits, when the process exits, on dbconf_engine_dispose(), and by
 * dbconf_drop_db() of its database. The pointer must not be used after that;
 * connections checked out of it stay valid until checked in. When the process
 * runs under the connleak detector (LD_PRELOAD names libconnleak, or
 * $CONNLEAK_RUN_DIR is set) or $DBCONF_TRACK=1, the engine is tracked
 * (connleak_track_pool) from the start; $DBCONF_TRACK=0 turns that off.
 * After fork() the child starts with an empty cache: the engines it inherited
 * are left alone (their connections are the parent's and are never closed by
 * the child); it gets new engines of its own. */
dbconf_engine *dbconf_engine_get(const dbconf_config *cfg, char *err, size_t errlen);

/* Removes the engine from the cache and closes its idle connections. Waiting
 * checkouts fail; connections still checked out are closed when they are
 * checked in (close_detached). Safe from any thread, also concurrently with
 * checkouts; a second dispose is a no-op only while the pointer is valid. */
void dbconf_engine_dispose(dbconf_engine *e);

/* Disposes every engine of the calling thread / of the process. */
void dbconf_dispose_thread_engines(void);
void dbconf_dispose_all_engines(void);

dbconf_kind dbconf_engine_kind(const dbconf_engine *e);
const char *dbconf_engine_url(const dbconf_engine *e);
/* The database for reports: a path, or a URL without password. */
const char *dbconf_engine_target(const dbconf_engine *e);
/* A one-line note the engine wants its user to know (e.g. that an in-memory
 * database cannot use WAL), or NULL. Also printed once on stderr. */
const char *dbconf_engine_notice(dbconf_engine *e);
/* Number of engines in the cache (all threads). */
size_t dbconf_engine_cache_size(void);

typedef struct dbconf_pool_stats {
    int pool_size;        /* idle connections kept */
    int max_overflow;     /* -1: unlimited */
    int open;             /* connections open now (idle + checked out + being opened) */
    int idle;
    int checked_out;
    int waiting;          /* checkouts waiting for a connection */
    int disposed;         /* 1 after dispose */
    uint64_t connects;    /* connections opened */
    uint64_t closes;      /* connections closed (incl. detached) */
    uint64_t ping_failures; /* dead connections found by pre-ping and replaced */
    uint64_t timeouts;    /* checkouts that gave up waiting */
} dbconf_pool_stats;
void dbconf_engine_stats(dbconf_engine *e, dbconf_pool_stats *out);

/* ------------------------------------------------------------------ */
/* Connections                                                        */
/* ------------------------------------------------------------------ */

/* Takes a connection: the most recently returned idle one (LIFO; PostgreSQL
 * ones are pinged first and replaced if the server dropped them), or a new
 * one while the pool and its overflow allow. Otherwise waits up to the pool
 * timeout and fails with an error saying the pool is exhausted. */
dbconf_conn *dbconf_checkout(dbconf_engine *e, char *err, size_t errlen);
/* Gives it back. An open transaction is rolled back first; a broken
 * connection, one beyond pool_size, one detached or one of a disposed engine
 * is closed instead. NULL is a no-op. */
void dbconf_checkin(dbconf_conn *c);
/* Removes a checked-out connection from its pool (which may open another in
 * its place); dbconf_checkin then closes it (close_detached). */
void dbconf_detach(dbconf_conn *c);

dbconf_engine *dbconf_conn_engine(const dbconf_conn *c);
sqlite3 *dbconf_conn_sqlite(const dbconf_conn *c);  /* NULL for PostgreSQL */
PGconn *dbconf_conn_pg(const dbconf_conn *c);       /* NULL for SQLite */
void *dbconf_conn_handle(const dbconf_conn *c);     /* the sqlite3* or PGconn* */

/* Runs one or more statements (echoed when the engine echoes). */
int dbconf_exec(dbconf_conn *c, const char *sql, char *err, size_t errlen);
/* Runs a statement and copies the first column of its first row as text into
 * out (NULL value: ""). Returns 1 with a row, 0 without, -1 on error. */
int dbconf_query_value(dbconf_conn *c, const char *sql, char *out, size_t outlen,
                       char *err, size_t errlen);

/* Begins a transaction. SQLite: BEGIN IMMEDIATE when with_for_update (take the
 * write lock now, so writers queue instead of failing later), else BEGIN
 * DEFERRED; outside one, SQLite connections autocommit. PostgreSQL: BEGIN
 * (lock rows with SELECT ... FOR UPDATE instead). */
int dbconf_begin(dbconf_conn *c, int with_for_update, char *err, size_t errlen);
int dbconf_commit(dbconf_conn *c, char *err, size_t errlen);
int dbconf_rollback(dbconf_conn *c, char *err, size_t errlen);
int dbconf_in_transaction(const dbconf_conn *c);

/* ------------------------------------------------------------------ */
/* Databases                                                          */
/* ------------------------------------------------------------------ */

/* Creates the database (PostgreSQL: CREATE DATABASE through the server's
 * "postgres" database, unless it exists; SQLite: the file, by opening it
 * through the thread's engine) and then runs `schema_sql` (may be NULL) on it
 * in one transaction. An in-memory database's schema lives in its engine. */
int dbconf_create_db(const dbconf_config *cfg, const char *schema_sql, char *err, size_t errlen);
/* Disposes every cached engine of the database (all threads), then drops it
 * (PostgreSQL: DROP DATABASE IF EXISTS; SQLite file: removes it with its -wal,
 * -shm and -journal files). A database that does not exist is not an error. */
int dbconf_drop_db(const dbconf_config *cfg, char *err, size_t errlen);
/* 1 if the database exists, 0 if not, -1 on error. In-memory: 1 while an engine holds it. */
int dbconf_db_exists(const dbconf_config *cfg, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Pool events                                                        */
/* ------------------------------------------------------------------ */

/* Same values as connleak_event. */
typedef enum dbconf_event {
    DBCONF_EVENT_CONNECT = 1,        /* the pool opened a connection */
    DBCONF_EVENT_CHECKOUT = 2,       /* a caller took one */
    DBCONF_EVENT_CHECKIN = 3,        /* the caller gave it back */
    DBCONF_EVENT_CLOSE = 4,          /* the pool closed one (overflow, dead, dispose) */
    DBCONF_EVENT_CLOSE_DETACHED = 5  /* a detached one (dbconf_detach, disposed engine) was closed */
} dbconf_event;
#define DBCONF_EVENT_BIT(ev) (1u << (ev))
#define DBCONF_EVENTS_ALL 0x3eu

/* Called in the thread that caused the event, with no dbconf lock held, while
 * the connection still exists (close events come before the real close).
 * `c` is only valid during the call. A listener may check out and in, even on
 * the same engine, but must not (un)subscribe on the engine it is called for. */
typedef void (*dbconf_listener)(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user);

/* Subscribes fn for the events in `mask` (DBCONF_EVENT_BIT ORed). The same
 * (fn, user) twice is one subscription with the masks merged. Returns 0, or
 * -1 with errno EDEADLK from inside a listener of e, ENOMEM. */
int dbconf_pool_subscribe(dbconf_engine *e, unsigned mask, dbconf_listener fn, void *user);
/* After it returns, fn is not running and will not be called for e. Returns 0,
 * -1 with errno ENOENT if not subscribed, EDEADLK from inside a listener of e. */
int dbconf_pool_unsubscribe(dbconf_engine *e, dbconf_listener fn, void *user);

/* ------------------------------------------------------------------ */
/* connleak tracking                                                  */
/* ------------------------------------------------------------------ */

/* Subscribes the connleak tracker (connleak.h) to the engine: connect, close
 * and close_detached feed its figures (connects, closes, open connections
 * with their stacks, left-field closes), checkout and checkin let it report a
 * connection never checked in with the stack that checked it out. The
 * connection is identified by its sqlite3* / PGconn*. Idempotent. Returns 0,
 * or -1 as dbconf_pool_subscribe. */
int connleak_track_pool(dbconf_engine *e);
/* 1 once connleak_track_pool(e) succeeded. */
int dbconf_engine_tracked(dbconf_engine *e);

#ifdef __cplusplus
}
#endif
#endif
