/* passthrough_test.c — the detector never changes what a program does (issue 13): a wrapper calls what the program would have called, a copy of SQLite inside a plugin loaded RTLD_LOCAL included, and tracks it; a call nothing can bind ends as it ends without the detector; opens inside wrapped calls are events of their own; a siglongjmp out of a wrapped call leaves later events tracked; a library unloaded and loaded again elsewhere is followed. */
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

/* fx_embed.so is built where a static libsqlite3 is (Debian's libsqlite3-dev). */
static char *embed_plugin(void)
{
    char *plugin = clk_test_fixture("fx_embed.so");
    if (!clk_test_exists(plugin))
        cr_skip_test("no static libsqlite3 at configure time: fx_embed.so was not built");
    return plugin;
}

/* node's sqlite3 addon: its own SQLite, exported from a plugin loaded
 * RTLD_LOCAL into a program with no libsqlite3. The plugin's calls reach the
 * preloaded wrappers first; they must reach the plugin's copy (it counts the
 * opens it performs), work as without the detector, and be tracked. */
static void check_embedded(const char *const *extra)
{
    char *plugin = embed_plugin();
    char *dir = clk_test_mkdtemp();
    char *db = clk_test_path(dir, "e.db");
    const char *argv[] = {clk_test_fixture("fx_embed_host"), "embed", plugin, db, extra ? extra[0] : NULL, NULL};
    clk_test_proc plain;
    run_plain(argv, &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "plugin results 0 0, its own copy opened 2"), "plain run: %s", plain.out);

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_embed_host", argv + 1, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert_str_eq(r.proc.out, plain.out, "the same output with and without the detector");
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "e.db", NULL);
    cr_assert_not_null(leak, "no sqlite leak of e.db" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "embed_open_forgotten",
                     "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    /* an exported copy is seen: no note says it is not */
    cr_assert(!clk_test_contains(r.json_text, "has its own copy"), "no own-copy note" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(passthrough, a_plugins_own_sqlite_is_called_and_tracked, TIMEOUT)
{
    check_embedded(NULL);
}

/* With a libsqlite3 loaded RTLD_LOCAL beside it (found by its soname), the
 * plugin's calls still go to the copy in the plugin's own scope. */
Test(passthrough, the_callers_own_copy_comes_before_a_loaded_libsqlite3, TIMEOUT)
{
    check_embedded(ARGS("--system"));
}

/* A plugin that needs SQLite and brings none, called where no SQLite is: the
 * dynamic linker ends the program at the call ("symbol lookup error",
 * status 127); so does the wrapper, instead of answering for a library that
 * is not there. */
Test(passthrough, a_call_nothing_can_bind_ends_as_without_the_detector, TIMEOUT)
{
    const char *argv[] = {clk_test_fixture("fx_embed_host"), "unbound", clk_test_fixture("fx_unbound.so"), NULL};
    clk_test_proc plain;
    run_plain(argv, &plain);
    cr_assert_eq(plain.status, 127, "plain run: %d\n%s\n%s", plain.status, plain.out, plain.err);
    char *line = strstr(plain.err, "symbol lookup error");
    cr_assert_not_null(line, "plain run's stderr: %s", plain.err);
    while (line > plain.err && line[-1] != '\n')
        line--;
    char *end = strchr(line, '\n');
    if (end)
        *end = 0;

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_embed_host", argv + 1, &r);
    clk_assert_status(&r, 127);
    cr_assert_str_eq(r.proc.out, plain.out, "the same output with and without the detector");
    cr_assert(clk_test_contains(r.proc.err, line), "want \"%s\" in:\n%s", line, clk_test_excerpt(r.proc.err));
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* libsqlite3 loaded RTLD_LOCAL is in no scope of the program's: probing for
 * it with dlsym(RTLD_DEFAULT) finds nothing, with or without the detector
 * (whose exported wrappers a wrapped name would otherwise find). */
Test(passthrough, a_probe_finds_no_sqlite_outside_the_callers_scope, TIMEOUT)
{
    const char *argv[] = {clk_test_fixture("fx_embed_host"), "probe", NULL};
    clk_test_proc plain;
    run_plain(argv, &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "program RTLD_DEFAULT sqlite3_open_v2: NULL"), "plain run: %s", plain.out);

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_embed_host", argv + 1, &r);
    clk_assert_status(&r, 0);
    cr_assert_str_eq(r.proc.out, plain.out, "the same answers with and without the detector");
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* ---- nesting and non-local exits ---- */

/* fx_nest in `mode`: its line `done`, then exactly these counts, the leaks
 * all opened by `leaker`. */
static void check_nest(const char *mode, const char *done, long long connects, long long closes, long long leaks,
                       const char *leaker)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_nest", ARGS(mode, dir), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, done), "fixture: %s\n%s", r.proc.out, r.proc.err);
    clk_assert_summary(&r, "connects", connects);
    clk_assert_summary(&r, "closes", closes);
    clk_assert_summary(&r, "leaks", leaks);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_leaks_naming(&r, leaker, leaks);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* An auto-extension runs inside each sqlite3_open and opens a side connection
 * of its own: two opens and closes, two side connections left open. */
Test(passthrough, an_open_inside_an_auto_extension_is_its_own_event, TIMEOUT)
{
    check_nest("autoext", "autoext done", 4, 2, 2, "side_open");
}

/* A signal handler that opens a connection, delivered while sqlite3_open runs. */
Test(passthrough, an_open_in_a_signal_handler_during_an_open_is_its_own_event, TIMEOUT)
{
    check_nest("signal", "signal done, handler ran: 1", 2, 1, 1, "open_in_handler");
}

/* An auto-extension siglongjmps out of sqlite3_open (that connection never
 * reaches the program, nor the report); the thread's later opens and closes
 * are tracked. */
Test(passthrough, a_siglongjmp_out_of_an_open_leaves_later_events_tracked, TIMEOUT)
{
    check_nest("jump", "jump done", 2, 1, 1, "open_after_jump_leaked");
}

/* alarm() + siglongjmp out of PQconnectdb to a server that never answers,
 * then libpq and SQLite connections on the same thread: all tracked, with no
 * false leak (one failed connection is finished, one is not). */
Test(passthrough, a_siglongjmp_out_of_pqconnectdb_leaves_later_events_tracked, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_pgjump", (const char *const[]){NULL}, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "connect timed out"), "fixture: %s\n%s", r.proc.out, r.proc.err);
    cr_assert(clk_test_contains(r.proc.out, "pgjump done"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, "pg_open_after_jump");
    cr_assert_not_null(leak, "no postgres leak opened by pg_open_after_jump" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- a library unloaded and loaded again ---- */

/* fx_plugin.so (linked with libsqlite3) loaded, used, dlclose()d, and loaded
 * again with libsqlite3 at another address: the wrappers call the new copy
 * (never the old one's unmapped functions) and its leak is reported. */
static void check_reload(const char *mode)
{
    char *dir = clk_test_mkdtemp();
    const char *argv[] = {clk_test_fixture("fx_reload"), mode, clk_test_fixture("fx_plugin.so"), dir, NULL};
    clk_test_proc plain;
    run_plain(argv, &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "unloaded: 1\nmoved: 1\n"), "the copy did not move: %s", plain.out);

    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_reload", argv + 1, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert_str_eq(r.proc.out, plain.out, "the same output with and without the detector");
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", "b.db", "plugin_open_forgotten"),
                       "no leak of b.db from the reloaded copy" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(passthrough, a_global_library_loaded_again_elsewhere_is_called_and_tracked, TIMEOUT)
{
    check_reload("global");
}

Test(passthrough, a_local_library_loaded_again_elsewhere_is_called_and_tracked, TIMEOUT)
{
    check_reload("local");
}
