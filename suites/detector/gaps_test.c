/* gaps_test.c — what the wrappers cannot see is said, not silently reported clean: a statically linked SQLite. */
#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(gaps, static_sqlite_is_named_in_the_report, .timeout = 60)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_static", ARGS("run"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "static done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    json_t *notes = json_object_get(r.report, "notes");
    int named = 0;
    for (size_t i = 0; i < json_array_size(notes); i++) {
        const char *n = json_string_value(json_array_get(notes, i));
        if (n && strstr(n, "own copy of SQLite") && strstr(n, "fx_static"))
            named = 1;
    }
    cr_assert(named, "no note names the static SQLite" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "own copy of SQLite"), "the text report says it too: %s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}
