/* engine.c — an engine's life (creation, last reference, accessors), its echo and notice, and small shared helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- helpers ---- */

int dbc_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* one line: libraries' messages often end in a newline */
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r') {
                if (p[1])
                    *p = ' ';
                else
                    *p = 0;
            }
    }
    return -1;
}

double dbc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *dbc_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *dbc_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* ---- life ---- */

static unsigned next_id; /* atomic */

dbconf_engine *dbc_engine_new(const dbconf_config *cfg, char *err, size_t errlen)
{
    if (cfg->kind == DBCONF_SQLITE && dbconf_sqlite_check_version(sqlite3_libversion_number(), err, errlen) != 0)
        return NULL;
    int test_mode = dbconf_config_test_mode(cfg, err, errlen);
    if (test_mode < 0)
        return NULL;
    dbconf_engine *e = calloc(1, sizeof *e);
    if (!e) {
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    e->cfg = dbconf_config_copy(cfg);
    if (!e->cfg) {
        free(e);
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    e->be = cfg->kind == DBCONF_SQLITE ? &dbc_sqlite_backend : &dbc_pg_backend;
    e->owner = pthread_self();
    e->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    e->test_mode = test_mode;
    e->busy_timeout_ms = test_mode ? 5000 : 60000;
    e->pool_size = dbconf_config_pool_size(cfg);
    e->max_overflow = dbconf_config_max_overflow(cfg);
    e->pool_timeout = cfg->pool_timeout;
    e->refs = 1; /* the cache's */

    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* checkout deadlines ignore clock changes */
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&e->notice_mu, NULL);
    dbc_events_init(&e->events);

    if (e->be->engine_init(e, err, errlen) != 0) {
        e->disposed = 1;
        pthread_mutex_lock(&e->mu);
        dbc_engine_unref_locked(e);
        return NULL;
    }
    return e;
}

static void engine_free(dbconf_engine *e)
{
    if (e->be_data || e->target)
        e->be->engine_free(e);
    dbc_events_free(&e->events);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->notice_mu);
    dbconf_config_free(e->cfg);
    free(e->notice);
    free(e);
}

void dbc_engine_unref_locked(dbconf_engine *e)
{
    int last = --e->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last)
        engine_free(e);
}

/* ---- echo and notices ---- */

void dbc_echo(const dbconf_engine *e, const char *sql)
{
    if (!e->cfg->echo || !sql)
        return;
    /* one fprintf per line: stdio locks the stream, so lines never interleave */
    fprintf(stderr, "dbconf[%s#%u]: %s\n", e->be->name, e->id, sql);
}

void dbc_engine_set_notice(dbconf_engine *e, const char *fmt, ...)
{
    pthread_mutex_lock(&e->notice_mu);
    int first = e->notice == NULL;
    if (first) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&e->notice, fmt, ap) < 0)
            e->notice = NULL;
        va_end(ap);
    }
    pthread_mutex_unlock(&e->notice_mu);
    if (first && e->notice)
        fprintf(stderr, "dbconf[%s#%u]: note: %s\n", e->be->name, e->id, e->notice);
}

/* ---- accessors ---- */

DBC_PUBLIC dbconf_kind dbconf_engine_kind(const dbconf_engine *e) { return e->cfg->kind; }
DBC_PUBLIC const char *dbconf_engine_url(const dbconf_engine *e) { return e->cfg->url; }
DBC_PUBLIC const char *dbconf_engine_target(const dbconf_engine *e) { return e->target; }

DBC_PUBLIC const char *dbconf_engine_notice(dbconf_engine *e)
{
    pthread_mutex_lock(&e->notice_mu);
    const char *n = e->notice; /* set once, never changed: safe to hand out */
    pthread_mutex_unlock(&e->notice_mu);
    return n;
}
