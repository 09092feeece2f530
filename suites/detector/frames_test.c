/* frames_test.c — stacks that name the user's code: the stack that created a thread, pytest's test names, demangled C++ names, assembly functions' lines (issue 12). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* The leak whose opened_at names `opener`; fails the test when there is none. */
static json_t *leak_opened_by(const clk_test_run *r, const char *opener)
{
    json_t *leak = clk_test_find_leak(r->report, "sqlite", NULL, opener);
    cr_assert_not_null(leak, "no leak opened by %s" CLK_CTX_FMT, opener, CLK_CTX(r));
    return leak;
}

/* ---- thread-creation stacks ---- */

Test(threads, a_threads_leak_names_the_code_that_created_the_thread, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_threads", ARGS("leak"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 3);

    json_t *main_leak = leak_opened_by(&r, "open_on_main");
    json_t *none = json_object_get(main_leak, "thread_created_at");
    cr_assert(!none || json_is_null(none), "the main thread's leak has no creator" CLK_CTX_FMT, CLK_CTX(&r));

    json_t *created = json_object_get(leak_opened_by(&r, "worker_body"), "thread_created_at");
    cr_assert(json_is_array(created), "the worker's leak has thread_created_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(created), "spawn_worker", "its first frame is the creator" CLK_CTX_FMT,
                     CLK_CTX(&r));
    cr_assert(clk_test_frames_name(created, "main"), "and the creator's callers" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(!clk_test_frames_name(created, "pthread_create"), "no wrapper frame" CLK_CTX_FMT, CLK_CTX(&r));

    /* a thread created by a thread: the innermost creator */
    json_t *nested = json_object_get(leak_opened_by(&r, "nested_body"), "thread_created_at");
    cr_assert_str_eq(clk_test_first_function(nested), "spawn_nested", "nested creator" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_frames_name(nested, "worker_body"), "created on the worker" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(!clk_test_frames_name(nested, "spawn_worker"), "the worker's own creator is not chained" CLK_CTX_FMT,
              CLK_CTX(&r));

    /* the text report says it under the opener's stack */
    const char *text = strstr(r.proc.err, "thread created at:\n    #0 spawn_worker ");
    cr_assert_not_null(text, "text report names the creator:\n%s", clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(threads, exit_cancellation_and_many_threads_work_as_without_the_detector, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_threads", ARGS("lifecycle"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "done\n"), "the fixture ran to its end" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 2);
    /* after hundreds of threads and failed creations, a new thread still carries its creator */
    json_t *created = json_object_get(leak_opened_by(&r, "worker_body"), "thread_created_at");
    cr_assert_str_eq(clk_test_first_function(created), "lifecycle", "creator after many threads" CLK_CTX_FMT,
                     CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(threads, a_merged_json_report_keeps_the_creator, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_threads", ARGS("leak"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    char *merged = clk_test_path(r.dir, "merged.json");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--format", "json", "--output", merged, r.json_path),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    json_error_t err;
    json_t *again = json_load_file(merged, 0, &err);
    cr_assert_not_null(again, "merged report unreadable: %s", err.text);
    json_t *leak = clk_test_find_leak(again, "sqlite", NULL, "worker_body");
    cr_assert_not_null(leak, "worker's leak in the merged report: %s", clk_test_dump(again));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "thread_created_at")), "spawn_worker",
                     "merged creator: %s", clk_test_dump(again));
    json_decref(again);
    clk_test_proc_free(&p);
    free(merged);
    clk_test_run_free(&r);
}

