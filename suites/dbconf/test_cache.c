/* test_cache.c — engines cached per (thread, configuration) and disposed at thread exit, process exit and on request, on both backends. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clk_test.h"
#include "dbt.h"

TestSuite(cache_sqlite, .timeout = 30);
TestSuite(cache_pg, .timeout = 30);

DBT_BOTH(cache, same_key_same_engine)
{
    dbconf_config *cfg = dbt_config(2, 1, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert_eq(dbt_engine(cfg), e);
    dbconf_config *copy = dbconf_config_copy(cfg);
    cr_assert_eq(dbt_engine(copy), e);
    dbconf_config *again = dbt_config(2, 1, 1.0); /* built anew, same settings */
    cr_assert_eq(dbt_engine(again), e);
    cr_assert_eq(dbconf_engine_cache_size(), 1);
    cr_assert_str_eq(dbconf_engine_url(e), dbt.url);
    cr_assert_eq(dbconf_engine_kind(e), dbt.kind);
    dbconf_config_free(cfg);
    dbconf_config_free(copy);
    dbconf_config_free(again);
}

DBT_BOTH(cache, other_echo_timeout_or_pool_other_engine)
{
    dbconf_config *base = dbt_config(2, 1, 1.0);
    dbconf_engine *e = dbt_engine(base);
    dbconf_config *echo = dbconf_config_copy(base), *timeout = dbconf_config_copy(base),
                  *pool = dbconf_config_copy(base), *mode = dbconf_config_copy(base);
    dbconf_config_set_echo(echo, 1);
    dbconf_config_set_timeout(timeout, 5);
    dbconf_config_set_pool_size(pool, 3);
    dbconf_config_set_test_mode(mode, DBCONF_TEST_MODE_OFF);
    dbconf_engine *es[4] = {dbt_engine(echo), dbt_engine(timeout), dbt_engine(pool), dbt_engine(mode)};
    for (int i = 0; i < 4; i++) {
        cr_assert_neq(es[i], e, "setting %d makes another engine", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(es[i], es[j]);
    }
    cr_assert_eq(dbconf_engine_cache_size(), 5);
    cr_assert_eq(dbt_engine(timeout), es[1], "and that one is cached too");
    dbconf_config_free(base);
    dbconf_config_free(echo);
    dbconf_config_free(timeout);
    dbconf_config_free(pool);
    dbconf_config_free(mode);
}

struct in_thread {
    const dbconf_config *cfg;
    dbconf_engine *main_engine;
    dbconf_engine *mine;
    void *handle;
    int same_as_main;
    struct dbt_events *rec;
};

static void *thread_uses_engine(void *p)
{
    struct in_thread *t = p;
    t->mine = dbconf_engine_get(t->cfg, NULL, 0);
    if (!t->mine)
        return NULL;
    t->same_as_main = t->mine == t->main_engine;
    dbt_record_events(t->mine, t->rec);
    connleak_track_pool(t->mine);
    dbconf_conn *c = dbconf_checkout(t->mine, NULL, 0);
    if (c) {
        t->handle = dbconf_conn_handle(c);
        dbconf_checkin(c); /* idle in the pool when the thread ends */
    }
    return NULL;
}

DBT_BOTH(cache, another_thread_gets_its_own_engine_disposed_at_its_exit)
{
    dbconf_config *cfg = dbt_config(2, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    connleak_track_pool(e);
    dbconf_conn *mine = dbt_checkout(e);
    dbconf_checkin(mine);
    connleak_counts before;
    connleak_get_counts(&before);

    static struct dbt_events rec;
    struct in_thread t = {.cfg = cfg, .main_engine = e, .rec = &rec};
    pthread_t th;
    pthread_create(&th, NULL, thread_uses_engine, &t);
    pthread_join(th, NULL);
    cr_assert_not_null(t.mine);
    cr_assert_not(t.same_as_main, "another thread, another engine");
    cr_assert_not_null(t.handle);

    char *seq = dbt_event_string(&rec);
    cr_assert_str_eq(seq, "connect,checkout,checkin,close", "the thread's exit closed its connection");
    free(seq);
    connleak_counts after;
    connleak_get_counts(&after);
    cr_assert_eq(after.connects - before.connects, 1);
    cr_assert_eq(after.closes - before.closes, 1);
    cr_assert_eq(after.open, before.open, "the thread left no open connection");
    cr_assert_eq(dbconf_engine_cache_size(), 1, "only this thread's engine is cached");

    /* ours is untouched */
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.idle, 1);
    cr_assert_eq(st.disposed, 0);
    dbconf_conn *c = dbt_checkout(e);
    cr_assert_eq(dbt_int(c, "SELECT 5"), 5);
    dbconf_checkin(c);
    dbconf_config_free(cfg);
}

DBT_BOTH(cache, dispose_removes_from_the_cache)
{
    dbconf_config *cfg = dbt_config(2, 0, 1.0);
    dbconf_engine *e = dbt_engine(cfg);
    static struct dbt_events rec;
    dbt_record_events(e, &rec);
    dbconf_checkin(dbt_checkout(e));
    dbconf_engine_dispose(e);
    cr_assert_eq(rec.count[DBCONF_EVENT_CLOSE], 1);
    cr_assert_eq(dbconf_engine_cache_size(), 0);
    dbconf_engine *fresh = dbt_engine(cfg);
    dbconf_pool_stats st;
    dbconf_engine_stats(fresh, &st);
    cr_assert_eq(st.connects, 0, "a new engine, not the disposed one");
    cr_assert_eq(st.disposed, 0);
    dbconf_checkin(dbt_checkout(fresh));
    dbconf_dispose_thread_engines();
    cr_assert_eq(dbconf_engine_cache_size(), 0);
    dbconf_config_free(cfg);
}

static char *exit_fixture_path(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0;
    return clk_test_path(self, "dbconf-exit-fixture");
}

static void run_exit_fixture(const char *mode, const char *want)
{
    char *path = exit_fixture_path();
    const char *argv[] = {path, dbt.url, mode, NULL};
    clk_test_proc p;
    clk_test_exec(argv, NULL, NULL, 20, &p);
    cr_assert_eq(p.status, 0, "exit_fixture %s: status %d, stderr: %s", mode, p.status, p.err);
    cr_assert_str_eq(p.out, want, "stderr: %s", p.err);
    clk_test_proc_free(&p);
    free(path);
}

DBT_BOTH(cache, process_exit_disposes_engines)
{
    run_exit_fixture("exit", "main connect\nmain checkout\nmain checkin\nmain returns\nmain close\n");
}

DBT_BOTH(cache, thread_exit_disposes_before_join_returns)
{
    run_exit_fixture("thread", "thread connect\nthread checkout\nthread checkin\nthread close\nmain joined\n");
}
