/* report_test.c — what the report says beyond leaks (issue 14): why a close failed (unfinalized statements), peak concurrency. */
#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(report, busy_close_lists_the_unfinalized_sql, .timeout = 120)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(FX_BUSY), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    cr_assert(clk_test_contains(r.proc.out, "close rc=5"), "SQLITE_BUSY: %s", r.proc.out);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "open_marker_db");
    cr_assert_not_null(leak, "the leak" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *sql = json_object_get(leak, "unfinalized");
    cr_assert_eq(json_array_size(sql), 1, "one statement" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_str(json_array_get(sql, 0), "sql"), "select * from marker_table", "its SQL" CLK_CTX_FMT,
                     CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "select * from marker_table"), "text report" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(report, peak_open_of_five_at_once, .timeout = 120)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(FX_BUSY, "five"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "connects", 5);
    clk_assert_summary(&r, "peak_open", 5);
    clk_test_run_free(&r);
}
