/* bind_test.c — objects that bind past the preload (issue 13): plugins loaded RTLD_DEEPBIND (lazy or immediate binding, a read-only GOT, calls through the GOT) are tracked with exact counts and their own stacks, a RUNPATH-relative or $ORIGIN name still loads, dlopen answers as without the detector, and PHP's extensions (loaded so) are seen. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120
/* refused at once: no server needed, and a refused connection still must be finished */
#define REFUSED "host=127.0.0.1 port=1 connect_timeout=5"

/* meson test puts the fixtures' directory in LD_LIBRARY_PATH: a bare name would be found
 * there from any caller. Unset, only fx_deep's RUNPATH ($ORIGIN) finds the plugins. */
static const char *const no_library_path[] = {"LD_LIBRARY_PATH", NULL};

static void run_plain(const char *const *argv, clk_test_proc *p)
{
    static const char *const env[] = {"LD_PRELOAD", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "LD_LIBRARY_PATH", NULL};
    clk_test_exec(argv, env, NULL, 0, p);
}

/* fx_deep loads `plugin` with `flags` and opens through it: one connection left open, one closed. */
static void check_plugin(const char *flags, const char *plugin, const char *arg, const char *backend,
                         const char *opener)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(clk_test_fixture("fx_deep"), flags, plugin, arg), no_library_path, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "libraries-loaded-before-plugin=0"), "fixture: %s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "plugin results"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, backend, NULL, NULL);
    cr_assert_not_null(leak, "no %s leak" CLK_CTX_FMT, backend, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), opener,
                     "the stack starts in the plugin" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(bind, deepbind_sqlite_plugin_immediate_binding, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_plugin("dn", clk_test_fixture("fx_plugin.so"), clk_test_path(dir, "a.db"), "sqlite",
                 "plugin_open_forgotten");
    clk_test_rmtree(dir);
}

/* PHP's flags: lazy binding (JUMP_SLOTs still in the plugin's PLT), RTLD_GLOBAL. */
Test(bind, deepbind_sqlite_plugin_lazy_global, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_plugin("dg", clk_test_fixture("fx_plugin.so"), clk_test_path(dir, "b.db"), "sqlite",
                 "plugin_open_forgotten");
    clk_test_rmtree(dir);
}

/* Linked -z now: the GOT is read-only (RELRO) once loaded. */
Test(bind, deepbind_sqlite_plugin_read_only_got, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_plugin("d", clk_test_fixture("fx_plugin_now.so"), clk_test_path(dir, "c.db"), "sqlite",
                 "plugin_open_forgotten");
    clk_test_rmtree(dir);
}

/* -fno-plt: PQconnectdb and PQfinish called through GLOB_DAT entries; libpq's own
 * call of PQconnectStart stays inside libpq (one connect each). */
Test(bind, deepbind_libpq_plugin, TIMEOUT)
{
    check_plugin("dn", clk_test_fixture("fx_pgplugin.so"), REFUSED, "postgres", "pg_plugin_forgotten");
}

Test(bind, deepbind_libpq_plugin_lazy_global, TIMEOUT)
{
    check_plugin("dg", clk_test_fixture("fx_pgplugin.so"), REFUSED, "postgres", "pg_plugin_forgotten");
}

/* A bare name is found along the caller's RUNPATH ($ORIGIN: the fixtures' directory), and
 * $ORIGIN in a name is the caller's: glibc must still see fx_deep as the caller. */
static void check_caller_paths(const char *name, const char *flags)
{
    char *dir = clk_test_mkdtemp();
    char *db = clk_test_path(dir, "r.db");
    clk_test_proc plain;
    run_plain(ARGS(clk_test_fixture("fx_deep"), flags, name, db), &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    clk_test_proc_free(&plain);
    check_plugin(flags, name, db, "sqlite", "plugin_open_forgotten");
    clk_test_rmtree(dir);
}

Test(bind, runpath_relative_name_still_loads, TIMEOUT)
{
    check_caller_paths("fx_plugin.so", "n");
}

Test(bind, runpath_relative_name_deepbind, TIMEOUT)
{
    check_caller_paths("fx_plugin_now.so", "dn");
}

Test(bind, origin_in_the_name_is_the_callers, TIMEOUT)
{
    check_caller_paths("$ORIGIN/fx_plugin.so", "d");
}

/* Return values, dlerror() messages (a failed dlopen's survives, a successful one leaves
 * none) and errno: the same line for line with and without the detector. */
Test(bind, dlopen_answers_as_without_the_detector, TIMEOUT)
{
    char *plugin = clk_test_fixture("fx_plugin.so");
    clk_test_proc plain;
    run_plain(ARGS(clk_test_fixture("fx_deep"), "errors", plugin), &plain);
    cr_assert_eq(plain.status, 0, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "fx_no_such_plugin.so"), "plain run: %s", plain.out);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(clk_test_fixture("fx_deep"), "errors", plugin), no_library_path, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_str_eq(r.proc.out, plain.out, "the same answers with and without the detector");
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* Threads loading the same plugins at once, unloading and loading them again, and a
 * fork child's own deep-bound load: every connection counted once, none closed twice. */
Test(bind, threads_reloads_and_a_fork_child, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL,
                      ARGS(clk_test_fixture("fx_deepthreads"), clk_test_fixture("fx_plugin.so"),
                           clk_test_fixture("fx_plugin_now.so"), clk_test_fixture("fx_pgplugin.so"), REFUSED),
                      no_library_path, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "threads done"), "fixture: %s", r.proc.out);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    cr_assert_gt(child, 0, "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 81);
    clk_assert_summary(&r, "closes", 80);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "processes", 2);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, "pg_plugin_forgotten");
    cr_assert_not_null(leak, "no postgres leak opened in the plugin" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, child), "the child's leak" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

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

/* A deep-bound plugin whose calls bind to its own copy while the wrapper would call the
 * global libsqlite3: left as it is (the program unchanged), and said in a note naming it. */
Test(bind, what_cannot_be_redirected_is_noted, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(clk_test_fixture("fx_deep"), "sdn", clk_test_fixture("fx_owncopy.so"), ":memory:"),
                      no_library_path, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "plugin results 0 0"), "the plugin's own copy still answers: %s",
              r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(has_note(&r, "fx_owncopy.so binds sqlite3_open_v2 to", "RTLD_DEEPBIND"),
              "no note names the plugin" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(has_note(&r, "fx_owncopy.so binds sqlite3_close to", "not seen"), "no note for sqlite3_close" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- PHP (Debian's php-cli, php-sqlite3, php-pgsql) ---- */

static int php_has(const char *ext)
{
    char code[160];
    snprintf(code, sizeof code, "exit(extension_loaded('%s') && function_exists('posix_kill') ? 0 : 1);", ext);
    clk_test_proc p;
    int st = clk_test_exec(ARGS("php", "-n", "-r", "exit(0);"), NULL, NULL, 0, &p);
    clk_test_proc_free(&p);
    if (st != 0)
        return 0;
    st = clk_test_exec(ARGS("php", "-r", code), NULL, NULL, 0, &p);
    clk_test_proc_free(&p);
    return st == 0;
}

/* The script kills itself (SIGKILL: 137) once one connection is closed and one is not:
 * PHP's shutdown would close it otherwise. */
static void php_leak(const char *mode, const char *ext, const char *backend, const char *module)
{
    if (!php_has(ext))
        cr_skip_test("no php with the %s and posix extensions (Debian's php-cli, php-sqlite3, php-pgsql)", ext);
    if (!strcmp(backend, "postgres") && !getenv("PGHOST"))
        cr_skip_test("no PostgreSQL server: run the suite under `connleak postgres --`");
    char *script = clk_test_path(clk_test_source_root(), "suites/fixtures/fx_deep.php");
    clk_test_proc plain;
    run_plain(ARGS("php", script, mode), &plain);
    cr_assert_eq(plain.status, 128 + SIGKILL, "plain run: %s\n%s", plain.out, plain.err);
    cr_assert(clk_test_contains(plain.out, "queried"), "plain run: %s", plain.out);
    clk_test_proc_free(&plain);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("php", script, mode), NULL, &r);
    clk_assert_status(&r, 128 + SIGKILL);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "queried"), "under the detector: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, backend, NULL, NULL);
    cr_assert_not_null(leak, "no %s leak" CLK_CTX_FMT, backend, CLK_CTX(&r));
    /* the extension's own frame opened it (its functions are static: the module says it) */
    json_t *frames = json_object_get(leak, "opened_at");
    int found = 0;
    for (size_t i = 0; i < json_array_size(frames) && !found; i++)
        found = clk_test_contains(clk_test_str(json_array_get(frames, i), "module"), module);
    cr_assert(found, "no frame in %s" CLK_CTX_FMT, module, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(bind, php_sqlite3, TIMEOUT) { php_leak("sqlite3", "sqlite3", "sqlite", "/sqlite3.so"); }
Test(bind, php_pdo_sqlite, TIMEOUT) { php_leak("pdo_sqlite", "pdo_sqlite", "sqlite", "/pdo_sqlite.so"); }
Test(bind, php_pgsql, TIMEOUT) { php_leak("pgsql", "pgsql", "postgres", "/pgsql.so"); }
Test(bind, php_pdo_pgsql, TIMEOUT) { php_leak("pdo_pgsql", "pdo_pgsql", "postgres", "/pdo_pgsql.so"); }
