/* dlsym_test.c — the preloaded dlsym: a wrapped function looked up on its library's own handle is the wrapper (SQLite and libpq in no global scope), everything else dlsym and dlerror answer is what they answer without the detector, a second copy of SQLite keeps its functions, and another preloaded interposer's dlsym(RTLD_NEXT) chain still works in either order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* The fixture run without the detector (the suite's own environment never preloads it). */
static void run_plain(const char *const *argv, clk_test_proc *p)
{
    static const char *const env[] = {"LD_PRELOAD", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", NULL};
    clk_test_exec(argv, env, NULL, 0, p);
}

Test(dlsym, every_wrapped_name_on_its_handle_is_the_wrapper, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("names"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    static const char *const names[] = {"sqlite3_open", "sqlite3_open16", "sqlite3_open_v2", "sqlite3_close",
                                        "sqlite3_close_v2", "PQconnectdb", "PQconnectStart", "PQconnectdbParams",
                                        "PQconnectStartParams", "PQsetdbLogin", "PQfinish"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "%s from %s's handle: libconnleak-preload.so\n", names[i],
                 names[i][0] == 's' ? "libsqlite3" : "libpq");
        cr_assert(clk_test_contains(r.proc.out, line), "want \"%s\" in:\n%s", line, r.proc.out);
    }
    cr_assert(clk_test_contains(r.proc.out, "sqlite3_libversion from libsqlite3's handle: libsqlite3.so.0\n"),
              "an unwrapped function stays SQLite's:\n%s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "PQstatus from libpq's handle: libpq.so.5\n"),
              "an unwrapped function stays libpq's:\n%s", r.proc.out);
    clk_test_run_free(&r);
}

/* SQLite loaded RTLD_LOCAL by a program not linked with it: the real function
 * the wrapper calls is found through the library's handle, not RTLD_NEXT. */
Test(dlsym, sqlite_open_through_the_handle_is_tracked, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("sqlite", clk_test_path(dir, "h.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "one connection left open"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "h.db", NULL);
    cr_assert_not_null(leak, "no sqlite leak of h.db" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "open_via_handle",
                     "frames start at the caller of the dlsym'd function" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* A refused connection: no server needed. */
Test(dlsym, pg_connect_through_the_handle_is_tracked, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("pg"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "one connection left open"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, NULL);
    cr_assert_not_null(leak, "no postgres leak" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "pg_start_via_handle",
                     "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* Failing lookups still fail with their message, successful ones leave no
 * error behind, RTLD_DEFAULT/RTLD_NEXT messages name the caller: the output is
 * the same byte for byte with and without the detector. */
Test(dlsym, dlsym_and_dlerror_answer_as_without_the_detector, TIMEOUT)
{
    clk_test_proc plain;
    run_plain(ARGS(clk_test_fixture("fx_dlsym"), "errors"), &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "errors: all ok"), "plain run: %s", plain.out);

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("errors"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "missing symbol on a handle: ok") &&
                  clk_test_contains(r.proc.out, "undefined symbol: no_such_symbol"),
              "dlsym(handle, \"no_such_symbol\") is NULL with a message:\n%s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "errors: all ok"), "under connleak:\n%s", r.proc.out);
    cr_assert_str_eq(r.proc.out, plain.out, "the same answers with and without the detector");
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* RTLD_DEFAULT and RTLD_NEXT from a plugin loaded RTLD_LOCAL resolve in the
 * plugin's own scope: the preloaded dlsym must reach glibc's with the
 * plugin's return address, or SQLite (only in that scope) is not found. */
Test(dlsym, rtld_default_and_next_keep_the_callers_scope, TIMEOUT)
{
    char *plugin = clk_test_fixture("fx_plugin.so");
    clk_test_proc plain;
    run_plain(ARGS(clk_test_fixture("fx_dlsym"), "scopes", plugin), &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "plugin RTLD_DEFAULT sqlite3_libversion_number: libsqlite3.so.0"),
              "plain run: %s", plain.out);

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("scopes", plugin), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_str_eq(r.proc.out, plain.out, "the same answers with and without the detector");
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* A second SQLite in a namespace of its own (dlmopen): its functions are not
 * the ones the wrappers call, so dlsym on its handle gives its own, untracked. */
Test(dlsym, another_copy_keeps_its_own_functions, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("other-copy"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "other copy done"), "fixture: %s\n%s", r.proc.out, r.proc.err);
    cr_assert(clk_test_contains(r.proc.out, "copy's sqlite3_open_v2 differs: 1"), "fixture: %s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "copy's sqlite3_open_v2 is the copy's own: 1"), "fixture: %s",
              r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    clk_assert_summary(&r, "leaks", 0);
    clk_test_run_free(&r);
}

/* ---- another preloaded interposer beside the detector ---- */

static void check_chain(clk_test_run *r, const char *order)
{
    clk_assert_status(r, 23);
    clk_assert_report(r);
    const char *out = r->proc.out;
    cr_assert(clk_test_contains(out, "getenv answered: 1"), "%s: %s\n%s", order, out, r->proc.err);
    cr_assert(clk_test_contains(out, "libversion answered: 1"), "%s: %s", order, out);
    cr_assert(clk_test_contains(out, "open rc=0"), "%s: %s", order, out);
    cr_assert(clk_test_contains(out, "connection works: 1"), "%s: %s", order, out);
    /* each call went through the interposer once and reached the real function once */
    cr_assert(clk_test_contains(out, "interposer saw getenv=1 libversion=1 open=1"), "%s: %s", order, out);
    clk_assert_summary(r, "connects", 1);
    clk_assert_summary(r, "leaks", 1);
    cr_assert_not_null(clk_test_find_leak(r->report, "sqlite", NULL, "chain_open_leaked"),
                       "%s: the leak names chain_open_leaked" CLK_CTX_FMT, order, CLK_CTX(r));
}

static void run_chain(const char *preload, clk_test_run *r)
{
    char *env_preload = malloc(strlen(preload) + 16);
    sprintf(env_preload, "LD_PRELOAD=%s", preload);
    /* env(1) runs under the detector and starts the fixture with exactly this LD_PRELOAD */
    clk_test_connleak(NULL,
                      ARGS("env", "FX_INTERPOSE_PROBE=probe-value", env_preload, clk_test_fixture("fx_chain")),
                      NULL, r);
    free(env_preload);
}

Test(dlsym, rtld_next_chain_interposer_first, TIMEOUT)
{
    char *interposer = clk_test_fixture("fx_interpose.so");
    char both[8192];
    /* the fixture is right without the detector */
    clk_test_proc plain;
    snprintf(both, sizeof both, "LD_PRELOAD=%s", interposer);
    clk_test_exec(ARGS(clk_test_fixture("fx_chain")), ARGS(both, "FX_INTERPOSE_PROBE=probe-value", "CONNLEAK_OPTIONS"),
                  NULL, 0, &plain);
    cr_assert_eq(plain.status, 0, "interposer alone: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "interposer saw getenv=1 libversion=1 open=1"), "interposer alone: %s",
              plain.out);
    clk_test_proc_free(&plain);

    snprintf(both, sizeof both, "%s:%s", interposer, clk_test_preload());
    clk_test_run r;
    run_chain(both, &r);
    check_chain(&r, "interposer:connleak");
    clk_test_run_free(&r);
}

Test(dlsym, rtld_next_chain_detector_first, TIMEOUT)
{
    char both[8192];
    snprintf(both, sizeof both, "%s:%s", clk_test_preload(), clk_test_fixture("fx_interpose.so"));
    clk_test_run r;
    run_chain(both, &r);
    check_chain(&r, "connleak:interposer");
    clk_test_run_free(&r);
}

/* A library preloaded after the detector is initialized before it: its
 * constructor's dlsym(handle) runs before the detector's constructor (and is
 * the preloaded dlsym's first use), and its open is still tracked. */
Test(dlsym, lookup_before_the_detectors_constructor, TIMEOUT)
{
    char pre[8192];
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s:%s", clk_test_preload(), clk_test_fixture("fx_ctor.so"));
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("env", pre, clk_test_fixture("fx_dlsym"), "ctor"), NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "constructor: found=1 rc=0 dlerror-clear=1"), "fixture: %s\n%s",
              r.proc.out, r.proc.err);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    cr_assert_not_null(leak, "the constructor's open is tracked" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "ctor_open_via_handle",
                     "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* A program probing whether SQLite or libpq is loaded gets NULL as it would
 * without the detector, not the preloaded library's exported wrapper. */
Test(dlsym, probing_for_an_absent_library_finds_nothing, TIMEOUT)
{
    clk_test_proc plain;
    run_plain(ARGS(clk_test_fixture("fx_dlsym"), "absent"), &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "RTLD_DEFAULT sqlite3_open_v2: NULL, error set"), "%s", plain.out);
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlsym", ARGS("absent"), &r);
    clk_assert_status(&r, 0);
    cr_assert_str_eq(r.proc.out, plain.out, "the same answers with and without the detector");
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}
