/* gaps_test.c — what the wrappers cannot see is said, not silently reported clean: a statically linked SQLite, stripped or not, and a program with no dynamic loader. */
#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int has_note(clk_test_run *r, const char *a, const char *b)
{
    json_t *notes = json_object_get(r->report, "notes");
    for (size_t i = 0; i < json_array_size(notes); i++) {
        const char *n = json_string_value(json_array_get(notes, i));
        if (n && strstr(n, a) && strstr(n, b))
            return 1;
    }
    return 0;
}

static void check_static_copy(const char *fixture)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, fixture, ARGS("run"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "static done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(has_note(&r, "own copy of SQLite", fixture), "no note names the static SQLite" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "own copy of SQLite"), "the text report says it too: %s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(gaps, static_sqlite_is_named_in_the_report, .timeout = 60)
{
    check_static_copy("fx_static");
}

Test(gaps, static_sqlite_of_a_stripped_program_is_named_by_its_strings, .timeout = 60)
{
    check_static_copy("fx_static_stripped");
}

Test(gaps, a_program_without_a_dynamic_loader_is_said_to_be_unseen, .timeout = 60)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_full_static", ARGS("run"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "static done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 0);
    cr_assert(has_note(&r, "fx_full_static", "statically linked: the detector cannot be preloaded"),
              "no note says the program was not reached" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(gaps, sqlite_in_a_dlmopen_namespace_is_said_to_be_unseen, .timeout = 60)
{
    char *plugin = clk_test_fixture("fx_plugin.so");
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlopen", ARGS("--dlmopen", plugin, ":memory:"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "plugin results 0 0"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(has_note(&r, "libsqlite3", "dlmopen() into link-map namespace"),
              "no note names the copy in the other namespace" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}
