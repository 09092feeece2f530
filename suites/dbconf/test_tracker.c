/* test_tracker.c — connleak_track_pool on both backends: the tracker's figures after scripted sequences, stacks, left-field closes, clear(), threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dbt.h"

TestSuite(tracker_sqlite, .timeout = 30);
TestSuite(tracker_pg, .timeout = 30);

/* Exported and never inlined, so the stacks the tracker keeps name them. */
__attribute__((noinline)) dbconf_conn *tracker_checkout_site(dbconf_engine *e)
{
    dbconf_conn *c = dbt_checkout(e);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return c;
}

__attribute__((noinline)) void tracker_dispose_site(dbconf_engine *e)
{
    dbconf_engine_dispose(e);
    __asm__ volatile("" ::: "memory");
}

static connleak_counts counts(void)
{
    connleak_counts n;
    connleak_get_counts(&n);
    return n;
}

#define ASSERT_COUNTS(n, conn, clo, opn, lf, cko, cki, out)                                                 \
    do {                                                                                                     \
        cr_assert_eq((n).connects, conn, "connects %llu", (unsigned long long)(n).connects);                 \
        cr_assert_eq((n).closes, clo, "closes %llu", (unsigned long long)(n).closes);                        \
        cr_assert_eq((n).open, opn, "open %llu", (unsigned long long)(n).open);                              \
        cr_assert_eq((n).left_field_closes, lf, "left-field %llu", (unsigned long long)(n).left_field_closes); \
        cr_assert_eq((n).checkouts, cko, "checkouts %llu", (unsigned long long)(n).checkouts);               \
        cr_assert_eq((n).checkins, cki, "checkins %llu", (unsigned long long)(n).checkins);                  \
        cr_assert_eq((n).checked_out, out, "checked out %llu", (unsigned long long)(n).checked_out);         \
    } while (0)

/* The tracker's open entries for `handle`: pool-side and checkout-side. */
static void find_open(const void *handle, int *pool_side, int *checkout_side, connleak_conn *checkout_entry)
{
    connleak_conn list[64];
    size_t n = connleak_open_connections(list, 64);
    cr_assert_leq(n, 64);
    *pool_side = *checkout_side = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].conn != handle)
            continue;
        if (list[i].checked_out) {
            (*checkout_side)++;
            if (checkout_entry)
                *checkout_entry = list[i];
        } else {
            (*pool_side)++;
        }
    }
}

DBT_BOTH(tracker, figures_after_a_scripted_sequence)
{
    dbconf_config *cfg = dbt_config(1, 1, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert_eq(connleak_track_pool(e), 0);
    cr_assert(dbconf_engine_tracked(e));
    connleak_clear();
    ASSERT_COUNTS(counts(), 0, 0, 0, 0, 0, 0, 0);

    dbconf_conn *a = tracker_checkout_site(e), *b = tracker_checkout_site(e);
    ASSERT_COUNTS(counts(), 2, 0, 2, 0, 2, 0, 2);
    for (int i = 0; i < 2; i++) {
        const void *h = dbconf_conn_handle(i ? b : a);
        int pool_side, checkout_side;
        connleak_conn entry;
        find_open(h, &pool_side, &checkout_side, &entry);
        cr_assert_eq(pool_side, 1, "the open connection is known");
        cr_assert_eq(checkout_side, 1, "and checked out");
        cr_assert_eq(entry.backend, dbt.kind == DBCONF_SQLITE ? CONNLEAK_BACKEND_SQLITE : CONNLEAK_BACKEND_POSTGRES);
        cr_assert(dbt_frames_name(&entry, "tracker_checkout_site"), "the checkout's stack reaches the caller");
        /* the pool library's own frames are left out: the stack starts at its caller */
        cr_assert(!dbt_frames_name(&entry, "dbconf_checkout"));
        const char *first = connleak_frame_function(entry.frames[0]);
        cr_assert(strncmp(first, "dbconf_", 7) && strncmp(first, "dbc_", 4) && strcmp(first, "?"),
                  "first frame is %s, not the pool's caller", first);
    }

    dbconf_checkin(a); /* back to the pool */
    ASSERT_COUNTS(counts(), 2, 0, 2, 0, 2, 1, 1);
    dbconf_checkin(b); /* beyond pool_size 1: closed */
    ASSERT_COUNTS(counts(), 2, 1, 1, 0, 2, 2, 0);
    dbconf_conn *again = tracker_checkout_site(e); /* reuses a: no new connect */
    cr_assert_eq(dbconf_conn_handle(again), dbconf_conn_handle(a));
    dbconf_checkin(again);
    ASSERT_COUNTS(counts(), 2, 1, 1, 0, 3, 3, 0);
    dbconf_engine_dispose(e);
    ASSERT_COUNTS(counts(), 2, 2, 0, 0, 3, 3, 0);
    cr_assert_eq(connleak_open_connections(NULL, 0), 0);
    cr_assert_eq(connleak_left_field_closes(NULL, 0), 0);
    dbconf_config_free(cfg);
}

DBT_BOTH(tracker, a_left_field_close_keeps_its_stack)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    connleak_track_pool(e);
    dbconf_conn *c = tracker_checkout_site(e);
    const void *h = dbconf_conn_handle(c);
    dbconf_checkin(c);
    connleak_clear(); /* the tracker forgets the open connection... */
    tracker_dispose_site(e); /* ...so its close comes out of left field */

    connleak_counts n = counts();
    ASSERT_COUNTS(n, 0, 0, 0, 1, 0, 0, 0);
    cr_assert_eq(n.unknown_closes, 1);
    cr_assert_eq(n.double_closes, 0);
    connleak_conn list[8];
    cr_assert_eq(connleak_left_field_closes(list, 8), 1);
    cr_assert_eq(list[0].conn, h);
    cr_assert(dbt_frames_name(&list[0], "tracker_dispose_site"), "the close's stack names who disposed");
    cr_assert(!dbt_frames_name(&list[0], "dbconf_engine_dispose"), "dbconf's own frames are left out");
    dbconf_config_free(cfg);
}

DBT_BOTH(tracker, clear_resets_everything)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    connleak_track_pool(e);
    dbconf_conn *c = tracker_checkout_site(e);
    dbconf_checkin(c);
    dbconf_engine_dispose(e);
    e = dbt_engine(cfg);
    connleak_track_pool(e);
    connleak_clear();
    tracker_dispose_site(e); /* nothing open: no event */
    e = dbt_engine(cfg);
    connleak_track_pool(e);
    c = tracker_checkout_site(e);
    dbconf_checkin(c);
    connleak_clear();
    tracker_dispose_site(e); /* a left-field close */
    e = dbt_engine(cfg);
    connleak_track_pool(e);
    c = tracker_checkout_site(e); /* one open, one out */
    connleak_counts n = counts();
    cr_assert(n.connects && n.open && n.left_field_closes && n.checkouts && n.checked_out);

    connleak_clear();
    ASSERT_COUNTS(counts(), 0, 0, 0, 0, 0, 0, 0);
    cr_assert_eq(connleak_open_connections(NULL, 0), 0);
    cr_assert_eq(connleak_left_field_closes(NULL, 0), 0);
    dbconf_checkin(c); /* a checkin of what was forgotten leaves nothing behind */
    n = counts();
    cr_assert_eq(n.checked_out, 0);
    cr_assert_eq(n.open, 0);
    dbconf_config_free(cfg);
}

DBT_BOTH(tracker, tracking_twice_counts_once)
{
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert_eq(connleak_track_pool(e), 0);
    cr_assert_eq(connleak_track_pool(e), 0);
    connleak_clear();
    dbconf_checkin(tracker_checkout_site(e));
    ASSERT_COUNTS(counts(), 1, 0, 1, 0, 1, 1, 0);
    dbconf_config_free(cfg);
}

DBT_BOTH(tracker, untracked_engines_are_not_seen)
{
    setenv("DBCONF_TRACK", "0", 1); /* read once, at the first engine */
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert_not(dbconf_engine_tracked(e));
    connleak_clear();
    dbconf_checkin(tracker_checkout_site(e));
    dbconf_engine_dispose(e);
    ASSERT_COUNTS(counts(), 0, 0, 0, 0, 0, 0, 0);
    dbconf_config_free(cfg);
}

DBT_BOTH(tracker, dbconf_track_env_tracks_every_engine)
{
    setenv("DBCONF_TRACK", "1", 1);
    dbconf_config *cfg = dbt_config(1, 0, 1.0);
    connleak_clear();
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert(dbconf_engine_tracked(e));
    dbconf_checkin(tracker_checkout_site(e));
    ASSERT_COUNTS(counts(), 1, 0, 1, 0, 1, 1, 0);
    dbconf_config_free(cfg);
}

struct worker {
    dbconf_engine *e;
    int rounds, errors;
    char why[256];
};

static void *work(void *p)
{
    struct worker *w = p;
    for (int i = 0; i < w->rounds; i++) {
        dbconf_conn *c = dbconf_checkout(w->e, w->why, sizeof w->why);
        if (!c) {
            w->errors++;
            continue;
        }
        dbconf_checkin(c);
    }
    return NULL;
}

DBT_BOTH(tracker, many_threads_lose_no_event)
{
    enum { THREADS = 6, ROUNDS = 150 };
    dbconf_config *cfg = dbt_config(2, 2, 20.0);
    dbconf_engine *e = dbt_engine(cfg);
    connleak_track_pool(e);
    connleak_clear();
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){e, ROUNDS, 0, ""};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].errors, 0, "%d checkouts failed: %s", w[i].errors, w[i].why);
    }
    connleak_counts n = counts();
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(n.checkouts, THREADS * ROUNDS);
    cr_assert_eq(n.checkins, THREADS * ROUNDS);
    cr_assert_eq(n.checked_out, 0);
    cr_assert_eq(n.connects, st.connects);
    cr_assert_eq(n.closes, st.closes);
    cr_assert_eq(n.open, (uint64_t)st.open);
    cr_assert_eq(n.left_field_closes, 0);
    dbconf_engine_dispose(e);
    n = counts();
    cr_assert_eq(n.open, 0);
    cr_assert_eq(n.closes, n.connects);
    dbconf_config_free(cfg);
}
