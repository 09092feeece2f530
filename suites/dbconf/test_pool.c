/* test_pool.c — the pool's behaviour shared by both backends: events, LIFO, overflow and bounded waits, reset, timeouts, threads, dispose. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbt.h"

TestSuite(pool_sqlite, .timeout = 30);
TestSuite(pool_pg, .timeout = 30);

DBT_BOTH(pool, events_in_order)
{
    dbconf_config *cfg = dbt_config(2, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    static struct dbt_events rec;
    dbt_record_events(e, &rec);

    dbconf_conn *c = dbt_checkout(e);
    void *h = dbconf_conn_handle(c);
    cr_assert_not_null(h);
    dbconf_checkin(c);
    c = dbt_checkout(e);
    cr_assert_eq(dbconf_conn_handle(c), h, "the idle connection is reused");
    dbconf_checkin(c);
    dbconf_engine_dispose(e);

    char *seq = dbt_event_string(&rec);
    cr_assert_str_eq(seq, "connect,checkout,checkin,checkout,checkin,close");
    for (size_t i = 0; i < rec.n; i++)
        cr_assert_eq(rec.list[i].handle, h, "event %zu is about the one connection", i);
    free(seq);
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, lifo_reuse)
{
    dbconf_config *cfg = dbt_config(3, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *a = dbt_checkout(e), *b = dbt_checkout(e), *c = dbt_checkout(e);
    void *ha = dbconf_conn_handle(a), *hb = dbconf_conn_handle(b), *hc = dbconf_conn_handle(c);
    char *sa = NULL, *sc = NULL;
    if (dbt.session_sql) {
        sa = dbt_value(a, dbt.session_sql);
        sc = dbt_value(c, dbt.session_sql);
    }
    dbconf_checkin(a);
    dbconf_checkin(b);
    dbconf_checkin(c);
    /* last in, first out */
    dbconf_conn *x = dbt_checkout(e), *y = dbt_checkout(e), *z = dbt_checkout(e);
    cr_assert_eq(dbconf_conn_handle(x), hc);
    cr_assert_eq(dbconf_conn_handle(y), hb);
    cr_assert_eq(dbconf_conn_handle(z), ha);
    if (dbt.session_sql) {
        /* the server sees the same sessions come back */
        char *sx = dbt_value(x, dbt.session_sql), *sz = dbt_value(z, dbt.session_sql);
        cr_assert_str_eq(sx, sc);
        cr_assert_str_eq(sz, sa);
        free(sx);
        free(sz);
    }
    dbconf_checkin(x);
    dbconf_checkin(y);
    dbconf_checkin(z);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.connects, 3);
    cr_assert_eq(st.idle, 3);
    free(sa);
    free(sc);
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, overflow_then_bounded_wait)
{
    dbconf_config *cfg = dbt_config(2, 1, 0.3);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = dbt_checkout(e);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.open, 3);
    cr_assert_eq(st.checked_out, 3);

    char err[512] = "";
    double t0 = dbt_now();
    dbconf_conn *fourth = dbconf_checkout(e, err, sizeof err);
    double waited = dbt_now() - t0;
    cr_assert_null(fourth, "a 4th connection is beyond pool_size 2 + max_overflow 1");
    cr_assert(waited >= 0.25 && waited < 3.0, "waited %.3f s for a 0.3 s pool timeout", waited);
    cr_assert(strstr(err, "pool exhausted") && strstr(err, "pool_size 2 + max_overflow 1") && strstr(err, "0.30 s"),
              "unclear error: %s", err);
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.timeouts, 1);
    cr_assert_eq(st.waiting, 0);

    /* once one comes back, a checkout succeeds without waiting for the timeout (a loaded CI
     * machine can take longer than the 0.3 s timeout to run it: the pool's own count says it
     * did not wait, the clock only bounds it loosely) */
    dbconf_checkin(c[2]);
    t0 = dbt_now();
    c[2] = dbt_checkout(e);
    waited = dbt_now() - t0;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.timeouts, 1, "the returned connection was not handed out (waited %.3f s)", waited);
    cr_assert(waited < 3.0, "waited %.3f s for a connection that was idle", waited);

    /* the pool keeps pool_size idle connections and closes the overflow */
    for (int i = 0; i < 3; i++)
        dbconf_checkin(c[i]);
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.idle, 2);
    cr_assert_eq(st.open, 2);
    cr_assert_eq(st.closes, 1);
    dbconf_config_free(cfg);
}

struct holder {
    dbconf_conn *c;
    double hold;
};

static void *give_back_later(void *p)
{
    struct holder *h = p;
    usleep((useconds_t)(h->hold * 1e6));
    dbconf_checkin(h->c);
    return NULL;
}

DBT_BOTH(pool, waiting_checkout_gets_the_returned_connection)
{
    dbconf_config *cfg = dbt_config(1, 0, 10.0);
    dbconf_engine *e = dbt_engine(cfg);
    struct holder h = {dbt_checkout(e), 0.2};
    void *handle = dbconf_conn_handle(h.c);
    pthread_t t;
    pthread_create(&t, NULL, give_back_later, &h);
    double t0 = dbt_now();
    dbconf_conn *c = dbt_checkout(e);
    double waited = dbt_now() - t0;
    pthread_join(t, NULL);
    cr_assert(waited >= 0.1 && waited < 5.0, "waited %.3f s", waited);
    cr_assert_eq(dbconf_conn_handle(c), handle);
    dbconf_checkin(c);
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, checkin_rolls_back_an_open_transaction)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    dbt_exec(c, "CREATE TABLE t (x INTEGER)");
    char err[512] = "";
    cr_assert_eq(dbconf_begin(c, 1, err, sizeof err), 0, "%s", err);
    cr_assert(dbconf_in_transaction(c));
    dbt_exec(c, "INSERT INTO t VALUES (1)");
    dbconf_checkin(c); /* never committed */

    c = dbt_checkout(e);
    cr_assert_not(dbconf_in_transaction(c));
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM t"), 0);
    /* outside a transaction statements autocommit */
    dbt_exec(c, "INSERT INTO t VALUES (2)");
    dbconf_checkin(c);
    c = dbt_checkout(e);
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM t"), 1);
    dbconf_checkin(c);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.connects, 1, "the rolled-back connection stayed in the pool");
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, statement_timeout_interrupts)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    cr_assert_eq(dbconf_config_set_timeout(cfg, 0.3), 0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    char err[512] = "";
    double t0 = dbt_now();
    int rc = dbconf_exec(c, dbt.long_sql, err, sizeof err);
    double took = dbt_now() - t0;
    cr_assert_eq(rc, -1, "a statement beyond the timeout must fail");
    cr_assert(took >= 0.2 && took < 5.0, "interrupted after %.3f s (timeout 0.3 s)", took);
    cr_assert(strstr(err, "timeout"), "error does not say timeout: %s", err);
    /* the connection stays usable */
    cr_assert_eq(dbt_int(c, "SELECT 41 + 1"), 42);
    dbconf_checkin(c);
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, echo_logs_statements)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_config_set_echo(cfg, 1);
    dbconf_engine *e = dbt_engine(cfg);
    dbt_stderr_begin();
    dbconf_conn *c = dbconf_checkout(e, NULL, 0);
    if (c) {
        dbconf_exec(c, "SELECT 12345 AS echo_marker", NULL, 0);
        dbconf_checkin(c);
    }
    char *out = dbt_stderr_end();
    cr_assert_not_null(c);
    cr_assert(strstr(out, "SELECT 12345 AS echo_marker"), "echo missing: %s", out);
    if (dbt.kind == DBCONF_SQLITE)
        cr_assert(strstr(out, "PRAGMA foreign_keys"), "connection set-up is echoed too: %s", out);
    free(out);

    /* without echo, nothing */
    dbconf_config *quiet = dbt_config(1, 0, 1.0);
    dbconf_engine *q = dbt_engine(quiet);
    cr_assert_neq(q, e);
    dbt_stderr_begin();
    c = dbconf_checkout(q, NULL, 0);
    if (c) {
        dbconf_exec(c, "SELECT 12345 AS echo_marker", NULL, 0);
        dbconf_checkin(c);
    }
    out = dbt_stderr_end();
    cr_assert(!strstr(out, "echo_marker"), "echoed without echo: %s", out);
    free(out);
    dbconf_config_free(cfg);
    dbconf_config_free(quiet);
}

/* ---- threads ---- */

struct hammer {
    dbconf_engine *e;
    int rounds;
    int errors;
    char err[512];
};

static void *hammer(void *p)
{
    struct hammer *h = p;
    for (int i = 0; i < h->rounds; i++) {
        char err[512];
        dbconf_conn *c = dbconf_checkout(h->e, err, sizeof err);
        if (!c) {
            h->errors++;
            snprintf(h->err, sizeof h->err, "%s", err);
            continue;
        }
        char v[32];
        if (dbconf_query_value(c, "SELECT 1", v, sizeof v, err, sizeof err) != 1 || strcmp(v, "1") != 0) {
            h->errors++;
            snprintf(h->err, sizeof h->err, "%s", err);
        }
        dbconf_checkin(c);
    }
    return NULL;
}

DBT_BOTH(pool, many_threads_one_engine)
{
    enum { THREADS = 8, ROUNDS = 150 };
    dbconf_config *cfg = dbt_config(3, 2, 20.0);
    dbconf_engine *e = dbt_engine(cfg);
    static struct dbt_events rec;
    dbt_record_events(e, &rec);
    pthread_t t[THREADS];
    struct hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){.e = e, .rounds = ROUNDS};
        pthread_create(&t[i], NULL, hammer, &h[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(h[i].errors, 0, "thread %d: %s", i, h[i].err);
    }
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    /* no event lost, no connection beyond pool_size + max_overflow */
    cr_assert_eq(rec.count[DBCONF_EVENT_CHECKOUT], THREADS * ROUNDS);
    cr_assert_eq(rec.count[DBCONF_EVENT_CHECKIN], THREADS * ROUNDS);
    cr_assert_eq(rec.count[DBCONF_EVENT_CONNECT], st.connects);
    cr_assert_eq(rec.count[DBCONF_EVENT_CLOSE], st.closes);
    cr_assert_leq(st.connects - st.closes, 5);
    cr_assert_eq((uint64_t)st.open, st.connects - st.closes);
    cr_assert_eq(st.checked_out, 0);
    dbconf_engine_dispose(e);
    cr_assert_eq(rec.count[DBCONF_EVENT_CONNECT], rec.count[DBCONF_EVENT_CLOSE], "dispose closes every connection");
    dbconf_config_free(cfg);
}

struct waiter {
    dbconf_engine *e;
    dbconf_conn *got;
    char err[512];
    double took;
};

static void *wait_for_conn(void *p)
{
    struct waiter *w = p;
    double t0 = dbt_now();
    w->got = dbconf_checkout(w->e, w->err, sizeof w->err);
    w->took = dbt_now() - t0;
    return NULL;
}

DBT_BOTH(pool, dispose_wakes_waiters_and_detaches_checked_out)
{
    enum { WAITERS = 4 };
    dbconf_config *cfg = dbt_config(1, 0, 20.0);
    dbconf_engine *e = dbt_engine(cfg);
    static struct dbt_events rec;
    dbt_record_events(e, &rec);
    dbconf_conn *held = dbt_checkout(e);
    void *handle = dbconf_conn_handle(held);

    pthread_t t[WAITERS];
    struct waiter w[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (struct waiter){.e = e};
        pthread_create(&t[i], NULL, wait_for_conn, &w[i]);
    }
    /* until all of them wait */
    dbconf_pool_stats st;
    for (int spin = 0; spin < 400; spin++) {
        dbconf_engine_stats(e, &st);
        if (st.waiting == WAITERS)
            break;
        usleep(5000);
    }
    cr_assert_eq(st.waiting, WAITERS);
    dbconf_engine_dispose(e);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_null(w[i].got);
        cr_assert(w[i].took < 5.0, "a waiter needed %.2f s to notice the dispose", w[i].took);
        cr_assert(strstr(w[i].err, "disposed"), "unclear error: %s", w[i].err);
    }
    /* the checked-out connection still works and is closed when it comes back */
    cr_assert_eq(dbt_int(held, "SELECT 7"), 7);
    cr_assert_eq(rec.count[DBCONF_EVENT_CLOSE], 0);
    dbconf_checkin(held);
    cr_assert_eq(rec.count[DBCONF_EVENT_CLOSE_DETACHED], 1);
    cr_assert_eq(rec.list[rec.n - 1].ev, DBCONF_EVENT_CLOSE_DETACHED);
    cr_assert_eq(rec.list[rec.n - 1].handle, handle);
    dbconf_config_free(cfg);
}

DBT_BOTH(pool, detach_frees_the_slot)
{
    dbconf_config *cfg = dbt_config(1, 0, 0.2);
    dbconf_engine *e = dbt_engine(cfg);
    static struct dbt_events rec;
    dbt_record_events(e, &rec);
    dbconf_conn *a = dbt_checkout(e);
    void *ha = dbconf_conn_handle(a);
    dbconf_detach(a);
    dbconf_conn *b = dbt_checkout(e); /* the pool of one may open another at once */
    cr_assert_neq(dbconf_conn_handle(b), ha);
    dbconf_checkin(a);
    cr_assert_eq(rec.count[DBCONF_EVENT_CLOSE_DETACHED], 1);
    cr_assert_eq(rec.list[rec.n - 1].handle, ha);
    dbconf_checkin(b);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.idle, 1);
    cr_assert_eq(st.open, 1);
    dbconf_config_free(cfg);
}

/* ---- listeners ---- */

struct reentrant {
    dbconf_engine *e;
    int sub_rc, sub_errno, inner_checkouts, entered;
};

static void noop_listener(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user) {}

static void reentering_listener(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user)
{
    struct reentrant *r = user;
    if (ev != DBCONF_EVENT_CONNECT || r->entered++)
        return; /* the inner checkout connects too: once is enough */
    /* subscribing from inside a listener of the same engine is refused, not a deadlock */
    r->sub_rc = dbconf_pool_subscribe(e, DBCONF_EVENTS_ALL, noop_listener, NULL);
    r->sub_errno = errno;
    /* checking out and in is fine */
    dbconf_conn *inner = dbconf_checkout(e, NULL, 0);
    if (inner) {
        r->inner_checkouts++;
        dbconf_checkin(inner);
    }
}

DBT_BOTH(pool, listeners_may_reenter_but_not_resubscribe)
{
    dbconf_config *cfg = dbt_config(2, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    struct reentrant r = {.e = e};
    cr_assert_eq(dbconf_pool_subscribe(e, DBCONF_EVENT_BIT(DBCONF_EVENT_CONNECT), reentering_listener, &r), 0);
    dbconf_conn *c = dbt_checkout(e);
    cr_assert_eq(r.sub_rc, -1);
    cr_assert_eq(r.sub_errno, EDEADLK);
    cr_assert_geq(r.inner_checkouts, 1);
    dbconf_checkin(c);
    cr_assert_eq(dbconf_pool_unsubscribe(e, reentering_listener, &r), 0);
    cr_assert_eq(dbconf_pool_unsubscribe(e, reentering_listener, &r), -1);
    cr_assert_eq(errno, ENOENT);
    dbconf_config_free(cfg);
}
