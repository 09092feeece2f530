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

/* Who closed a connection of Python's sqlite3 (closes.py): the recorder tells the Connection's close method
 * from its deallocator, so an explicit close whose line does not say "close" (a bound method called later,
 * getattr, contextlib's ExitStack, atexit, a subclass) is no finalizer close, and a dropped connection is
 * one also where no source can be read (a module that is only a .pyc). */
static const char *closes_python(int minor)
{
    const char *py = python(minor);
    if (!py)
        cr_skip_test("no Python 3.%d on this machine", minor);
    return py;
}

static void explicit_closes_on(int minor)
{
    const char *py = closes_python(minor);
    clk_test_run r;
    clk_test_connleak(ARGS("--fail-on", "finalizer"), ARGS(py, PY_CLOSES, "explicit"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 8);
    clk_assert_summary(&r, "closes", 8);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "closed_by_finalizer", 0);
    clk_assert_status(&r, 0); /* --fail-on finalizer: none there, none fails */
    clk_test_run_free(&r);
}

Test(python, explicit_closes_are_no_finalizer_closes_3_10, TIMEOUT) { explicit_closes_on(10); }
Test(python, explicit_closes_are_no_finalizer_closes_3_11, TIMEOUT) { explicit_closes_on(11); }
Test(python, explicit_closes_are_no_finalizer_closes_3_12, TIMEOUT) { explicit_closes_on(12); }
Test(python, explicit_closes_are_no_finalizer_closes_3_13, TIMEOUT) { explicit_closes_on(13); }

static void finalized_closes_on(int minor)
{
    const char *py = closes_python(minor);
    /* pycmod: compiled by this interpreter, its .py removed */
    char *dir = clk_test_mkdtemp(), *src = clk_test_path(dir, "pycmod.py"), *pyc = clk_test_path(dir, "pycmod.pyc");
    const char *text = "import gc, sqlite3\n\n\ndef open_and_drop():\n    c = sqlite3.connect(':memory:')\n"
                       "    del c\n    gc.collect()\n";
    cr_assert_eq(clk_test_write_file(src, text, strlen(text)), 0);
    clk_test_proc p;
    clk_test_exec(ARGS(py, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
                       src, pyc),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 0, "py_compile: %s", p.err);
    clk_test_proc_free(&p);
    cr_assert_eq(unlink(src), 0);
    clk_test_run r;
    clk_test_connleak(ARGS("--fail-on", "finalizer"), ARGS(py, PY_CLOSES, "finalized", dir), NULL, &r);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 6);
    clk_assert_summary(&r, "closes", 6);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "closed_by_finalizer", 6);
    clk_assert_status(&r, 23); /* --fail-on finalizer */
    cr_assert(clk_test_contains(r.proc.err, "0 suppressed, 6 closed by the garbage collector;"),
              "the SUMMARY line counts them" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *list = json_object_get(r.report, "closed_by_finalizer");
    cr_assert_eq(json_array_size(list), 6, "one entry each" CLK_CTX_FMT, CLK_CTX(&r));
    const char *openers[] = {"open_dropped", "open_deleted", "open_cycle", "open_function_end", "open_and_drop",
                             "open_global"};
    for (size_t k = 0; k < 6; k++) {
        int found = 0;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) found |= py_frame(json_object_get(e, "opened_at"), openers[k]) != NULL;
        cr_assert(found, "%s's connection was closed by the garbage collector" CLK_CTX_FMT, openers[k], CLK_CTX(&r));
    }
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(python, finalizer_closes_3_10, TIMEOUT) { finalized_closes_on(10); }
Test(python, finalizer_closes_3_11, TIMEOUT) { finalized_closes_on(11); }
Test(python, finalizer_closes_3_12, TIMEOUT) { finalized_closes_on(12); }
Test(python, finalizer_closes_3_13, TIMEOUT) { finalized_closes_on(13); }

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

/* ---- one opener, one finding: what CPython's specialization changes stays out of merging and fingerprints ----
 * 3.11+ rewrites a hot line's bytecode as it runs, so the interpreter's C frames under one Python line change from
 * call to call (_PyObject_MakeTpCall, then PyObject_Vectorcall or cfunction_vectorcall_*). A finding with Python
 * frames is merged and fingerprinted on those and the C frames above the interpreter's (the extension's own). */

/* Runs leaky.py MODE under 3.<minor>: the fingerprint of its one leak entry, which stands for `count`. */
static char *one_entry(int minor, const char *mode, long long count)
{
    clk_test_run r;
    run_leaky(&r, minor, NULL, mode, NULL);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", count);
    json_t *leaks = json_object_get(r.report, "leaks");
    cr_assert_eq(json_array_size(leaks), 1, "3.%d %s: one entry for one opener" CLK_CTX_FMT, minor, mode, CLK_CTX(&r));
    json_t *leak = json_array_get(leaks, 0);
    cr_assert_eq(clk_test_int(leak, "count"), count, "3.%d %s: its count" CLK_CTX_FMT, minor, mode, CLK_CTX(&r));
    cr_assert_not_null(py_frame(json_object_get(leak, "opened_at"), "open_cache"), "open_cache" CLK_CTX_FMT,
                       CLK_CTX(&r));
    char *fp = strdup(clk_test_str(leak, "fingerprint"));
    clk_test_run_free(&r);
    return fp;
}

/* 50 opens from one line of a loop: one entry of 50, and the same fingerprint in a second run. */
static void loop_on(int minor)
{
    char *first = one_entry(minor, "loop", 50), *second = one_entry(minor, "loop", 50);
    cr_assert_str_eq(first, second, "3.%d: the fingerprint is stable across runs", minor);
    free(first);
    free(second);
}

Test(python, one_line_in_a_loop_is_one_finding_3_11, TIMEOUT) { loop_on(11); }
Test(python, one_line_in_a_loop_is_one_finding_3_12, TIMEOUT) { loop_on(12); }
Test(python, one_line_in_a_loop_is_one_finding_3_13, TIMEOUT) { loop_on(13); }

/* The same on 50 threads started from one line (thread_created_at too), and in 50 asyncio tasks. */
Test(python, threads_from_a_loop_are_one_finding, TIMEOUT)
{
    free(one_entry(11, "loop_threads", 50));
    free(one_entry(12, "loop_threads", 50));
}

Test(python, tasks_from_a_loop_are_one_finding, TIMEOUT)
{
    free(one_entry(11, "loop_tasks", 50));
    free(one_entry(13, "loop_tasks", 50));
}

/* The rule lines of a --gen-suppressions text (not its comments), each malloc'd; returns how many. */
static int rules_of(const char *text, char **rules, int cap)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[0] != '#' && n < cap)
            rules[n++] = strndup(p, len);
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* --gen-suppressions on a Python program: the loop's rule names its Python function (never an interpreter frame),
 * another function's leak gets its own, and each rule alone suppresses exactly its finding. */
static void gen_on(int minor)
{
    const char *py = python(minor);
    if (!py)
        cr_skip_test("no Python 3.%d on this machine", minor);
    char *dir = clk_test_mkdtemp();
    char *path = clk_test_path(dir, "generated.supp");
    char opt[4200];
    snprintf(opt, sizeof opt, "--gen-suppressions=%s", path);
    clk_test_run r;
    clk_test_connleak(ARGS(opt), ARGS(py, PY_LEAKY, "loop_other"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 51);
    clk_test_run_free(&r);
    char *text = clk_test_read_file(path, NULL);
    cr_assert_not_null(text, "no %s", path);
    char *rules[8];
    int n = rules_of(text, rules, 8);
    cr_assert_eq(n, 2, "3.%d: two rules:\n%s", minor, text);
    cr_assert(clk_test_contains(text, "\nleak:^open_cache$\n") && clk_test_contains(text, "\nleak:^open_other$\n"),
              "3.%d: the rules name the Python functions:\n%s", minor, text);
    const long long want[] = {50, 1};
    for (int i = 0; i < n; i++) {
        char name[32], line[1024];
        snprintf(name, sizeof name, "one%d.supp", i);
        snprintf(line, sizeof line, "%s\n", rules[i]);
        char *one = clk_test_path(dir, name);
        cr_assert_eq(clk_test_write_file(one, line, strlen(line)), 0, "write %s", one);
        clk_test_connleak(ARGS("--suppressions", one), ARGS(py, PY_LEAKY, "loop_other"), NULL, &r);
        clk_assert_report(&r);
        long long mine = strstr(rules[i], "open_cache") ? want[0] : want[1];
        clk_assert_summary(&r, "suppressed", mine);
        clk_assert_summary(&r, "leaks", 51 - mine);
        free(one);
        free(rules[i]);
        clk_test_run_free(&r);
    }
    clk_test_rmtree(dir);
}

Test(python, gen_suppressions_names_the_python_function_3_11, TIMEOUT) { gen_on(11); }
Test(python, gen_suppressions_names_the_python_function_3_12, TIMEOUT) { gen_on(12); }
Test(python, gen_suppressions_names_the_python_function_3_13, TIMEOUT) { gen_on(13); }

/* Frames for the JSON reports below. */
#define PYF(fn, file, line) "{\"function\": \"" fn "\", \"file\": \"" file "\", \"line\": " #line ", \"module\": null, " \
                            "\"offset\": null, \"language\": \"python\"}"
#define CF(fn, module) "{\"function\": \"" fn "\", \"file\": null, \"line\": null, \"module\": \"" module "\", " \
                       "\"offset\": \"0x10\", \"language\": \"c\"}"
#define EXT CF("pysqlite_connection_init_impl", "/usr/lib/python3.12/lib-dynload/_sqlite3.cpython-312-x86_64-linux-gnu.so")
#define LIBPY(fn) CF(fn, "/usr/lib/libpython3.12.so.1.0")
#define LEAK(frames) "{\"backend\": \"sqlite\", \"target\": \":memory:\", \"test\": null, \"pids\": [7], \"count\": 1, " \
                     "\"fingerprint\": \"00000000000000000000000000000000\", \"opened_at\": [" frames "]}"
#define REPORT(leaks) "{\"version\": 1, \"command\": [], \"summary\": {}, \"leaks\": [" leaks "], " \
                      "\"left_field_closes\": [], \"suppressed\": [], \"notes\": []}"
/* The same two Python frames under the interpreter's C frames of two specializations of the call. */
#define LOOP_FRAMES(module_line) PYF("open_it", "/src/app/loop.py", 3) ", " PYF("<module>", "/src/app/loop.py", module_line)
#define SPECIALIZED_A EXT ", " LIBPY("type_call") ", " LIBPY("_PyObject_MakeTpCall") ", " LIBPY("_PyEval_EvalFrameDefault")
#define SPECIALIZED_B EXT ", " LIBPY("type_call") ", " LIBPY("_PyObject_MakeTpCall") ", " \
                      LIBPY("cfunction_vectorcall_FASTCALL_KEYWORDS") ", " LIBPY("PyObject_Vectorcall") ", " \
                      LIBPY("_PyEval_EvalFrameDefault")

/* `connleak report` of a JSON report written to dir/in.json, with extra options; its JSON report is parsed into
 * *out (the caller json_decref's it); returns the exit status. */
static int report_of(const char *dir, const char *json, const char *const *opts, json_t **out)
{
    char *in = clk_test_path(dir, "in.json"), *res = clk_test_path(dir, "out.json");
    cr_assert_eq(clk_test_write_file(in, json, strlen(json)), 0, "write %s", in);
    const char *argv[16] = {clk_test_cli(), "report", "--quiet", "--json", res};
    int n = 5;
    for (int i = 0; opts && opts[i]; i++)
        argv[n++] = opts[i];
    argv[n++] = in;
    argv[n] = NULL;
    clk_test_proc p;
    clk_test_exec(argv, NULL, NULL, 0, &p);
    json_error_t e;
    *out = json_load_file(res, 0, &e);
    cr_assert_not_null(*out, "report: %d %s", p.status, p.err);
    int status = p.status;
    clk_test_proc_free(&p);
    free(in);
    free(res);
    return status;
}

/* Merged from JSON too (CI shards): the specializations of one line are one entry; another line stays another. */
Test(python, report_merges_what_specialization_splits, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    json_t *rep;
    report_of(dir, REPORT(LEAK(LOOP_FRAMES(5) ", " SPECIALIZED_A) ", " LEAK(LOOP_FRAMES(5) ", " SPECIALIZED_B) ", "
                          LEAK(LOOP_FRAMES(9) ", " SPECIALIZED_A)), NULL, &rep);
    json_t *leaks = json_object_get(rep, "leaks");
    cr_assert_eq(json_array_size(leaks), 2, "line 5 twice, line 9 once: %s", clk_test_dump(rep));
    cr_assert_eq(clk_test_int(json_array_get(leaks, 0), "count"), 2, "%s", clk_test_dump(rep));
    json_decref(rep);
    clk_test_rmtree(dir);
}

/* Rules from JSON: two findings that only interpreter frames would tell apart share their Python function's rule
 * (written once), and a leak through the standard library gets the user's function, not the library's. */
Test(python, gen_suppressions_skips_the_interpreter_and_the_library, TIMEOUT)
{
    const char *json = REPORT(
        LEAK(LOOP_FRAMES(5) ", " SPECIALIZED_A) ", " LEAK(LOOP_FRAMES(9) ", " SPECIALIZED_B) ", "
        LEAK(PYF("_Database.__init__", "/usr/lib/python3.13/dbm/sqlite3.py", 80) ", "
             PYF("open", "/usr/lib/python3.13/dbm/sqlite3.py", 140) ", "
             PYF("open", "/usr/lib/python3.13/dbm/__init__.py", 95) ", "
             PYF("open_store", "/src/app/store.py", 4) ", " PYF("<module>", "/src/app/store.py", 10) ", " SPECIALIZED_A));
    char *dir = clk_test_mkdtemp();
    char *path = clk_test_path(dir, "generated.supp");
    char opt[4200];
    snprintf(opt, sizeof opt, "--gen-suppressions=%s", path);
    json_t *rep;
    report_of(dir, json, ARGS(opt), &rep);
    json_decref(rep);
    char *text = clk_test_read_file(path, NULL);
    cr_assert_not_null(text, "no %s", path);
    char *rules[8];
    int n = rules_of(text, rules, 8);
    cr_assert_eq(n, 2, "two rules, each once:\n%s", text);
    cr_assert(clk_test_contains(text, "\nleak:^open_it$\n"), "open_it's rule:\n%s", text);
    cr_assert(clk_test_contains(text, "\nleak:^open_store$\n"), "the user's function, not dbm's:\n%s", text);
    cr_assert(clk_test_contains(text, "opened at open_it <- <module>;"), "Python frames describe it:\n%s", text);
    /* fed back: every finding suppressed; open_it's rule alone takes its two */
    report_of(dir, json, ARGS("--suppressions", path), &rep);
    cr_assert_eq(clk_test_summary(rep, "suppressed"), 3, "%s", clk_test_dump(rep));
    json_decref(rep);
    char *one = clk_test_path(dir, "one.supp");
    cr_assert_eq(clk_test_write_file(one, "leak:^open_it$\n", 15), 0, "write");
    report_of(dir, json, ARGS("--suppressions", one), &rep);
    cr_assert_eq(clk_test_summary(rep, "suppressed"), 2, "%s", clk_test_dump(rep));
    cr_assert_eq(clk_test_summary(rep, "leaks"), 1, "%s", clk_test_dump(rep));
    json_decref(rep);
    for (int i = 0; i < n; i++)
        free(rules[i]);
    clk_test_rmtree(dir);
}
