/* python_test.c — Python frames in stacks: the user's .py function, file and line, on each CPython 3.10-3.13 the machine has (Debian's and pyenv's), and in a program that embeds Python. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 180

/* An interpreter of 3.<minor>: Debian's /usr/bin/python3.<minor>, else pyenv's; NULL when none. */
static const char *python(int minor)
{
    static char found[16][4096];
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "/usr/bin/python3.%d", minor);
    if (access(pattern, X_OK) == 0) {
        snprintf(found[minor], sizeof found[minor], "%s", pattern);
        return found[minor];
    }
    const char *roots[] = {getenv("PYENV_ROOT"), getenv("HOME"), "/root"};
    for (size_t i = 0; i < 3; i++) {
        if (!roots[i])
            continue;
        snprintf(pattern, sizeof pattern, "%s%s/versions/3.%d.*/bin/python3.%d", roots[i], i ? "/.pyenv" : "",
                 minor, minor);
        glob_t g;
        if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc) {
            snprintf(found[minor], sizeof found[minor], "%s", g.gl_pathv[g.gl_pathc - 1]);
            globfree(&g);
            return found[minor];
        }
        globfree(&g);
    }
    return NULL;
}

/* The frame of `frames` naming `function` as a Python frame, NULL when none. */
static json_t *py_frame(const json_t *frames, const char *function)
{
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f) {
        if (!strcmp(clk_test_str(f, "function"), function) && !strcmp(clk_test_str(f, "language"), "python"))
            return f;
    }
    return NULL;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

/* Runs leaky.py MODE [ARG] under 3.<minor>; skips when that version is not here. */
static void run_leaky(clk_test_run *r, int minor, const char *const *opts, const char *mode, const char *arg)
{
    const char *py = python(minor);
    if (!py)
        cr_skip_test("no Python 3.%d on this machine (Debian's /usr/bin/python3.%d or pyenv's)", minor, minor);
    const char *cmd[] = {py, PY_LEAKY, mode, arg, NULL};
    clk_test_connleak(opts, cmd, NULL, r);
    clk_assert_report(r);
}

/* The leak's opener stack names open_cache at leaky.py:3, a Python frame. */
static json_t *expect_open_cache(clk_test_run *r)
{
    json_t *leak = clk_test_find_leak(r->report, "sqlite", NULL, "open_cache");
    cr_assert_not_null(leak, "no leak naming open_cache" CLK_CTX_FMT, CLK_CTX(r));
    json_t *f = py_frame(json_object_get(leak, "opened_at"), "open_cache");
    cr_assert_not_null(f, "open_cache is not a Python frame" CLK_CTX_FMT, CLK_CTX(r));
    cr_assert_eq(clk_test_int(f, "line"), 3, "open_cache's line" CLK_CTX_FMT, CLK_CTX(r));
    cr_assert(ends_with(clk_test_str(f, "file"), "/leaky.py"), "file %s", clk_test_str(f, "file"));
    return leak;
}

static void leak_on(int minor)
{
    clk_test_run r;
    run_leaky(&r, minor, NULL, "leak", NULL);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = expect_open_cache(&r);
    /* innermost first: the user's function leads, then its caller, then the interpreter's C frames */
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "open_cache",
                     "Python frames lead" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_not_null(py_frame(json_object_get(leak, "opened_at"), "main"), "main() is there" CLK_CTX_FMT,
                       CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(python, frames_3_10, TIMEOUT) { leak_on(10); }
Test(python, frames_3_11, TIMEOUT) { leak_on(11); }
Test(python, frames_3_12, TIMEOUT) { leak_on(12); }
Test(python, frames_3_13, TIMEOUT) { leak_on(13); }

/* More Python frames than --stack-depth: the innermost ones are kept, Python frames only. */
Test(python, deep_recursion_keeps_the_innermost, TIMEOUT)
{
    clk_test_run r;
    run_leaky(&r, 11, ARGS("--stack-depth", "8"), "deep", "30");
    clk_assert_status(&r, 23);
    json_t *leak = expect_open_cache(&r);
    json_t *frames = json_object_get(leak, "opened_at");
    cr_assert_eq(json_array_size(frames), 8, "--stack-depth 8" CLK_CTX_FMT, CLK_CTX(&r));
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f) {
        cr_assert_str_eq(clk_test_str(f, "language"), "python", "frame %zu" CLK_CTX_FMT, i, CLK_CTX(&r));
        if (i > 0)
            cr_assert_str_eq(clk_test_str(f, "function"), "recurse", "frame %zu" CLK_CTX_FMT, i, CLK_CTX(&r));
    }
    clk_test_run_free(&r);
}

static void named_with(int minor, const char *mode, const char *caller)
{
    clk_test_run r;
    run_leaky(&r, minor, NULL, mode, NULL);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = expect_open_cache(&r);
    cr_assert_not_null(py_frame(json_object_get(leak, "opened_at"), caller), "%s: %s is in the stack" CLK_CTX_FMT,
                       mode, caller, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(python, generator_frames, TIMEOUT) { named_with(11, "generator", "gen_open"); }
Test(python, coroutine_frames, TIMEOUT) { named_with(11, "coroutine", "coro_open"); }
Test(python, coroutine_frames_3_13, TIMEOUT) { named_with(13, "coroutine", "coro_open"); }
Test(python, thread_frames, TIMEOUT) { named_with(11, "thread", "open_cache"); }
Test(python, thread_frames_3_12, TIMEOUT) { named_with(12, "thread", "open_cache"); }

Test(python, fork_child_frames, TIMEOUT)
{
    clk_test_run r;
    run_leaky(&r, 11, NULL, "fork", NULL);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = expect_open_cache(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    cr_assert(clk_test_pids_contain(leak, child), "the child's leak (%lld)" CLK_CTX_FMT, child, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* A version whose layout we do not know: the C stack, and a note saying so. */
Test(python, unsupported_version_is_noted, TIMEOUT)
{
    clk_test_run r;
    run_leaky(&r, 9, NULL, "leak", NULL);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    cr_assert(clk_test_contains(r.json_text, "Python 3.9: its frames are not read"), "note" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* A C program that embeds Python (Py_Initialize): the script's frames too. */
Test(python, embedded_interpreter, TIMEOUT)
{
    if (!FX_EMBED[0])
        cr_skip_test("python3-embed (Debian's python3-dev) was not found at configure time");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(FX_EMBED), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "open_embedded");
    cr_assert_not_null(leak, "no leak naming open_embedded" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *f = py_frame(json_object_get(leak, "opened_at"), "open_embedded");
    cr_assert_not_null(f, "a Python frame" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(f, "line"), 3, "line" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_str(f, "file"), "<string>", "file" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* summary.peak_open: the most connections one process had open at once (issue 14). */
Test(python, peak_open, TIMEOUT)
{
    const char *py = python(11) ? python(11) : python(12);
    if (!py)
        cr_skip_test("no Python 3.11 or 3.12 on this machine");
    clk_test_run r;
    const char *cmd[] = {py, "-c",
                         "import sqlite3\n"
                         "a = [sqlite3.connect(':memory:') for _ in range(5)]\n"
                         "[c.close() for c in a]\n"
                         "b = [sqlite3.connect(':memory:') for _ in range(3)]\n"
                         "[c.close() for c in b]\n",
                         NULL};
    clk_test_connleak(NULL, cmd, NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "connects", 8);
    clk_assert_summary(&r, "peak_open", 5);
    json_t *by = json_object_get(json_object_get(r.report, "summary"), "peak_open_by_backend");
    cr_assert_eq(clk_test_int(by, "sqlite"), 5, "by backend" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(by, "postgres"), 0, "by backend" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* aiosqlite opens on a thread it starts inside `await aiosqlite.connect()`: the thread's creation
 * stack leads to the user's coroutine (issue 12). */
Test(python, aiosqlite_names_the_awaiting_coroutine, TIMEOUT)
{
    clk_test_proc probe;
    clk_test_exec(ARGS("/usr/bin/python3", "-c", "import aiosqlite"), NULL, NULL, 30, &probe);
    int have = probe.status == 0;
    clk_test_proc_free(&probe);
    if (!have)
        cr_skip_test("Debian's python3-aiosqlite is not installed");
    clk_test_run r;
    const char *cmd[] = {"/usr/bin/python3", "-c",
                         "import asyncio, os, aiosqlite\n"
                         "async def open_store():\n"
                         "    return await aiosqlite.connect(':memory:')\n"
                         "async def main():\n"
                         "    db = await open_store()\n"
                         "    await db.execute('select 1')\n"
                         "    os._exit(0)\n"
                         "asyncio.run(main())\n",
                         NULL};
    clk_test_connleak(NULL, cmd, NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    json_t *f = py_frame(json_object_get(leak, "thread_created_at"), "open_store");
    if (!f)
        f = py_frame(json_object_get(leak, "opened_at"), "open_store");
    cr_assert_not_null(f, "open_store in thread_created_at or opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(f, "line"), 3, "open_store's line" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* A connection opened in a task of its own that the user's coroutine awaits (as asyncpg's connect
 * runs): the awaiting coroutines follow the task's own frames. */
static void awaited_on(int minor, const char *mode, const char *awaiter, int line)
{
    const char *py = python(minor);
    if (!py)
        cr_skip_test("no Python 3.%d on this machine", minor);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(py, PY_TASKS, mode), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "inner");
    cr_assert_not_null(leak, "no leak naming inner" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *f = py_frame(json_object_get(leak, "opened_at"), awaiter);
    cr_assert_not_null(f, "%s awaits the task" CLK_CTX_FMT, awaiter, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(f, "line"), line, "%s's line" CLK_CTX_FMT, awaiter, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(python, awaiting_task_3_11, TIMEOUT) { awaited_on(11, "wait_for", "open_in_task", 6); }
Test(python, awaiting_task_3_12, TIMEOUT) { awaited_on(12, "wait_for", "open_in_task", 6); }
Test(python, awaiting_task_3_13, TIMEOUT) { awaited_on(13, "wait_for", "open_in_task", 6); }
Test(python, awaiting_task_direct, TIMEOUT) { awaited_on(11, "direct", "open_awaiting_task", 12); }

/* asyncpg (Debian's python3-asyncpg) leaking a connection opened in async def open_report_conn(). */
Test(python, asyncpg_names_the_opener, TIMEOUT)
{
    clk_test_proc probe;
    clk_test_exec(ARGS("/usr/bin/python3", "-c", "import asyncpg"), NULL, NULL, 30, &probe);
    int have = probe.status == 0;
    clk_test_proc_free(&probe);
    if (!have)
        cr_skip_test("Debian's python3-asyncpg is not installed");
    clk_test_run r;
    const char *cmd[] = {"/usr/bin/python3", "-c",
                         "import asyncio, os, asyncpg\n"
                         "async def open_report_conn():\n"
                         "    return await asyncpg.connect()\n"
                         "async def main():\n"
                         "    keep = await open_report_conn()\n"
                         "    await (await asyncpg.connect()).close()\n"
                         "    os._exit(0)\n"
                         "asyncio.run(main())\n",
                         NULL};
    clk_test_connleak(ARGS("--postgres"), cmd, NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, NULL);
    cr_assert_str_eq(clk_test_str(leak, "via"), "wire", "via" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *f = py_frame(json_object_get(leak, "opened_at"), "open_report_conn");
    cr_assert_not_null(f, "open_report_conn in the stack" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(f, "line"), 3, "its line" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* Closed by the garbage collector (issue 12): reported in closed_by_finalizer with the opener's
 * stack, counted in the summary, not a leak, exit 0; an explicit close() is not there. */
static void finalizer_on(int minor)
{
    const char *py = python(minor);
    if (!py)
        cr_skip_test("no Python 3.%d on this machine", minor);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(py, PY_FINALIZER), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "connects", 4);
    clk_assert_summary(&r, "closes", 4);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "closed_by_finalizer", 3);
    json_t *list = json_object_get(r.report, "closed_by_finalizer");
    cr_assert_eq(json_array_size(list), 3, "three entries" CLK_CTX_FMT, CLK_CTX(&r));
    const char *openers[] = {"open_dropped", "open_cycle", "open_global"};
    for (size_t k = 0; k < 3; k++) {
        int found = 0;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
            found |= py_frame(json_object_get(e, "opened_at"), openers[k]) != NULL;
            cr_assert_null(py_frame(json_object_get(e, "opened_at"), "explicit"), "explicit close() is no finalizer's"
                           CLK_CTX_FMT, CLK_CTX(&r));
        }
        cr_assert(found, "%s's connection" CLK_CTX_FMT, openers[k], CLK_CTX(&r));
    }
    clk_test_run_free(&r);
}

Test(python, closed_by_finalizer_3_11, TIMEOUT) { finalizer_on(11); }
Test(python, closed_by_finalizer_3_13, TIMEOUT) { finalizer_on(13); }

/* --held-longer-than (issue 14): exactly the connection held 1.2 s, with its opener and how long,
 * closed; the exit status unchanged. */
Test(python, held_longer_than, TIMEOUT)
{
    const char *py = python(11) ? python(11) : python(12);
    if (!py)
        cr_skip_test("no Python 3.11 or 3.12 on this machine");
    clk_test_run r;
    clk_test_connleak(ARGS("--held-longer-than", "500ms"), ARGS(py, PY_HELD), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    json_t *list = json_object_get(r.report, "long_held");
    cr_assert_eq(json_array_size(list), 1, "one long-held connection" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *h = json_array_get(list, 0);
    cr_assert_not_null(py_frame(json_object_get(h, "opened_at"), "hold_long"), "its opener" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_geq(clk_test_int(h, "held_ms"), 1100, "held_ms" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(json_is_true(json_object_get(h, "closed")), "closed" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "long_held", 1);
    clk_test_run_free(&r);
}

/* One still open when its process ends is held until then (and is a leak too). */
Test(python, held_until_the_process_ends, TIMEOUT)
{
    const char *py = python(11) ? python(11) : python(12);
    if (!py)
        cr_skip_test("no Python 3.11 or 3.12 on this machine");
    clk_test_run r;
    clk_test_connleak(ARGS("--held-longer-than", "0.5s"), ARGS(py, PY_HELD, "open"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    json_t *list = json_object_get(r.report, "long_held");
    cr_assert_eq(json_array_size(list), 2, "two long-held connections" CLK_CTX_FMT, CLK_CTX(&r));
    int open_found = 0;
    size_t i;
    json_t *h;
    json_array_foreach(list, i, h) {
        if (py_frame(json_object_get(h, "opened_at"), "kept_open")) {
            open_found = 1;
            cr_assert(json_is_false(json_object_get(h, "closed")), "still open" CLK_CTX_FMT, CLK_CTX(&r));
            cr_assert_geq(clk_test_int(h, "held_ms"), 700, "held until the end" CLK_CTX_FMT, CLK_CTX(&r));
        }
    }
    cr_assert(open_found, "kept_open's connection" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* Without the option nothing is timed and nothing listed; a bad duration is one line, exit 2. */
Test(python, held_longer_than_off_and_bad, TIMEOUT)
{
    const char *py = python(11) ? python(11) : python(12);
    if (!py)
        cr_skip_test("no Python 3.11 or 3.12 on this machine");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(py, PY_HELD), NULL, &r);
    clk_assert_report(&r);
    cr_assert_eq(json_array_size(json_object_get(r.report, "long_held")), 0, "none listed" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--held-longer-than", "soon", "--", py, PY_HELD), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 2, "exit 2: %s", p.err);
    cr_assert(clk_test_contains(p.err, "--held-longer-than wants a duration"), "%s", p.err);
    cr_assert_eq(clk_test_count_lines(p.err), 1, "one line: %s", p.err);
    clk_test_proc_free(&p);
}

/* Reports merged by `connleak report` (CI shards) keep long_held and closed_by_finalizer; a threshold
 * given to report keeps only the connections over it. */
Test(python, merged_reports_keep_long_held_and_finalized, TIMEOUT)
{
    const char *py = python(11) ? python(11) : python(12);
    if (!py)
        cr_skip_test("no Python 3.11 or 3.12 on this machine");
    clk_test_run a, b;
    clk_test_connleak(ARGS("--held-longer-than", "500ms"), ARGS(py, PY_HELD), NULL, &a);
    clk_test_connleak(NULL, ARGS(py, PY_FINALIZER), NULL, &b);
    clk_assert_report(&a);
    clk_assert_report(&b);
    char *dir = clk_test_mkdtemp(), *out = clk_test_path(dir, "merged.json");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "-q", "--json", out, a.json_path, b.json_path), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 0, "report: %s", p.err);
    clk_test_proc_free(&p);
    char *text = clk_test_read_file(out, NULL);
    json_t *m = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_not_null(m, "merged JSON");
    cr_assert_eq(clk_test_summary(m, "long_held"), 1, "long_held kept: %s", text);
    cr_assert_eq(clk_test_summary(m, "closed_by_finalizer"), 3, "finalized kept: %s", text);
    json_t *h = json_array_get(json_object_get(m, "long_held"), 0);
    cr_assert_eq(json_array_size(json_object_get(h, "pids")), 1, "pids: %s", text);
    json_decref(m);
    free(text);
    clk_test_exec(ARGS(clk_test_cli(), "report", "-q", "--held-longer-than", "5s", "--json", out, a.json_path), NULL, NULL,
                  0, &p);
    clk_test_proc_free(&p);
    text = clk_test_read_file(out, NULL);
    m = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_eq(clk_test_summary(m, "long_held"), 0, "none over 5 s: %s", text);
    json_decref(m);
    free(text);
    clk_test_rmtree(dir);
    clk_test_run_free(&a);
    clk_test_run_free(&b);
}
