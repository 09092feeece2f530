/* internal.h — dbconf's private structures and the interfaces between its source files. */
#ifndef DBCONF_INTERNAL_H
#define DBCONF_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#include "dbconf.h"

#define DBC_HIDDEN __attribute__((visibility("hidden")))
#define DBC_PUBLIC __attribute__((visibility("default")))

/* ---- config.c ---- */
struct dbconf_config {
    dbconf_kind kind;
    char *url;
    char *key;            /* dbconf_config_unique_key */
    int inmemory;
    int echo;
    double timeout;       /* 0: none */
    double connect_timeout;
    int pool_size;
    int max_overflow;
    double pool_timeout;
    dbconf_test_mode test_mode;
};

/* ---- util (engine.c) ---- */
/* Writes a formatted one-line error into err (if any); always returns -1. */
DBC_HIDDEN int dbc_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
DBC_HIDDEN double dbc_now(void); /* monotonic seconds */
DBC_HIDDEN char *dbc_strdup(const char *s);
DBC_HIDDEN char *dbc_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- url.c ---- */
/* The kind of a URL; -1 with err when it is none we know. */
DBC_HIDDEN int dbc_url_kind(const char *url, dbconf_kind *kind, char *err, size_t errlen);
DBC_HIDDEN int dbc_url_is_inmemory(const char *url);
/* SQLite: what sqlite3_open_v2 gets (malloc'd), NULL with err. */
DBC_HIDDEN char *dbc_sqlite_filename(const char *url, char *err, size_t errlen);
/* SQLite: the file on disk behind an open filename (malloc'd), NULL when in memory. */
DBC_HIDDEN char *dbc_sqlite_disk_path(const char *filename);
/* PostgreSQL: the URL or conninfo in a form libpq parses (malloc'd). */
DBC_HIDDEN char *dbc_pg_conninfo(const char *url);

/* ---- backends (sqlite.c, postgres.c) ---- */
struct dbc_backend {
    const char *name;               /* "sqlite", "postgresql" */
    /* engine-wide preparation (parse the URL once); 0 or -1 with err */
    int (*engine_init)(dbconf_engine *e, char *err, size_t errlen);
    void (*engine_free)(dbconf_engine *e);
    /* open and set up one connection; on success *handle and *state are set */
    int (*connect)(dbconf_engine *e, void **handle, void **state, char *err, size_t errlen);
    void (*close)(dbconf_engine *e, void *handle, void *state);
    /* pre-ping on checkout: 1 alive, 0 dead; NULL when the backend needs none */
    int (*ping)(dbconf_engine *e, void *handle);
    int (*exec)(dbconf_conn *c, const char *sql, char *err, size_t errlen);
    int (*query_value)(dbconf_conn *c, const char *sql, char *out, size_t outlen, char *err, size_t errlen);
    int (*in_transaction)(const dbconf_conn *c);
    /* 0 when the connection is broken and must not go back to the pool */
    int (*usable)(const dbconf_conn *c);
    const char *(*begin_sql)(int with_for_update);
};
DBC_HIDDEN extern const struct dbc_backend dbc_sqlite_backend;
DBC_HIDDEN extern const struct dbc_backend dbc_pg_backend;

/* ---- events.c ---- */
struct dbc_listener {
    dbconf_listener fn;
    void *user;
    unsigned mask;
};
struct dbc_events {
    pthread_rwlock_t lock;    /* read-held while listeners run */
    struct dbc_listener *list;
    size_t n, cap;
};
DBC_HIDDEN void dbc_events_init(struct dbc_events *ev);
DBC_HIDDEN void dbc_events_free(struct dbc_events *ev);
/* Calls the listeners of `ev` for this event. Never call with a pool lock held. */
DBC_HIDDEN void dbc_emit(dbconf_engine *e, dbconf_event ev, dbconf_conn *c);

/* ---- pool.c / engine.c ---- */
struct dbconf_conn {
    dbconf_engine *engine;
    void *handle;             /* sqlite3* or PGconn* */
    void *state;              /* the backend's per-connection data */
    struct dbconf_conn *next; /* idle stack */
    int detached;
    int checked_out;
};

struct dbconf_engine {
    /* identity, fixed at creation */
    dbconf_config *cfg;       /* own copy */
    const struct dbc_backend *be;
    pthread_t owner;
    unsigned id;
    int test_mode;            /* resolved */
    int busy_timeout_ms;      /* SQLite */
    char *target;             /* for reports: path or URL without password */
    void *be_data;            /* the backend's engine-wide data */

    /* engine_cache.c, under its lock */
    dbconf_engine *cache_next;
    int cached;

    /* pool.c, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* a connection came back or capacity freed */
    dbconf_conn *idle;        /* LIFO stack */
    int nidle;
    int total;                /* open + being opened */
    int checked_out;
    int waiting;
    int disposed;
    int refs;                 /* cache + checked-out connections + calls in progress */
    int pool_size, max_overflow;
    double pool_timeout;
    uint64_t connects, closes, ping_failures, timeouts;

    struct dbc_events events;
    int tracked;              /* atomic */

    pthread_mutex_t notice_mu;
    char *notice;
};

/* engine.c */
DBC_HIDDEN dbconf_engine *dbc_engine_new(const dbconf_config *cfg, char *err, size_t errlen);
/* Drops one reference (under e->mu: the caller passes it locked and it comes
 * back unlocked); frees the engine when none is left. */
DBC_HIDDEN void dbc_engine_unref_locked(dbconf_engine *e);
/* Logs a statement on stderr when the engine echoes. */
DBC_HIDDEN void dbc_echo(const dbconf_engine *e, const char *sql);
/* Sets the engine's notice and prints it once on stderr. */
DBC_HIDDEN void dbc_engine_set_notice(dbconf_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* pool.c: closes every idle connection and marks the engine disposed; drops the cache's reference. */
DBC_HIDDEN void dbc_pool_dispose(dbconf_engine *e);

/* engine_cache.c: 1 when new engines are tracked from the start */
DBC_HIDDEN int dbc_auto_track(void);
/* Disposes every cached engine whose unique key equals `key` (all threads). */
DBC_HIDDEN void dbc_dispose_key(const char *key);
/* 1 if some cached engine has this key. */
DBC_HIDDEN int dbc_cache_has_key(const char *key);

/* postgres.c: create/drop through the maintenance database */
DBC_HIDDEN int dbc_pg_create_db(const dbconf_config *cfg, char *err, size_t errlen);
DBC_HIDDEN int dbc_pg_drop_db(const dbconf_config *cfg, char *err, size_t errlen);
DBC_HIDDEN int dbc_pg_db_exists(const dbconf_config *cfg, char *err, size_t errlen);

#endif
