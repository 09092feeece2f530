/* process_test.c — the detector across processes: fork (inherited connections), exec, system(), and ends without exit handlers. */
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* ---- fork ---- */

Test(process, fork_child_leak_is_the_childs_inherited_is_not, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("fork-child-leak", clk_test_path(dir, "shared.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    long long parent = clk_test_stdout_int(r.proc.out, "parent=");
    cr_assert(child > 0 && parent > 0, "fixture output: %s", r.proc.out);
    cr_assert(clk_test_contains(r.proc.out, "child status=exit 0"), "child failed: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 2);
    clk_assert_summary(&r, "connects", 2);  /* the parent's and the child's own; inheriting is no connect */
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "shared.db", "child_open_forgotten");
    cr_assert_not_null(leak, "the child's leak is missing" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, child), "leak should be the child's (%lld)" CLK_CTX_FMT, child, CLK_CTX(&r));
    cr_assert(!clk_test_pids_contain(leak, parent), "leak is not the parent's" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_null(clk_test_find_leak(r.report, NULL, NULL, "parent_open_inherited"),
                   "the inherited connection was reported as a leak" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(process, child_closing_inherited_connection_is_no_finding, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("fork-child-closes-inherited", clk_test_path(dir, "s.db")), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "child status=exit 0"), "child failed: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 2);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(process, child_closing_inherited_does_not_close_the_parents, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process",
                              ARGS("fork-child-closes-inherited-parent-leaks", clk_test_path(dir, "s.db")), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    long long parent = clk_test_stdout_int(r.proc.out, "parent=");
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", "s.db", "parent_open_inherited");
    cr_assert_not_null(leak, "the parent's connection is still open in the parent" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, parent), "the leak is the parent's (%lld)" CLK_CTX_FMT, parent, CLK_CTX(&r));
    cr_assert(!clk_test_pids_contain(leak, child), "not the child's" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- exec and system() ---- */

Test(process, exec_child_leak, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("exec-child"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    cr_assert_gt(child, 0, "fixture output: %s", r.proc.out);
    cr_assert_geq(clk_test_summary(r.report, "processes"), 2, "processes" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", ":memory:", "leak_with_open");
    cr_assert_not_null(leak, "the exec'd program's leak is missing" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, child), "pid %lld" CLK_CTX_FMT, child, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(process, system_child_leak, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("system-child"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "system status=0"), "fixture output: %s", r.proc.out);
    long long grandchild = clk_test_stdout_int(r.proc.out, "pid=");
    cr_assert_geq(clk_test_summary(r.report, "processes"), 2, "processes" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", ":memory:", "leak_with_open");
    cr_assert_not_null(leak, "the leak of the program system() ran is missing" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, grandchild), "pid %lld" CLK_CTX_FMT, grandchild, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- children that end without exit handlers; the parent ends normally ---- */

/* images: journals the run has (an exec'd image journals on its own) */
static void check_child_end_images(const char *how, const char *status_line, int images)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("fork-end", how), &r);
    cr_assert(clk_test_contains(r.proc.out, status_line), "the child should end with \"%s\": %s", status_line,
              r.proc.out);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    clk_assert_summary(&r, "processes", images);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "child_open_then_end");
    cr_assert_not_null(leak, "the child's open connection is missing" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, child), "pid %lld" CLK_CTX_FMT, child, CLK_CTX(&r));
    clk_test_run_free(&r);
}

static void check_child_end(const char *how, const char *status_line)
{
    check_child_end_images(how, status_line, 2);
}

Test(process, child_exit, TIMEOUT) { check_child_end("exit", "child status=exit 0"); }
Test(process, child__exit, TIMEOUT) { check_child_end("_exit", "child status=exit 0"); }
Test(process, child_abort, TIMEOUT) { check_child_end("abort", "child status=signal 6"); }
Test(process, child_sigkill, TIMEOUT) { check_child_end("sigkill", "child status=signal 9"); }
Test(process, child_segv, TIMEOUT) { check_child_end("segv", "child status=signal 11"); }
Test(process, child_stack_overflow, TIMEOUT) { check_child_end("overflow", "child status=signal 11"); }
/* the child replaces its image with the connection open: the old image's leak */
Test(process, child_exec_with_a_connection_open, TIMEOUT)
{
    check_child_end_images("exec", "child status=exit 0", 3);
}

/* ---- the command itself ends without exit handlers: its status, its leak ---- */

static void check_self_end_images(const char *how, int want_status, int images)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("end", how), &r);
    clk_assert_status(&r, want_status);
    clk_assert_report(&r);
    long long pid = clk_test_stdout_int(r.proc.out, "pid=");
    clk_assert_summary(&r, "processes", images);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", ":memory:", "open_then_end");
    cr_assert_not_null(leak, "the open connection is missing" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, pid), "pid %lld" CLK_CTX_FMT, pid, CLK_CTX(&r));
    clk_test_run_free(&r);
}

static void check_self_end(const char *how, int want_status)
{
    check_self_end_images(how, want_status, 1);
}

Test(process, self__exit, TIMEOUT) { check_self_end("_exit", 23); }
Test(process, self_abort, TIMEOUT) { check_self_end("abort", 128 + 6); }
Test(process, self_sigkill, TIMEOUT) { check_self_end("sigkill", 128 + 9); }
Test(process, self_segv, TIMEOUT) { check_self_end("segv", 128 + 11); }
Test(process, self_stack_overflow, TIMEOUT) { check_self_end("overflow", 128 + 11); }
/* exec'ing /bin/true (status 0) with the connection open: the old image leaked it */
Test(process, self_exec_with_a_connection_open, TIMEOUT) { check_self_end_images("exec", 23, 2); }

/* ---- a journal that cannot grow: events are counted as lost, the host lives on ---- */

Test(process, a_journal_that_cannot_grow_loses_events_not_the_program, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("fsize-limit", "20000"), &r);
    cr_assert(clk_test_contains(r.proc.out, "fsize done"), "the program did not finish: %s" CLK_CTX_FMT,
              r.proc.out, CLK_CTX(&r));
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "processes", 1);
    cr_assert(clk_test_contains(r.json_text, "lost") && clk_test_contains(r.json_text, "journal full"),
              "no note of the lost events" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", NULL, "open_and_keep"),
                       "the leak recorded before the journal filled" CLK_CTX_FMT, CLK_CTX(&r));
    /* the first MiB holds some 16,000 events of the 40,001 */
    long long connects = clk_test_summary(r.report, "connects");
    cr_assert(connects > 1000 && connects < 20001, "connects %lld" CLK_CTX_FMT, connects, CLK_CTX(&r));
    clk_test_run_free(&r);
}


Test(process, a_process_still_running_at_the_report_is_noted, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_process", ARGS("orphan"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    long long orphan = clk_test_stdout_int(r.proc.out, "orphan=");
    cr_assert_gt(orphan, 0, "fixture output: %s", r.proc.out);
    char want[64];
    snprintf(want, sizeof want, "process %lld (", orphan);
    json_t *notes = json_object_get(r.report, "notes");
    int said = 0;
    for (size_t i = 0; i < json_array_size(notes); i++) {
        const char *n = json_string_value(json_array_get(notes, i));
        said |= n && strstr(n, want) && strstr(n, "still running when the report was made");
    }
    cr_assert(said, "no note that %lld was still running" CLK_CTX_FMT, orphan, CLK_CTX(&r));
    clk_test_run_free(&r);
}
