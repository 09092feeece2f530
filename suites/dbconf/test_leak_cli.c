/* test_leak_cli.c — a pooled connection checked out and never returned makes `connleak run` fail and name the test that took it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clk_test.h"
#include "dbt.h"

static char *leaky_fixture(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0;
    return clk_test_path(self, "dbconf-leaky-fixture");
}

/* Does a leak entry's opened_at have a frame whose function contains `part`? */
static int leak_names(const json_t *report, const char *part)
{
    const json_t *leaks = json_object_get(report, "leaks"), *leak, *frame;
    size_t i, j;
    json_array_foreach(leaks, i, leak) {
        json_array_foreach(json_object_get(leak, "opened_at"), j, frame) {
            const char *fn = json_string_value(json_object_get(frame, "function"));
            if (fn && strstr(fn, part))
                return 1;
        }
    }
    return 0;
}

Test(leak_cli, connleak_run_fails_and_names_the_leaking_test, .timeout = 120)
{
    char *fx = leaky_fixture();
    cr_assert_eq(access(fx, X_OK), 0, "%s is not built", fx);
    const char *cmd[] = {fx, "--jobs=1", NULL};
    /* we run inside a Criterion worker: without this the nested Criterion
     * binary would take itself for one of our workers */
    char *dir = clk_test_mkdtemp(), dirvar[600];
    snprintf(dirvar, sizeof dirvar, "DBCONF_LEAKY_DIR=%s", dir);
    const char *env[] = {"BXFI_MAP", dirvar, NULL};
    clk_test_run r;
    int status = clk_test_connleak(NULL, cmd, env, &r);
    cr_assert_neq(status, -1, "cannot run %s: %s", clk_test_cli(), clk_test_excerpt(r.proc.err));
    cr_assert_eq(status, 23, "connleak run must fail on the leaked checkouts (status %d); stderr:\n%s", status,
                 clk_test_excerpt(r.proc.err));
    cr_assert_not_null(r.report, "no JSON report; stderr:\n%s", clk_test_excerpt(r.proc.err));
    cr_assert_geq(clk_test_summary(r.report, "leaks"), 2, "%s", clk_test_dump(r.report));
    cr_assert(leak_names(r.report, "leaky_checkout_never_returned"), "the explicitly tracked leak names its test: %s",
              clk_test_dump(r.report));
    cr_assert(leak_names(r.report, "leaky_auto_tracked_checkout_never_returned"),
              "the auto-tracked leak names its test: %s", clk_test_dump(r.report));
    cr_assert_not(leak_names(r.report, "returned_connection_is_no_leak"), "a returned connection is no leak: %s",
                  clk_test_dump(r.report));
    cr_assert(clk_test_contains(r.proc.err, "checkout_never_returned"), "the text report names it too:\n%s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
    free(dir);
    free(fx);
}
