/* clk_assert.h — Criterion assertions over connleak runs that print connleak's stderr and JSON when they fail. */
#ifndef CLK_ASSERT_H
#define CLK_ASSERT_H

#include <criterion/criterion.h>

#include "clk_test.h"

/* The run ended with `want` (connleak's own exit status). */
#define clk_assert_status(run, want)                                                          \
    cr_assert_eq((run)->proc.status, (want),                                                   \
                 "connleak exit status %d, expected %d%s\n--- stdout:\n%s\n--- stderr:\n%s",  \
                 (run)->proc.status, (want), (run)->proc.timed_out ? " (timed out)" : "",      \
                 clk_test_excerpt((run)->proc.out), clk_test_excerpt((run)->proc.err))

/* The run wrote a JSON report of version 1. */
#define clk_assert_report(run)                                                                \
    do {                                                                                       \
        cr_assert_not_null((run)->report,                                                      \
                           "no readable JSON report at %s (exit %d)\n--- stderr:\n%s",         \
                           (run)->json_path, (run)->proc.status,                               \
                           clk_test_excerpt((run)->proc.err));                                 \
        cr_assert_eq(clk_test_int((run)->report, "version"), 1, "report version: %s",          \
                     clk_test_dump((run)->report));                                            \
    } while (0)

/* summary.<key> == want */
#define clk_assert_summary(run, key, want)                                                    \
    cr_assert_eq(clk_test_summary((run)->report, (key)), (long long)(want),                    \
                 "summary.%s = %lld, expected %lld\n--- report: %s\n--- stderr:\n%s", (key),   \
                 clk_test_summary((run)->report, (key)), (long long)(want),                    \
                 clk_test_dump((run)->report), clk_test_excerpt((run)->proc.err))

/* The leaks whose opening stack names `function` add up to `want`. */
#define clk_assert_leaks_naming(run, function, want)                                          \
    cr_assert_eq(clk_test_leak_count((run)->report, NULL, NULL, (function)), (long long)(want), \
                 "leaks naming %s: %lld, expected %lld\n--- report: %s\n--- stderr:\n%s",     \
                 (function), clk_test_leak_count((run)->report, NULL, NULL, (function)),        \
                 (long long)(want), clk_test_dump((run)->report), clk_test_excerpt((run)->proc.err))

/* A failing assertion's context: the report and connleak's stderr. */
#define CLK_CTX(run) clk_test_dump((run)->report), clk_test_excerpt((run)->proc.err)
#define CLK_CTX_FMT "\n--- report: %s\n--- stderr:\n%s"

#endif
