/* sanitizer_test.c — a program built with AddressSanitizer runs under connleak run (issue 13): its leak is reported, ASan's own report and the user's ASAN_OPTIONS stay intact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* "ASAN_OPTIONS=..." from this test's own environment (the asan setup's) without its
 * verify_asan_link_order, which is what connleak run must now set itself; extra appended. */
static char *asan_options(const char *extra)
{
    const char *env = getenv("ASAN_OPTIONS");
    size_t cap = (env ? strlen(env) : 0) + strlen(extra) + 32;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    strcpy(out, "ASAN_OPTIONS=");
    for (const char *p = env ? env : ""; *p;) {
        size_t n = strcspn(p, ":");
        if (n && strncmp(p, "verify_asan_link_order", 22) != 0) {
            strncat(out, p, n);
            strcat(out, ":");
        }
        p += n + (p[n] == ':');
    }
    strcat(out, extra);
    return out;
}

static char *fx_asan(void)
{
    char *path = clk_test_fixture("fx_asan");
    if (!clk_test_exists(path))
        cr_skip_test("fx_asan was not built: the compiler cannot link -fsanitize=address here");
    return path;
}

Test(sanitizer, an_asan_program_runs_and_its_leak_is_reported, .timeout = 120)
{
    char *fx = fx_asan();
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(fx), ARGS(asan_options("detect_leaks=1")), &r);
    cr_assert(!clk_test_contains(r.proc.err, "does not come first"), "ASan refused to start: %s",
              clk_test_excerpt(r.proc.err));
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "asan fixture done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 1);
    clk_assert_leaks_naming(&r, "fx_asan_open_leaky", 1);
    clk_test_run_free(&r);
}

Test(sanitizer, asan_reports_and_options_stay_the_users, .timeout = 120)
{
    char *fx = fx_asan();
    clk_test_run r;
    /* the user's exitcode= is kept beside what connleak adds, and ASan's report comes out whole */
    clk_test_connleak(NULL, ARGS(fx, "overflow"), ARGS(asan_options("exitcode=77:halt_on_error=1")), &r);
    clk_assert_status(&r, 77);
    cr_assert(clk_test_contains(r.proc.err, "ERROR: AddressSanitizer: heap-buffer-overflow"),
              "ASan's own report is missing: %s", clk_test_excerpt(r.proc.err));
    cr_assert(clk_test_contains(r.proc.err, "SUMMARY: AddressSanitizer"), "%s", clk_test_excerpt(r.proc.err));
    clk_assert_report(&r);
    clk_assert_leaks_naming(&r, "fx_asan_open_leaky", 1); /* journaled before ASan stopped the program */
    clk_test_run_free(&r);
    /* a verify_asan_link_order of the user's own stands: ASan then refuses, as it would */
    clk_test_connleak(NULL, ARGS(fx), ARGS(asan_options("verify_asan_link_order=1")), &r);
    cr_assert(r.proc.status != 0 && r.proc.status != 23, "status %d", r.proc.status);
    cr_assert(clk_test_contains(r.proc.err, "does not come first"), "%s", clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}
