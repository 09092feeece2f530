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

/* Runs a fixture that leaks under connleak (exit 23, a JSON report); returns its first leak's opened_at. */
static json_t *run_leaker(const char *fixture, const char *const *args, clk_test_run *r)
{
    clk_test_connleak_fixture(NULL, fixture, args, r);
    clk_assert_status(r, 23);
    clk_assert_report(r);
    return json_object_get(json_array_get(json_object_get(r->report, "leaks"), 0), "opened_at");
}

/* The report of run r rendered as JUnit, SARIF and GitHub annotations: their texts, malloc'd. */
struct ci_texts {
    char *junit, *sarif, *github;
};

static struct ci_texts ci_formats(const clk_test_run *r)
{
    char *path[3] = {clk_test_path(r->dir, "r.xml"), clk_test_path(r->dir, "r.sarif"),
                     clk_test_path(r->dir, "r.github")};
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--format", "junit", "--output", path[0], "--format",
                       "sarif", "--output", path[1], "--format", "github", "--output", path[2], r->json_path),
                  NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    struct ci_texts t = {clk_test_read_file(path[0], NULL), clk_test_read_file(path[1], NULL),
                         clk_test_read_file(path[2], NULL)};
    for (int i = 0; i < 3; i++)
        free(path[i]);
    return t;
}

static void ci_texts_free(struct ci_texts *t)
{
    free(t->junit);
    free(t->sarif);
    free(t->github);
}

/* ---- thread-creation stacks ---- */

Test(threads, a_threads_leak_names_the_code_that_created_the_thread, TIMEOUT)
{
    clk_test_run r;
    run_leaker("fx_threads", ARGS("leak"), &r);
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
    run_leaker("fx_threads", ARGS("lifecycle"), &r);
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
    run_leaker("fx_threads", ARGS("leak"), &r);
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

/* ---- pytest: the test of a finding is PYTEST_CURRENT_TEST's ---- */

#define PYTHON "/usr/bin/python3"

/* Skips the test, saying why, when Debian's python3-pytest is not installed. */
static void need_pytest(void)
{
    clk_test_proc p;
    clk_test_exec(ARGS(PYTHON, "-m", "pytest", "--version"), NULL, NULL, 0, &p);
    int ok = p.status == 0;
    clk_test_proc_free(&p);
    if (!ok)
        cr_skip_test("no pytest: %s -m pytest --version failed (Debian's python3-pytest is not installed)", PYTHON);
}

/* Writes `files` (name, text pairs, NULL-terminated) into a new directory and runs pytest -v on it
 * under connleak. Returns the directory. */
static char *run_pytest(const char *const *files, clk_test_run *r)
{
    char *dir = clk_test_mkdtemp();
    for (int i = 0; files[i]; i += 2) {
        char *path = clk_test_path(dir, files[i]);
        cr_assert_eq(clk_test_write_file(path, files[i + 1], strlen(files[i + 1])), 0, "cannot write %s", path);
        free(path);
    }
    /* run from there, as users do: pytest -v then prints the node ids it puts in PYTEST_CURRENT_TEST
     * (each test runs in a worker process of its own: the directory change stays in it) */
    cr_assert_eq(chdir(dir), 0, "cannot enter %s", dir);
    /* nothing of the caller's pytest set-up (options, plug-ins, a test of its own) reaches this one */
    clk_test_connleak(NULL, ARGS(PYTHON, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir=.", "."),
                      ARGS("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST", "PYTHONDONTWRITEBYTECODE=1",
                           "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1"),
                      r);
    return dir;
}

/* The node id pytest -v printed for the test named `name` ("test_file.py::test_leaky PASSED"). */
static char *pytest_node_id(const char *out, const char *name)
{
    for (const char *line = out; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *sep = memmem(line, n, "::", 2), *sp = memchr(line, ' ', n);
        if (!sep || !sp || sep > sp)
            continue;
        size_t id = (size_t)(sp - line), nn = strlen(name);
        if (id > nn + 2 && !memcmp(sp - nn, name, nn) && sp[-(long)nn - 1] == ':')
            return strndup(line, id);
    }
    return NULL;
}

/* A clean test, a leaking one (a reference never given back: the interpreter's shutdown does not
 * close it either), another clean one. */
static const char test_file_py[] =
    "import ctypes\n"
    "import sqlite3\n"
    "\n"
    "KEPT = []\n"
    "\n"
    "\n"
    "def test_clean_first():\n"
    "    sqlite3.connect(':memory:').close()\n"
    "\n"
    "\n"
    "def test_leaky():\n"
    "    conn = sqlite3.connect(':memory:')\n"
    "    KEPT.append(conn)\n"
    "    ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))\n"
    "\n"
    "\n"
    "def test_clean_last():\n"
    "    sqlite3.connect(':memory:').close()\n";

Test(pytest, the_leaking_test_is_named_as_pytest_names_it, TIMEOUT)
{
    need_pytest();
    clk_test_run r;
    char *dir = run_pytest(ARGS("test_file.py", test_file_py), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "leaks", 1);
    char *id = pytest_node_id(r.proc.out, "test_leaky");
    cr_assert_not_null(id, "pytest printed no test_leaky:\n%s", clk_test_excerpt(r.proc.out));
    cr_assert_str_eq(id, "test_file.py::test_leaky", "pytest's own name for it:\n%s", clk_test_excerpt(r.proc.out));
    json_t *leak = json_array_get(json_object_get(r.report, "leaks"), 0);
    cr_assert_str_eq(clk_test_str(leak, "test"), id, "the leak's test" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, ", test test_file.py::test_leaky)"), "text report names it:\n%s",
              clk_test_excerpt(r.proc.err));

    /* the CI formats name the same test */
    struct ci_texts ci = ci_formats(&r);
    cr_assert(clk_test_contains(ci.junit, "name=\"test_file.py::test_leaky\""), "JUnit testcase:\n%s",
              clk_test_excerpt(ci.junit));
    json_error_t err;
    json_t *s = json_loads(ci.sarif ? ci.sarif : "", 0, &err);
    json_t *result = json_array_get(json_object_get(json_array_get(json_object_get(s, "runs"), 0), "results"), 0);
    cr_assert_str_eq(clk_test_str(json_object_get(result, "properties"), "test"), "test_file.py::test_leaky",
                     "SARIF result's test: %s", clk_test_dump(s));
    json_decref(s);
    cr_assert(clk_test_contains(ci.github, "test test_file.py::test_leaky"), "GitHub annotation:\n%s",
              clk_test_excerpt(ci.github));
    ci_texts_free(&ci);
    free(id);
    clk_test_rmtree(dir);
    clk_test_run_free(&r);
}

/* A fixture's opens keep pytest's phase; a program a test runs is that test's. */
static const char test_phases_py[] =
    "import ctypes\n"
    "import os\n"
    "import sqlite3\n"
    "import subprocess\n"
    "\n"
    "import pytest\n"
    "\n"
    "\n"
    "def leak():\n"
    "    conn = sqlite3.connect(':memory:')\n"
    "    ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))\n"
    "\n"
    "\n"
    "@pytest.fixture\n"
    "def leaky_fixture():\n"
    "    leak()\n"
    "    yield\n"
    "    leak()\n"
    "\n"
    "\n"
    "def test_with_fixture(leaky_fixture):\n"
    "    pass\n"
    "\n"
    "\n"
    "def test_runs_a_program():\n"
    "    subprocess.run([os.environ['FX_THREADS'], 'leak'], check=True)\n";

Test(pytest, fixtures_keep_their_phase_and_programs_belong_to_their_test, TIMEOUT)
{
    need_pytest();
    char *fx = clk_test_fixture("fx_threads");
    setenv("FX_THREADS", fx, 1);
    clk_test_run r;
    char *dir = run_pytest(ARGS("test_phases.py", test_phases_py), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 5);
    const char *want[][2] = {
        {"leak", "test_phases.py::test_with_fixture (setup)"},
        {"leak", "test_phases.py::test_with_fixture (teardown)"},
        {"spawn_worker", "test_phases.py::test_runs_a_program"},
    };
    for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
        int found = 0;
        json_t *leaks = json_object_get(r.report, "leaks"), *leak;
        size_t i;
        json_array_foreach(leaks, i, leak)
        {
            json_t *frames = json_object_get(leak, "opened_at");
            json_t *created = json_object_get(leak, "thread_created_at");
            if ((clk_test_frames_name(frames, want[w][0]) || clk_test_frames_name(created, want[w][0])) &&
                !strcmp(clk_test_str(leak, "test"), want[w][1]))
                found = 1;
        }
        cr_assert(found, "no leak by %s in test %s" CLK_CTX_FMT, want[w][0], want[w][1], CLK_CTX(&r));
    }
    clk_test_rmtree(dir);
    clk_test_run_free(&r);
}

/* ---- names: C++ demangled, assembly functions' files and lines ---- */

/* The fixture's path, or a skip saying why it was not built. */
static char *built_fixture(const char *name, const char *why)
{
    char *path = clk_test_fixture(name);
    if (!clk_test_exists(path))
        cr_skip_test("%s was not built: %s", name, why);
    return path;
}

/* frames[i].function == function for some i; fails the test otherwise. */
static const json_t *frame_named(const clk_test_run *r, const json_t *frames, const char *function)
{
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f)
    {
        if (!strcmp(clk_test_str(f, "function"), function))
            return f;
    }
    cr_assert_fail("no frame %s" CLK_CTX_FMT, function, CLK_CTX(r));
    return NULL;
}

/* symbolize.c's function index: the innermost inlined function names the frame, with its own line;
 * libc's frames are named from its symbol table (no version suffix) and carry no file or line. */
Test(names, inlined_functions_and_libc_frames, TIMEOUT)
{
    clk_test_run r;
    json_t *frames = run_leaker("fx_inline", NULL, &r);
    cr_assert_str_eq(clk_test_first_function(frames), "open_inlined", "the inlined opener" CLK_CTX_FMT, CLK_CTX(&r));
    const json_t *first = json_array_get(frames, 0);
    cr_assert(clk_test_contains(clk_test_str(first, "file"), "fx_inline.c"), "its file" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(json_integer_value(json_object_get(first, "line")), 10, "the line of the call" CLK_CTX_FMT, CLK_CTX(&r));
    const json_t *start = frame_named(&r, frames, "__libc_start_main");
    cr_assert(json_is_null(json_object_get(start, "file")) || !json_object_get(start, "file"),
              "libc's frame has no file" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(names, cxx_frames_are_demangled_in_every_output, TIMEOUT)
{
    free(built_fixture("fx_cxx", "no C++ compiler"));
    clk_test_run r;
    json_t *frames = run_leaker("fx_cxx", NULL, &r);
    cr_assert_str_eq(clk_test_first_function(frames), "Store::open()", "the opener" CLK_CTX_FMT, CLK_CTX(&r));
    const json_t *f = frame_named(&r, frames, "shop::Cart<int>::checkout(int)");
    cr_assert(clk_test_contains(clk_test_str(f, "file"), "fx_cxx.cpp"), "with its file" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "#0 Store::open() "), "text report:\n%s", clk_test_excerpt(r.proc.err));

    struct ci_texts ci = ci_formats(&r);
    const char *texts[] = {ci.junit, ci.sarif, ci.github};
    for (int i = 0; i < 3; i++)
        cr_assert(clk_test_contains(texts[i], "Store::open()") && !clk_test_contains(texts[i], "_ZN5Store4openEv"),
                  "JUnit, SARIF, GitHub [%d] names Store::open():\n%s", i, clk_test_excerpt(texts[i]));
    ci_texts_free(&ci);
    /* suppressions match the name as shown */
    char *supp = clk_test_path(r.dir, "supp.txt");
    clk_test_proc p;
    const char rule[] = "leak:Store::open()\n";
    cr_assert_eq(clk_test_write_file(supp, rule, sizeof rule - 1), 0);
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--suppressions", supp, r.json_path), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 0, "suppressed by its demangled name: exit %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    free(supp);
    clk_test_run_free(&r);
}

Test(names, cxx_names_from_the_symbol_table_alone_are_demangled, TIMEOUT)
{
    free(built_fixture("fx_cxx_nodebug", "no C++ compiler"));
    clk_test_run r;
    json_t *frames = run_leaker("fx_cxx_nodebug", NULL, &r);
    cr_assert_str_eq(clk_test_first_function(frames), "Store::open()", "the opener" CLK_CTX_FMT, CLK_CTX(&r));
    frame_named(&r, frames, "shop::Cart<int>::checkout(int)");
    clk_test_run_free(&r);
}

/* libdwfl counts an address between two CUs' .debug_aranges entries as the first CU's: an assembly
 * function whose object has none (as Go's beside cgo's) got no file or another CU's lines. */
Test(names, an_assembly_function_without_aranges_gets_its_own_file_and_line, TIMEOUT)
{
    free(built_fixture("fx_asm", "x86-64 with objcopy only"));
    clk_test_run r;
    json_t *frames = run_leaker("fx_asm", NULL, &r);
    const json_t *f = frame_named(&r, frames, "asm_open");
    const char *file = clk_test_str(f, "file");
    size_t n = strlen(file);
    cr_assert(n > 12 && !strcmp(file + n - 12, "/fx_asm_fn.S"), "its own file" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_int(f, "line"), 10, "the call's line" CLK_CTX_FMT, CLK_CTX(&r));
    /* the C frames around it keep theirs */
    cr_assert(clk_test_contains(clk_test_str(frame_named(&r, frames, "main"), "file"), "fx_asm.c"),
              "main's file" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}
