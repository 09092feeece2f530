/* stackcache_test.c — the recorder's per-thread stack cache never hands one call chain another's stack: same site, same depth, other callers, threads, fork. */
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* Every leak entry that names `a` names `b` too, and the other way round. */
static void assert_named_together(const clk_test_run *r, const char *a, const char *b)
{
    json_t *leaks = json_object_get(r->report, "leaks");
    size_t i;
    json_t *leak;
    json_array_foreach(leaks, i, leak)
    {
        json_t *frames = json_object_get(leak, "opened_at");
        cr_assert_eq(clk_test_frames_name(frames, a), clk_test_frames_name(frames, b),
                     "leak %zu names only one of %s and %s" CLK_CTX_FMT, i, a, b, CLK_CTX(r));
    }
}

static void run_mode(const char *mode, clk_test_run *r)
{
    clk_test_connleak_fixture(NULL, "fx_stackcache", ARGS(mode), r);
    clk_assert_status(r, 23);
    clk_assert_report(r);
}

Test(stackcache, twins_at_one_site_keep_their_own_stacks, TIMEOUT)
{
    clk_test_run r;
    run_mode("alternate", &r);
    clk_assert_summary(&r, "connects", 400);
    clk_assert_summary(&r, "closes", 391);
    clk_assert_summary(&r, "leaks", 9);
    clk_assert_leaks_naming(&r, "caller_alpha", 4);
    clk_assert_leaks_naming(&r, "caller_beta", 5);
    cr_assert_eq(json_array_size(json_object_get(r.report, "leaks")), 2, "two stacks" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(stackcache, frames_that_change_size_keep_their_own_stacks, TIMEOUT)
{
    clk_test_run r;
    run_mode("shifting", &r);
    clk_assert_summary(&r, "connects", 400);
    clk_assert_summary(&r, "leaks", 18);
    clk_assert_leaks_naming(&r, "sized_gamma", 8);
    clk_assert_leaks_naming(&r, "sized_delta", 10);
    assert_named_together(&r, "sized_gamma", "caller_alpha");
    assert_named_together(&r, "sized_delta", "caller_beta");
    clk_test_run_free(&r);
}

Test(stackcache, a_thread_on_a_reused_stack_starts_afresh, TIMEOUT)
{
    clk_test_run r;
    run_mode("threads", &r);
    clk_assert_summary(&r, "connects", 2000);
    clk_assert_summary(&r, "leaks", 30);
    clk_assert_leaks_naming(&r, "thread_alpha", 10);
    clk_assert_leaks_naming(&r, "thread_beta", 20);
    assert_named_together(&r, "thread_alpha", "caller_alpha");
    assert_named_together(&r, "thread_beta", "caller_beta");
    clk_test_run_free(&r);
}

Test(stackcache, a_forked_child_keeps_the_cache_honest, TIMEOUT)
{
    clk_test_run r;
    run_mode("fork", &r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    cr_assert_gt(child, 0, "fixture printed no child pid: %s", r.proc.out);
    clk_assert_summary(&r, "leaks", 4);
    clk_assert_leaks_naming(&r, "caller_alpha", 1);
    clk_assert_leaks_naming(&r, "caller_beta", 3);
    json_t *beta = clk_test_find_leak(r.report, "sqlite", NULL, "caller_beta");
    cr_assert(clk_test_pids_contain(beta, child), "beta's leaks belong to the child" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}
