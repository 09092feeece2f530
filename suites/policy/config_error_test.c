/* config_error_test.c — `connleak run` with a bad suppressions file or baseline and a leaking command: a configuration error, not 23. */
#include "policy.h"

Test(pending, malformed_suppressions_outrank_findings, TIMEOUT)
{
    char *supp = policy_write("bad.supp", "leak:open_session\nleek:open_cache\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache"), NULL, &r);
    policy_assert_config_error(r.proc.status, r.proc.err, "malformed suppressions, leaking command");
    cr_assert(clk_test_contains(r.proc.err, ":2: unknown suppression kind"), "%s", r.proc.err);
    clk_test_run_free(&r);
}

Test(pending, corrupt_baseline_outranks_findings, TIMEOUT)
{
    char *base = policy_write("b.json", "{\"version\": 1, \"fingerprints\": 3}\n");
    clk_test_run r;
    policy_run(ARGS("--baseline", base), ARGS("cache"), NULL, &r);
    policy_assert_config_error(r.proc.status, r.proc.err, "corrupt baseline, leaking command");
    clk_test_run_free(&r);
}
