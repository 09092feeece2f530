/* gaps_test.c — what the wrappers cannot see is said, not silently reported clean: a statically linked SQLite, stripped or not, a program with no dynamic loader, a Go program; --fail-on unseen makes those notes fail the run. */
#include <limits.h>
#include <stdio.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

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

static void check_static_copy(const char *fixture)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, fixture, ARGS("run"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "static done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(has_note(&r, "own copy of SQLite", fixture), "no note names the static SQLite" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "own copy of SQLite"), "the text report says it too: %s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(gaps, static_sqlite_is_named_in_the_report, .timeout = 60)
{
    check_static_copy("fx_static");
}

Test(gaps, static_sqlite_of_a_stripped_program_is_named_by_its_strings, .timeout = 60)
{
    check_static_copy("fx_static_stripped");
}

Test(gaps, a_program_without_a_dynamic_loader_is_said_to_be_unseen, .timeout = 60)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_full_static", ARGS("run"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "static done"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "processes", 0);
    cr_assert(has_note(&r, "fx_full_static", "statically linked: the detector cannot be preloaded"),
              "no note says the program was not reached" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(gaps, sqlite_in_a_dlmopen_namespace_is_said_to_be_unseen, .timeout = 60)
{
    char *plugin = clk_test_fixture("fx_plugin.so");
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_dlopen", ARGS("--dlmopen", plugin, ":memory:"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "plugin results 0 0"), "fixture did not finish: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(has_note(&r, "libsqlite3", "dlmopen() into link-map namespace"),
              "no note names the copy in the other namespace" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- Go programs (issue 11) and --fail-on unseen (issue 13) ---- */

/* The note_details entry whose text holds a and b, NULL when none. */
static json_t *note_detail(clk_test_run *r, const char *a, const char *b)
{
    json_t *details = json_object_get(r->report, "note_details");
    for (size_t i = 0; i < json_array_size(details); i++) {
        json_t *d = json_array_get(details, i);
        const char *text = clk_test_str(d, "text");
        if (strstr(text, a) && strstr(text, b))
            return d;
    }
    return NULL;
}

/* A copy of fixture `name` that connleak takes for a Go program, made with objcopy (no Go needed):
 * "section" adds the .go.buildinfo section Go's linker writes, "symbol" defines runtime.main. */
static char *go_copy(const char *name, const char *how)
{
    char *src = clk_test_fixture(name);
    if (!clk_test_exists(src))
        cr_skip_test("%s was not built (no static libc at configure time)", name);
    char *dir = clk_test_mkdtemp();
    char *info = clk_test_path(dir, "buildinfo");
    cr_assert_eq(clk_test_write_file(info, "\xff Go buildinf:", 14), 0);
    char *copy = clk_test_path(dir, name);
    char arg[PATH_MAX + 64];
    if (!strcmp(how, "section"))
        snprintf(arg, sizeof arg, "--add-section=.go.buildinfo=%s", info);
    else
        snprintf(arg, sizeof arg, "--add-symbol=runtime.main=.text:0,function,global");
    clk_test_proc p;
    int st = clk_test_exec(ARGS("objcopy", arg, src, copy), NULL, NULL, 0, &p);
    if (st == 127 || st == -1)
        cr_skip_test("no objcopy (binutils) to make a Go stand-in with");
    cr_assert_eq(st, 0, "objcopy %s failed: %s", arg, p.err);
    clk_test_proc_free(&p);
    return copy;
}

Test(gaps, a_go_program_is_said_to_be_unseen, .timeout = 60)
{
    const char *hows[] = {"section", "symbol"};
    for (int i = 0; i < 2; i++) {
        char *go = go_copy("fx_go", hows[i]);
        clk_test_run r;
        clk_test_connleak(NULL, ARGS(go), NULL, &r);
        clk_assert_status(&r, 0); /* a note alone does not fail the run */
        clk_assert_report(&r);
        cr_assert(clk_test_contains(r.proc.out, "go stand-in done"), "fixture did not finish: %s", r.proc.out);
        clk_assert_summary(&r, "processes", 1);
        cr_assert(has_note(&r, go, "is a Go program: its network connections (pure-Go PostgreSQL drivers"),
                  "(%s) no note says the Go program's connections are not seen" CLK_CTX_FMT, hows[i], CLK_CTX(&r));
        json_t *d = note_detail(&r, go, "Go program");
        cr_assert(d && !strcmp(clk_test_str(d, "kind"), "unseen") && !json_object_get(d, "fails"),
                  "(%s) the note's kind is unseen, and it does not fail the run" CLK_CTX_FMT, hows[i], CLK_CTX(&r));
        clk_test_run_free(&r);
    }
    /* a program that is not Go gets no such note */
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_go", NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(!has_note(&r, "Go program", ""), "a C program is not a Go program" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(gaps, fail_on_unseen_fails_a_go_run, .timeout = 60)
{
    char *go = go_copy("fx_go", "section");
    clk_test_run r;
    clk_test_connleak(ARGS("--fail-on", "unseen"), ARGS(go), NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 0);
    json_t *d = note_detail(&r, go, "Go program");
    cr_assert(d && json_is_true(json_object_get(d, "fails")), "the note says it fails the run" CLK_CTX_FMT,
              CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "==connleak==ERROR: connleak: 1 note on database clients the detector "
                                            "cannot see (--fail-on unseen)"),
              "the text report says why it fails: %s", clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
    /* --exitcode applies, and a comma list and a repeat are one */
    clk_test_connleak(ARGS("--fail-on", "finalizer,unseen", "--fail-on", "unseen", "--exitcode", "42"), ARGS(go),
                      NULL, &r);
    clk_assert_status(&r, 42);
    clk_test_run_free(&r);
    /* CONNLEAK_OPTIONS' fail_on= too, kept from the command (the library would refuse the key) */
    clk_test_connleak(NULL, ARGS("sh", "-c", "echo \"options=[$CONNLEAK_OPTIONS]\"; exec \"$0\"", go),
                      ARGS("CONNLEAK_OPTIONS=fail_on=unseen:stack_depth=16"), &r);
    clk_assert_status(&r, 23);
    cr_assert(clk_test_contains(r.proc.out, "options=[stack_depth=16]"), "the command sees the rest: %s", r.proc.out);
    cr_assert(!clk_test_contains(r.proc.err, "unknown key"), "no process refused fail_on: %s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(gaps, a_static_go_program_is_said_to_be_out_of_reach, .timeout = 60)
{
    char *go = go_copy("fx_go_static", "section");
    clk_test_run r;
    clk_test_connleak(ARGS("--fail-on", "unseen"), ARGS(go), NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "processes", 0);
    json_t *d = note_detail(&r, go, "is a statically linked Go program: the detector cannot be preloaded");
    cr_assert(d && !strcmp(clk_test_str(d, "kind"), "unseen"), "no unseen note for the static Go program" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(gaps, fail_on_unseen_fails_a_static_copy_of_sqlite, .timeout = 60)
{
    clk_test_run r;
    clk_test_connleak_fixture(ARGS("--fail-on", "unseen"), "fx_static", NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 0);
    cr_assert(note_detail(&r, "own copy of SQLite", "fx_static"), "no note names the copy" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(gaps, fail_on_leaves_a_run_without_unseen_notes_alone, .timeout = 60)
{
    clk_test_run r;
    clk_test_connleak_fixture(ARGS("--fail-on", "unseen"), "fx_go", NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    clk_test_run_free(&r);
    clk_test_connleak_fixture(ARGS("--fail-on", "finalizer"), "fx_go", NULL, &r);
    clk_assert_status(&r, 0);
    clk_test_run_free(&r);
}

Test(gaps, fail_on_finalizer_fails_a_connection_the_garbage_collector_closed, .timeout = 120)
{
    if (!clk_test_exists("/usr/bin/python3"))
        cr_skip_test("no /usr/bin/python3");
    char *dir = clk_test_mkdtemp();
    char *script = clk_test_path(dir, "dropped.py");
    const char *py = "import sqlite3\n\ndef open_dropped():\n    c = sqlite3.connect(':memory:')\n    c = None\n\n"
                     "open_dropped()\n";
    cr_assert_eq(clk_test_write_file(script, py, strlen(py)), 0);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("/usr/bin/python3", script), NULL, &r);
    clk_assert_report(&r);
    if (clk_test_summary(r.report, "closed_by_finalizer") != 1)
        cr_skip_test("this python3 gives no closed_by_finalizer (its frames are not read)" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_status(&r, 0); /* reported, not failing */
    clk_test_run_free(&r);
    clk_test_connleak(ARGS("--fail-on", "finalizer"), ARGS("/usr/bin/python3", script), NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 0);
    cr_assert(clk_test_contains(r.proc.err, "1 connection closed by the garbage collector, not by the program "
                                            "(--fail-on finalizer)"), "%s", clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(gaps, fail_on_refuses_what_it_does_not_know, .timeout = 60)
{
    const char *bad[] = {"bogus", "", "unseen,", "unseen,bogus"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        clk_test_proc p;
        clk_test_exec(ARGS(clk_test_cli(), "run", "--fail-on", bad[i], "--", clk_test_fixture("fx_go")),
                      ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, &p);
        cr_assert_eq(p.status, 2, "--fail-on '%s': status %d: %s", bad[i], p.status, p.err);
        cr_assert_eq(clk_test_count_lines(p.err), 1, "one line: %s", p.err);
        cr_assert(clk_test_contains(p.err, "--fail-on wants unseen or finalizer"), "%s", p.err);
        cr_assert(!clk_test_contains(p.out, "go stand-in done"), "the command must not run: %s", p.out);
        clk_test_proc_free(&p);
    }
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", clk_test_fixture("fx_go")), ARGS("CONNLEAK_OPTIONS=fail_on=leaks"),
                  NULL, 0, &p);
    cr_assert_eq(p.status, 2, "fail_on=leaks: status %d: %s", p.status, p.err);
    cr_assert(clk_test_contains(p.err, "CONNLEAK_OPTIONS: fail_on wants unseen or finalizer"), "%s", p.err);
    clk_test_proc_free(&p);
    clk_test_exec(ARGS(clk_test_cli(), "run", "--fail-on"), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 2, "--fail-on without a value: status %d: %s", p.status, p.err);
    clk_test_proc_free(&p);
}
