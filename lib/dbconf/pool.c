/* pool.c — the connection pool: LIFO checkout with pre-ping, overflow, bounded waits, checkin with reset, detach, dispose. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Locking: e->mu guards the pool's fields. Events are emitted with it
 * released (listeners may check out or dispose, which take it), and only
 * for connections the calling thread owns at that moment: a checkin is
 * announced before the connection is visible to others again, a close
 * before the handle is freed (a new connection could otherwise be given the
 * same address and be announced first). Engine lifetime: e->refs counts the
 * cache, each checked-out connection and each call in progress; the last one
 * out frees the engine. */

#define ADD(field) __atomic_add_fetch(&(field), 1, __ATOMIC_RELAXED)

static int has_capacity(const dbconf_engine *e)
{
    return e->max_overflow < 0 || e->total < e->pool_size + e->max_overflow;
}

/* Announces and closes a connection the caller owns, then frees it. */
static void conn_close(dbconf_engine *e, dbconf_conn *c, dbconf_event ev)
{
    dbc_emit(e, ev, c);
    e->be->close(e, c->handle, c->state);
    free(c);
}

static dbconf_conn *conn_open(dbconf_engine *e, char *err, size_t errlen)
{
    dbconf_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    c->engine = e;
    if (e->be->connect(e, &c->handle, &c->state, err, errlen) != 0) {
        free(c);
        return NULL;
    }
    ADD(e->connects);
    dbc_emit(e, DBCONF_EVENT_CONNECT, c);
    return c;
}

static struct timespec deadline_ts(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double whole = floor(seconds);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

DBC_PUBLIC dbconf_conn *dbconf_checkout(dbconf_engine *e, char *err, size_t errlen)
{
    if (!e) {
        dbc_fail(err, errlen, "dbconf: checkout from a NULL engine");
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    e->refs++; /* this call's; becomes the checked-out connection's */
    dbconf_conn *c = NULL;
    int fresh = 0, waited = 0;
    struct timespec until;
    for (;;) {
        if (e->disposed) {
            dbc_fail(err, errlen, "dbconf: the engine for %s was disposed", e->target);
            goto fail_locked;
        }
        if (e->idle) { /* LIFO: the most recently used is the likeliest to be alive */
            c = e->idle;
            e->idle = c->next;
            c->next = NULL;
            e->nidle--;
            break;
        }
        if (has_capacity(e)) {
            e->total++; /* reserve the slot; connect outside the lock */
            fresh = 1;
            break;
        }
        if (!waited) {
            until = deadline_ts(e->pool_timeout);
            waited = 1;
        }
        e->waiting++;
        int rc = pthread_cond_timedwait(&e->cv, &e->mu, &until);
        e->waiting--;
        if (rc == ETIMEDOUT && !e->idle && !has_capacity(e) && !e->disposed) {
            ADD(e->timeouts);
            dbc_fail(err, errlen,
                     "dbconf: connection pool exhausted for %s: all %d connections (pool_size %d + max_overflow %d) "
                     "are checked out and none came back within %.2f s",
                     e->target, e->pool_size + e->max_overflow, e->pool_size, e->max_overflow, e->pool_timeout);
            goto fail_locked;
        }
    }
    e->checked_out++;
    pthread_mutex_unlock(&e->mu);

    if (!fresh && e->be->ping && !e->be->ping(e, c->handle)) {
        /* the server dropped it: close it and open another in its slot */
        ADD(e->ping_failures);
        ADD(e->closes);
        conn_close(e, c, DBCONF_EVENT_CLOSE);
        c = NULL;
        fresh = 1;
    }
    if (fresh) {
        c = conn_open(e, err, errlen);
        if (!c) {
            pthread_mutex_lock(&e->mu);
            e->total--;
            e->checked_out--;
            pthread_cond_signal(&e->cv);
            goto fail_locked;
        }
    }
    c->checked_out = 1;
    dbc_emit(e, DBCONF_EVENT_CHECKOUT, c);
    return c;

fail_locked:
    dbc_engine_unref_locked(e);
    return NULL;
}

DBC_PUBLIC void dbconf_checkin(dbconf_conn *c)
{
    if (!c)
        return;
    dbconf_engine *e = c->engine;
    dbc_emit(e, DBCONF_EVENT_CHECKIN, c);
    c->checked_out = 0;

    /* reset on return: the next user must not inherit a transaction */
    int keep = !c->detached && e->be->usable(c);
    if (keep && e->be->in_transaction(c)) {
        e->be->exec(c, "ROLLBACK", NULL, 0);
        keep = e->be->usable(c) && !e->be->in_transaction(c);
    }
    /* an in-memory database lives in its one connection: closing it would lose the data */
    if (e->cfg->inmemory)
        keep = !c->detached;

    dbconf_event close_ev = 0;
    pthread_mutex_lock(&e->mu);
    e->checked_out--;
    if (c->detached) {
        close_ev = DBCONF_EVENT_CLOSE_DETACHED; /* already out of the pool's count */
    } else if (e->disposed) {
        e->total--;
        close_ev = DBCONF_EVENT_CLOSE_DETACHED; /* its pool is gone */
    } else if (!keep || e->nidle >= e->pool_size) {
        e->total--; /* broken, or overflow beyond what the pool keeps */
        close_ev = DBCONF_EVENT_CLOSE;
        pthread_cond_signal(&e->cv);
    } else {
        c->next = e->idle;
        e->idle = c;
        e->nidle++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);

    if (close_ev) {
        ADD(e->closes);
        conn_close(e, c, close_ev);
    }
    pthread_mutex_lock(&e->mu);
    dbc_engine_unref_locked(e); /* the checkout's reference, dropped last: the engine was used above */
}

DBC_PUBLIC void dbconf_detach(dbconf_conn *c)
{
    if (!c)
        return;
    dbconf_engine *e = c->engine;
    pthread_mutex_lock(&e->mu);
    if (!c->detached && c->checked_out) {
        c->detached = 1;
        e->total--; /* its slot is free for a new connection */
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

void dbc_pool_dispose(dbconf_engine *e)
{
    pthread_mutex_lock(&e->mu);
    if (e->disposed) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    e->disposed = 1;
    dbconf_conn *list = e->idle;
    e->total -= e->nidle;
    e->idle = NULL;
    e->nidle = 0;
    pthread_cond_broadcast(&e->cv); /* waiting checkouts fail now */
    pthread_mutex_unlock(&e->mu);

    while (list) {
        dbconf_conn *next = list->next;
        ADD(e->closes);
        conn_close(e, list, DBCONF_EVENT_CLOSE);
        list = next;
    }
    pthread_mutex_lock(&e->mu);
    dbc_engine_unref_locked(e); /* the cache's reference */
}

DBC_PUBLIC void dbconf_engine_stats(dbconf_engine *e, dbconf_pool_stats *out)
{
    pthread_mutex_lock(&e->mu);
    out->pool_size = e->pool_size;
    out->max_overflow = e->max_overflow;
    out->open = e->total;
    out->idle = e->nidle;
    out->checked_out = e->checked_out;
    out->waiting = e->waiting;
    out->disposed = e->disposed;
    out->connects = __atomic_load_n(&e->connects, __ATOMIC_RELAXED);
    out->closes = __atomic_load_n(&e->closes, __ATOMIC_RELAXED);
    out->ping_failures = __atomic_load_n(&e->ping_failures, __ATOMIC_RELAXED);
    out->timeouts = __atomic_load_n(&e->timeouts, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&e->mu);
}

DBC_PUBLIC dbconf_engine *dbconf_conn_engine(const dbconf_conn *c) { return c->engine; }
DBC_PUBLIC void *dbconf_conn_handle(const dbconf_conn *c) { return c->handle; }

DBC_PUBLIC sqlite3 *dbconf_conn_sqlite(const dbconf_conn *c)
{
    return c->engine->cfg->kind == DBCONF_SQLITE ? c->handle : NULL;
}

DBC_PUBLIC PGconn *dbconf_conn_pg(const dbconf_conn *c)
{
    return c->engine->cfg->kind == DBCONF_POSTGRES ? c->handle : NULL;
}
