/* sqlite_test.c — the detector on SQLite: every opener and closer, failed opens, SQLITE_BUSY, double and unknown closes, threads, RTLD_LOCAL, frames. */
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* ---- clean programs ---- */

static void check_clean(const char *path)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("clean", path), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "clean done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 1);
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 3);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leaks = json_object_get(r.report, "leaks");
    json_t *lfc = json_object_get(r.report, "left_field_closes");
    cr_assert(json_is_array(leaks) && json_array_size(leaks) == 0, "leaks: want []" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(json_is_array(lfc) && json_array_size(lfc) == 0, "left_field_closes: want []" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(sqlite, clean_file_all_openers, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_clean(clk_test_path(dir, "app.db"));
    clk_test_rmtree(dir);
}

Test(sqlite, clean_memory_all_openers, TIMEOUT)
{
    check_clean(":memory:");
}

/* ---- one leak per opener, on a file and on :memory: ---- */

static void check_one_leak(const char *mode, const char *path, const char *opener, const char *target_part)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS(mode, path), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 0);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "double_closes", 0);
    json_t *leaks = json_object_get(r.report, "leaks");
    cr_assert_eq(json_array_size(leaks), 1, "one leak entry expected" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *leak = json_array_get(leaks, 0);
    cr_assert_str_eq(clk_test_str(leak, "backend"), "sqlite", "backend" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(clk_test_str(leak, "target"), target_part),
              "target should contain %s" CLK_CTX_FMT, target_part, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(leak, "count"), 1, "count" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), opener,
                     "opened_at should start at %s" CLK_CTX_FMT, opener, CLK_CTX(&r));
    cr_assert(clk_test_frames_name(json_object_get(leak, "opened_at"), "main"),
              "opened_at should reach main" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(strlen(clk_test_str(leak, "fingerprint")) > 0, "fingerprint" CLK_CTX_FMT, CLK_CTX(&r));
    long long pid = clk_test_stdout_int(r.proc.out, "pid=");
    if (pid > 0)
        cr_assert(clk_test_pids_contain(leak, pid), "pids should hold %lld" CLK_CTX_FMT, pid, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(sqlite, leak_open_file, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_one_leak("leak-open", clk_test_path(dir, "app.db"), "leak_with_open", "app.db");
    clk_test_rmtree(dir);
}

Test(sqlite, leak_open16_file, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_one_leak("leak-open16", clk_test_path(dir, "wide.db"), "leak_with_open16", "wide.db");
    clk_test_rmtree(dir);
}

Test(sqlite, leak_open_v2_file, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    check_one_leak("leak-open-v2", clk_test_path(dir, "v2.db"), "leak_with_open_v2", "v2.db");
    clk_test_rmtree(dir);
}

Test(sqlite, leak_open_memory, TIMEOUT)
{
    check_one_leak("leak-open", ":memory:", "leak_with_open", ":memory:");
}

Test(sqlite, leak_open16_memory, TIMEOUT)
{
    check_one_leak("leak-open16", ":memory:", "leak_with_open16", ":memory:");
}

Test(sqlite, leak_open_v2_memory, TIMEOUT)
{
    check_one_leak("leak-open-v2", ":memory:", "leak_with_open_v2", ":memory:");
}

Test(sqlite, same_stack_twice_is_one_entry_with_count_2, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("loop-leak", clk_test_path(dir, "loop.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "leaks", 2);
    json_t *leaks = json_object_get(r.report, "leaks");
    cr_assert_eq(json_array_size(leaks), 1, "one merged entry expected" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "loop.db", "open_in_loop");
    cr_assert_not_null(leak, "no leak naming open_in_loop" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(leak, "count"), 2, "count" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- a failed open is an open connection ---- */

Test(sqlite, failed_open_v2_not_closed_is_a_leak, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("failed-open-leak", clk_test_path(dir, "missing.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "failed open rc=14"), "the open should fail: %s", r.proc.out);
    cr_assert(!clk_test_exists(clk_test_path(dir, "missing.db")), "the detector created the file");
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "leaks", 1);
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", "missing.db", "open_missing_without_create"),
                       "leak of the failed open expected" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sqlite, failed_open_v2_closed_is_clean, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("failed-open-close", clk_test_path(dir, "missing.db")), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- sqlite3_close returning SQLITE_BUSY leaves the connection open ---- */

Test(sqlite, close_busy_leaves_it_open, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("busy-leak", clk_test_path(dir, "busy.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "busy close rc=5"), "close should return SQLITE_BUSY: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 0);
    clk_assert_summary(&r, "leaks", 1);
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", "busy.db", "open_then_busy"),
                       "leak naming open_then_busy expected" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sqlite, close_busy_then_close_after_finalize_is_clean, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("busy-then-close", clk_test_path(dir, "busy.db")), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "closed after finalize"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sqlite, close_v2_with_unfinalized_statement_is_a_close, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("close-v2-zombie", clk_test_path(dir, "z.db")), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sqlite, close_null_is_no_event, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("close-null"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 0);
    clk_assert_summary(&r, "closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "double_closes", 0);
    cr_assert_eq(json_array_size(json_object_get(r.report, "left_field_closes")), 0,
                 "closing NULL must not be reported" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- double close: three stacks, not passed on, the program goes on ---- */

static void check_double_close(const char *mode)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS(mode, clk_test_path(dir, "dc.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "log-config rc=0"),
              "SQLite's log could not be installed (did the detector initialise SQLite?): %s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "survived double close"), "the program should go on: %s", r.proc.out);
    cr_assert(!clk_test_contains(r.proc.out, "sqlite-log:"),
              "the second close reached SQLite (it must not be passed on):\n%s", r.proc.out);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "double_closes", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "leaks", 0);
    json_t *dc = clk_test_find_left_field(r.report, "double_close", "sqlite", NULL);
    cr_assert_not_null(dc, "no double_close entry" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(dc, "count"), 1, "count" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "closed_at")), "close_second_time",
                     "closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "first_closed_at")), "close_first_time",
                     "first_closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "opened_at")), "open_for_double_close",
                     "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sqlite, double_close, TIMEOUT)
{
    check_double_close("double-close");
}

Test(sqlite, double_close_v2, TIMEOUT)
{
    check_double_close("double-close-v2");
}

/* ---- unknown close: reported and passed on ----
 * The fixture opens through glibc's own dlsym (fetched with dlvsym), which the
 * detector does not see; dlsym on the library's handle it does (below). */

Test(sqlite, unknown_close_reported_and_passed_on, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("unknown-close"), &r);
    clk_assert_report(&r);
    /* SPEC: only leaks and double closes set the failing status. */
    clk_assert_status(&r, 0);
    cr_assert(clk_test_contains(r.proc.out, "unknown close rc=0"),
              "the close should reach SQLite and succeed: %s", r.proc.out);
    cr_assert(!clk_test_contains(r.proc.out, "sqlite-log:"), "SQLite complained: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    clk_assert_summary(&r, "unknown_closes", 1);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "leaks", 0);
    json_t *uc = clk_test_find_left_field(r.report, "unknown_close", "sqlite", NULL);
    cr_assert_not_null(uc, "no unknown_close entry" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(uc, "closed_at")), "close_never_seen",
                     "closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- dlsym on libsqlite3's own handle returns the wrappers: tracked like any open ---- */

Test(sqlite, dlsym_handle_open_is_tracked, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("dlsym-handle", clk_test_path(dir, "dl.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "dlsym-handle: wrapper=1"), "fixture: %s\n%s", r.proc.out, r.proc.err);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "double_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "dl.db", NULL);
    cr_assert_not_null(leak, "no sqlite leak of dl.db" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "open_through_dlsym_handle",
                     "frames start at the caller of the dlsym'd sqlite3_open_v2" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- threads ---- */

Test(sqlite, threads_lose_no_event, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("threads", "8", "2500"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 20000);
    clk_assert_summary(&r, "closes", 20000);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
}

Test(sqlite, threads_one_leak_each, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("threads-leak", "8", "250"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 8 * 251);
    clk_assert_summary(&r, "closes", 8 * 250);
    clk_assert_summary(&r, "leaks", 8);
    cr_assert_eq(clk_test_leak_count(r.report, "sqlite", NULL, "thread_leak_one"), 8,
                 "8 leaks naming thread_leak_one expected" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_leak_count(r.report, NULL, NULL, "thread_open_close"), 0,
                 "closed connections reported" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- SQLite loaded privately (dlopen RTLD_LOCAL), as Python's _sqlite3 ---- */

Test(sqlite, dlopen_rtld_local_plugin_is_tracked, TIMEOUT)
{
    clk_test_run r;
    char *plugin = clk_test_fixture("fx_plugin.so");
    clk_test_connleak_fixture(NULL, "fx_dlopen", ARGS(plugin, ":memory:"), &r);
    cr_assert(clk_test_contains(r.proc.out, "sqlite-loaded-before-plugin=0"),
              "libsqlite3 was already in the global scope, so this is not the RTLD_LOCAL case "
              "(does the preload library link libsqlite3?): %s", r.proc.out);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "plugin_open_forgotten");
    cr_assert_not_null(leak, "leak naming plugin_open_forgotten expected" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(clk_test_str(json_array_get(json_object_get(leak, "opened_at"), 0), "module"),
                                "fx_plugin.so"),
              "the first frame's module should be the plugin" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- the FRAME fields ---- */

Test(sqlite, frames_have_function_file_line_module_offset, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", clk_test_path(dir, "frames.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    cr_assert_not_null(leak, "no leak" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *frames = json_object_get(leak, "opened_at");
    cr_assert(json_is_array(frames) && json_array_size(frames) >= 2, "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_leq(json_array_size(frames), 32, "default stack_depth is 32" CLK_CTX_FMT, CLK_CTX(&r));
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f) {
        static const char *const keys[] = {"function", "file", "line", "module", "offset"};
        for (size_t k = 0; k < 5; k++)
            cr_assert(json_object_get(f, keys[k]) != NULL, "frame %zu lacks \"%s\"" CLK_CTX_FMT, i, keys[k],
                      CLK_CTX(&r));
        json_t *line = json_object_get(f, "line");
        cr_assert(json_is_null(line) || json_is_integer(line), "frame %zu: line type" CLK_CTX_FMT, i, CLK_CTX(&r));
        json_t *off = json_object_get(f, "offset");
        cr_assert(json_is_null(off) || (json_is_string(off) && !strncmp(json_string_value(off), "0x", 2)),
                  "frame %zu: offset should be a 0x string" CLK_CTX_FMT, i, CLK_CTX(&r));
    }
    json_t *top = json_array_get(frames, 0);
    cr_assert_str_eq(clk_test_str(top, "function"), "leak_with_open", "frames start at the caller" CLK_CTX_FMT,
                     CLK_CTX(&r));
    const char *file = clk_test_str(top, "file");
    size_t n = strlen(file);
    cr_assert(n >= 11 && !strcmp(file + n - 11, "fx_sqlite.c"), "file should name fx_sqlite.c: %s" CLK_CTX_FMT,
              file, CLK_CTX(&r));
    cr_assert_gt(clk_test_int(top, "line"), 0, "line" CLK_CTX_FMT, CLK_CTX(&r));
    const char *module = clk_test_str(top, "module");
    n = strlen(module);
    cr_assert(n >= 10 && !strcmp(module + n - 10, "/fx_sqlite"), "module should be the fixture: %s" CLK_CTX_FMT,
              module, CLK_CTX(&r));
    cr_assert(!strncmp(clk_test_str(top, "offset"), "0x", 2), "offset" CLK_CTX_FMT, CLK_CTX(&r));
    /* The next frame is main, a bit further down the same file. */
    json_t *second = json_array_get(frames, 1);
    cr_assert_str_eq(clk_test_str(second, "function"), "main", "second frame" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_gt(clk_test_int(second, "line"), clk_test_int(top, "line"), "main is below the opener in fx_sqlite.c");
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}
