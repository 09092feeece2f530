/* attribution_test.c — `connleak run` on Criterion test binaries: each leak names the test (suite::name) or fixture during which it was opened, and its opener. */
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120
/* BoxFort marks its workers with BXFI_MAP: a Criterion binary started from
 * this suite's worker must not inherit it, or it takes itself for a worker. */
#define CRIT_ENV ARGS("BXFI_MAP")

/* The leak entry whose "test" is exactly `test`; NULL when none. */
static json_t *leak_of_test(const json_t *report, const char *test)
{
    size_t i;
    json_t *leak;
    json_array_foreach(json_object_get(report, "leaks"), i, leak)
    {
        if (strcmp(clk_test_str(leak, "test"), test) == 0)
            return leak;
    }
    return NULL;
}

static void assert_leak(clk_test_run *r, const char *test, const char *opener, const char *target)
{
    json_t *leak = leak_of_test(r->report, test);
    cr_assert_not_null(leak, "no leak attributed to %s" CLK_CTX_FMT, test, CLK_CTX(r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), opener,
                     "%s: opened_at should start at %s" CLK_CTX_FMT, test, opener, CLK_CTX(r));
    cr_assert_str_eq(clk_test_str(leak, "target"), target, "%s: target" CLK_CTX_FMT, test, CLK_CTX(r));
    cr_assert_eq(clk_test_int(leak, "count"), 1, "%s: count" CLK_CTX_FMT, test, CLK_CTX(r));
    cr_assert_eq(json_array_size(json_object_get(leak, "pids")), 1, "%s: one worker pid" CLK_CTX_FMT, test,
                 CLK_CTX(r));
}

Test(attribution, names_exactly_the_three_leaking_tests, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_subject"), CRIT_ENV, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    /* the tests themselves pass: only connleak fails the run */
    cr_assert(clk_test_contains(r.proc.err, "Tested: 5 | Passing: 5 | Failing: 0"),
              "Criterion's synthesis" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "connects", 5);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "leaks", 3);
    cr_assert_eq(json_array_size(json_object_get(r.report, "leaks")), 3, "three leak entries" CLK_CTX_FMT,
                 CLK_CTX(&r));
    assert_leak(&r, "orders::leaks_connection", "open_orders_db", ":memory:");
    assert_leak(&r, "users::leaks_connection", "open_users_db", ":memory:");
    assert_leak(&r, "audit::leaks_on_early_return", "open_audit_db", "file:audit?mode=memory");
    /* the clean tests are named nowhere */
    cr_assert(!clk_test_contains(r.json_text, "closes_connection"), "a clean test in the report" CLK_CTX_FMT,
              CLK_CTX(&r));
    /* the text report on stderr names them too */
    cr_assert(clk_test_contains(r.proc.err, "test orders::leaks_connection"), "text report" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "test audit::leaks_on_early_return"), "text report" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(attribution, one_test_selected_by_filter, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_subject", "--filter", "users/*"), CRIT_ENV, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 1);
    assert_leak(&r, "users::leaks_connection", "open_users_db", ":memory:");
    clk_test_run_free(&r);
}

Test(attribution, clean_tests_only_pass, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_subject", "--filter", "*/closes_connection"), CRIT_ENV, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "leaks", 0);
    clk_test_run_free(&r);
}

Test(attribution, fixtures_are_named_as_fixtures, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_fixture"), CRIT_ENV, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.err, "Tested: 4 | Passing: 4 | Failing: 0"),
              "Criterion's synthesis" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "connects", 5);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 4);
    /* a suite's .init, a test's .init, the body of that same test, a test's .fini */
    assert_leak(&r, "suitefix::body_is_clean (init)", "open_db", "file:suite_shared?mode=memory");
    assert_leak(&r, "testfix::init_and_body_leak (init)", "open_db", "file:test_init?mode=memory");
    assert_leak(&r, "testfix::init_and_body_leak", "open_db", "file:test_body?mode=memory");
    assert_leak(&r, "testfix::fini_leaks (fini)", "open_db", "file:test_fini?mode=memory");
    cr_assert(clk_test_frames_name(json_object_get(leak_of_test(r.report, "suitefix::body_is_clean (init)"),
                                                   "opened_at"),
                                   "suite_open_shared"),
              "the suite fixture's frame" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_frames_name(json_object_get(leak_of_test(r.report, "testfix::fini_leaks (fini)"), "opened_at"),
                                   "fini_open_late"),
              "the .fini's frame" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_frames_name(json_object_get(leak_of_test(r.report, "testfix::init_and_body_leak"), "opened_at"),
                                   "body_open"),
              "the body's frame" CLK_CTX_FMT, CLK_CTX(&r));
    /* the balanced fixture opened and closed in its own test */
    cr_assert(!clk_test_contains(r.json_text, "balanced_fixture"), "balanced fixture reported" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(attribution, threads_and_forked_children_belong_to_the_test, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_spawn"), CRIT_ENV, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 2);
    assert_leak(&r, "spawn::thread_leaks", "thread_open", "file:from_thread?mode=memory");
    assert_leak(&r, "spawn::forked_child_leaks", "child_open", "file:from_child?mode=memory");
    clk_test_run_free(&r);
}

Test(attribution, pool_events_are_attributed_too, TIMEOUT)
{
    /* connleak_record() calls from a linked libconnleak go to the preloaded tracker */
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(CRIT_BIN_DIR "/cr_checked", "--filter", "pool/*"), CRIT_ENV, &r);
    clk_assert_report(&r);
    json_t *leak = leak_of_test(r.report, "pool::leaks_checkout");
    cr_assert_not_null(leak, "checkout leak attributed" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "checked_pool_checkout",
                     "opener" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *dc = clk_test_find_left_field(r.report, "double_close", NULL, NULL);
    cr_assert_not_null(dc, "double close" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_str(dc, "test"), "pool::double_close", "double close's test" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(attribution, outside_criterion_test_is_null, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    json_t *leak = json_array_get(json_object_get(r.report, "leaks"), 0);
    cr_assert_not_null(leak, "a leak" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(json_is_null(json_object_get(leak, "test")), "test should be null" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}
