/* stress_test.c — 16 threads churning connections while the process forks and execs leaking children: every figure exact, ten runs. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "clk_test.h"

#define THREADS "16"
#define PER_THREAD "10000"
#define FORKS "40"

/* Each of the 40 forks either _exits at once or execs a child that leaks one
 * connection: 20 leaks, one per exec'd pid; 1 + 40 + 20 journals. */
static void one_run(int round)
{
    const char *exe = clk_test_fixture("../stress/fx_stress");
    const char *cmd[] = {exe, THREADS, PER_THREAD, FORKS, NULL};
    clk_test_run r;
    int status = clk_test_connleak(NULL, cmd, NULL, &r);
    cr_assert(!r.proc.timed_out, "round %d: deadlock (watchdog fired): %s", round, clk_test_excerpt(r.proc.err));
    cr_assert_eq(status, 23, "round %d: exit %d: %s", round, status, clk_test_excerpt(r.proc.err));
    cr_assert_not_null(r.report, "round %d: no JSON report", round);
    cr_assert_eq(clk_test_summary(r.report, "connects"), 160020, "round %d: %s", round, clk_test_dump(r.report));
    cr_assert_eq(clk_test_summary(r.report, "closes"), 160000, "round %d: %s", round, clk_test_dump(r.report));
    cr_assert_eq(clk_test_summary(r.report, "leaks"), 20, "round %d: %s", round, clk_test_dump(r.report));
    cr_assert_eq(clk_test_summary(r.report, "processes"), 61, "round %d: %s", round, clk_test_dump(r.report));
    cr_assert_eq(clk_test_summary(r.report, "double_closes"), 0);
    cr_assert_eq(clk_test_summary(r.report, "unknown_closes"), 0);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", ":memory:", "stress_child_leak");
    cr_assert_not_null(leak, "round %d: the children's leak is not named: %s", round, clk_test_dump(r.report));
    cr_assert_eq(clk_test_int(leak, "count"), 20);
    cr_assert_eq(json_array_size(json_object_get(leak, "pids")), 20, "one leak per exec'd child");
    clk_test_run_free(&r);
}

Test(stress, threads_fork_exec_ten_rounds, .timeout = 600)
{
    for (int round = 1; round <= 10; round++)
        one_run(round);
}
