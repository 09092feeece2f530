/* cli_test.c — the connleak command: usage, bad input, exit statuses, report, preload-path, direct preloading, CONNLEAK_OPTIONS, report shape, the sqlite3 shell. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clk_assert.h"
#include "rawfmt.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

#ifndef CLK_PROJECT_VERSION
#error "CLK_PROJECT_VERSION must come from meson"
#endif

static int icontains(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return 1;
    return 0;
}

static void cli(clk_test_proc *p, const char *const *argv)
{
    clk_test_exec(argv, ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, p);
}

/* Bad input: a non-zero status that is neither the findings status nor a
 * signal, and one clear line on stderr. */
#define assert_bad_input(p, what)                                                                        \
    do {                                                                                                 \
        cr_assert((p)->status > 0 && (p)->status < 128 && (p)->status != 23,                             \
                  "%s: status %d should be non-zero, below 128 and not 23\n--- stderr:\n%s", (what),     \
                  (p)->status, clk_test_excerpt((p)->err));                                              \
        cr_assert_eq(clk_test_count_lines((p)->err), 1, "%s: want one line on stderr, got:\n%s", (what), \
                     clk_test_excerpt((p)->err));                                                        \
    } while (0)

/* ---- usage ---- */

Test(cli, help, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "--help"));
    cr_assert_eq(p.status, 0, "--help exit %d: %s", p.status, p.err);
    cr_assert(clk_test_contains(p.out, "run") && clk_test_contains(p.out, "report") &&
                  clk_test_contains(p.out, "preload-path"),
              "--help should list the commands on stdout:\n%s", p.out);
    clk_test_proc_free(&p);
}

Test(cli, version, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "--version"));
    cr_assert_eq(p.status, 0, "--version exit %d: %s", p.status, p.err);
    cr_assert(clk_test_contains(p.out, CLK_PROJECT_VERSION), "--version should print %s: %s", CLK_PROJECT_VERSION,
              p.out);
    clk_test_proc_free(&p);
}

Test(cli, no_arguments_prints_usage_and_fails, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli()));
    cr_assert(p.status > 0 && p.status < 128 && p.status != 23, "status %d", p.status);
    cr_assert(icontains(p.out, "usage") || icontains(p.err, "usage"), "no usage printed:\n%s\n%s", p.out, p.err);
    clk_test_proc_free(&p);
}

Test(cli, unknown_command, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "frobnicate"));
    assert_bad_input(&p, "unknown command");
    cr_assert(clk_test_contains(p.err, "frobnicate"), "should name the command: %s", p.err);
    clk_test_proc_free(&p);
}

Test(cli, run_without_double_dash, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "run", clk_test_fixture("fx_sqlite"), "clean", ":memory:"));
    assert_bad_input(&p, "run without --");
    cr_assert(!clk_test_contains(p.out, "clean done"), "the command must not run: %s", p.out);
    clk_test_proc_free(&p);
}

Test(cli, run_unknown_option, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "run", "--bogus-option", "--", clk_test_fixture("fx_sqlite"), "clean", ":memory:"));
    assert_bad_input(&p, "unknown option");
    cr_assert(clk_test_contains(p.err, "--bogus-option"), "should name the option: %s", p.err);
    cr_assert(!clk_test_contains(p.out, "clean done"), "the command must not run: %s", p.out);
    clk_test_proc_free(&p);
}

Test(cli, run_bad_exitcode_value, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "run", "--exitcode", "banana", "--", clk_test_fixture("fx_sqlite"), "clean",
                 ":memory:"));
    assert_bad_input(&p, "--exitcode banana");
    clk_test_proc_free(&p);
}

/* ---- exit statuses of run ---- */

Test(cli, command_not_found_is_127, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("/nonexistent/connleak-no-such-program"), NULL, &r);
    clk_assert_status(&r, 127);
    cr_assert(clk_test_contains(r.proc.err, "connleak-no-such-program"), "should name the command: %s", r.proc.err);
    clk_test_run_free(&r);
    clk_test_connleak(NULL, ARGS("connleak-no-such-program-in-path"), NULL, &r);
    clk_assert_status(&r, 127);
    clk_test_run_free(&r);
}

Test(cli, command_status_wins_over_leaks, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-exit", ":memory:", "7"), &r);
    clk_assert_status(&r, 7);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 1); /* still reported */
    clk_test_run_free(&r);
}

Test(cli, command_killed_by_signal_is_128_plus_signal, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("sh", "-c", "kill -TERM $$"), NULL, &r);
    clk_assert_status(&r, 128 + 15);
    clk_test_run_free(&r);
}

Test(cli, clean_command_failing_keeps_its_status, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("sh", "-c", "exit 5"), NULL, &r);
    clk_assert_status(&r, 5);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 0);
    clk_test_run_free(&r);
}

Test(cli, exitcode_option, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(ARGS("--exitcode", "42"), "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_status(&r, 42);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 1);
    clk_test_run_free(&r);
    clk_test_connleak_fixture(ARGS("--exitcode", "42"), "fx_sqlite", ARGS("clean", ":memory:"), &r);
    clk_assert_status(&r, 0);
    clk_test_run_free(&r);
}

Test(cli, json_written_to_an_unwritable_place_fails_clearly, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "run", "--json", "/nonexistent-connleak-dir/report.json", "--",
                 clk_test_fixture("fx_sqlite"), "clean", ":memory:"));
    cr_assert(p.status > 0 && p.status < 128 && p.status != 23, "status %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "/nonexistent-connleak-dir"), "should name the path: %s", p.err);
    clk_test_proc_free(&p);
}

/* ---- the reports ---- */

Test(cli, text_report_on_stderr, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_status(&r, 23);
    cr_assert(clk_test_contains(r.proc.err, "#0 leak_with_open"), "want a frame line \"#0 leak_with_open ...\":\n%s",
              r.proc.err);
    cr_assert(clk_test_contains(r.proc.err, "fx_sqlite.c:"), "want file:line:\n%s", r.proc.err);
    cr_assert(clk_test_contains(r.proc.err, ":memory:"), "want the target:\n%s", r.proc.err);
    cr_assert(icontains(r.proc.err, "sqlite"), "want the backend:\n%s", r.proc.err);
    cr_assert(!clk_test_contains(r.proc.out, "leak_with_open"), "the report belongs on stderr, not stdout:\n%s",
              r.proc.out);
    clk_test_run_free(&r);
}

Test(cli, format_json_on_stderr, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(ARGS("--format", "json"), "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_status(&r, 23);
    json_error_t e;
    json_t *j = json_loads(r.proc.err, 0, &e);
    cr_assert_not_null(j, "stderr is not JSON (%s):\n%s", e.text, clk_test_excerpt(r.proc.err));
    cr_assert_eq(clk_test_int(j, "version"), 1);
    cr_assert_eq(clk_test_summary(j, "leaks"), 1);
    json_decref(j);
    clk_test_run_free(&r);
}

Test(cli, report_shape, TIMEOUT)
{
    clk_test_run r;
    char *fx = clk_test_fixture("fx_sqlite");
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    json_t *cmd = json_object_get(r.report, "command");
    cr_assert(json_is_array(cmd) && json_array_size(cmd) == 3, "command" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 0)), fx);
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 1)), "leak-open");
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 2)), ":memory:");
    static const char *const keys[] = {"processes", "connects", "closes", "leaks",
                                       "double_closes", "unknown_closes", "suppressed"};
    for (size_t i = 0; i < 7; i++)
        cr_assert_geq(clk_test_summary(r.report, keys[i]), 0, "summary.%s missing" CLK_CTX_FMT, keys[i], CLK_CTX(&r));
    clk_assert_summary(&r, "suppressed", 0);
    cr_assert(json_is_array(json_object_get(r.report, "leaks")), "leaks" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(json_is_array(json_object_get(r.report, "left_field_closes")), "left_field_closes" CLK_CTX_FMT,
              CLK_CTX(&r));
    json_t *leak = json_array_get(json_object_get(r.report, "leaks"), 0);
    cr_assert(json_is_array(json_object_get(leak, "pids")), "pids" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(cli, stack_depth_option, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"),
                      ARGS("CONNLEAK_OPTIONS=stack_depth=1"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    cr_assert_not_null(leak, "no leak" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *frames = json_object_get(leak, "opened_at");
    cr_assert_eq(json_array_size(frames), 1, "stack_depth=1 keeps one frame" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(frames), "leak_with_open", "the kept frame is the caller" CLK_CTX_FMT,
                     CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(cli, fingerprint_is_stable_across_runs, TIMEOUT)
{
    clk_test_run a, b;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &a);
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &b);
    clk_assert_report(&a);
    clk_assert_report(&b);
    json_t *la = clk_test_find_leak(a.report, "sqlite", NULL, "leak_with_open");
    json_t *lb = clk_test_find_leak(b.report, "sqlite", NULL, "leak_with_open");
    cr_assert(la && lb, "leak missing" CLK_CTX_FMT, CLK_CTX(&a));
    const char *fa = clk_test_str(la, "fingerprint"), *fb = clk_test_str(lb, "fingerprint");
    cr_assert(strlen(fa) >= 8, "fingerprint too short: \"%s\"", fa);
    cr_assert_str_eq(fa, fb, "fingerprints differ between two runs of the same code");
    /* A different opener has a different fingerprint. */
    clk_test_run c;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open-v2", ":memory:"), &c);
    json_t *lc = clk_test_find_leak(c.report, "sqlite", NULL, "leak_with_open_v2");
    cr_assert_not_null(lc, "leak missing" CLK_CTX_FMT, CLK_CTX(&c));
    cr_assert_str_neq(clk_test_str(lc, "fingerprint"), fa, "different stacks share a fingerprint");
    clk_test_run_free(&a);
    clk_test_run_free(&b);
    clk_test_run_free(&c);
}

/* ---- connleak report ---- */

Test(cli, report_of_a_leaking_run, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &r);
    clk_assert_report(&r);
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "report", r.json_path));
    cr_assert_eq(p.status, 23, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "leak_with_open"), "report text should name the opener:\n%s", p.err);
    clk_test_proc_free(&p);
    cli(&p, ARGS(clk_test_cli(), "report", "--exitcode", "9", r.json_path));
    cr_assert_eq(p.status, 9, "report --exitcode 9 exit %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    /* Re-rendered as JSON, the report says the same. */
    char *again = clk_test_path(r.dir, "again.json");
    cli(&p, ARGS(clk_test_cli(), "report", "--json", again, r.json_path));
    cr_assert_eq(p.status, 23, "report --json exit %d: %s", p.status, clk_test_excerpt(p.err));
    char *text = clk_test_read_file(again, NULL);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_not_null(j, "report --json wrote no JSON");
    cr_assert_eq(clk_test_summary(j, "leaks"), 1);
    cr_assert_eq(clk_test_leak_count(j, "sqlite", ":memory:", "leak_with_open"), 1, "%s", text);
    json_decref(j);
    clk_test_proc_free(&p);
    clk_test_run_free(&r);
}

Test(cli, report_of_a_clean_run_is_0, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("clean", ":memory:"), &r);
    clk_assert_report(&r);
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "report", r.json_path));
    cr_assert_eq(p.status, 0, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_run_free(&r);
}

Test(cli, report_merges_shards, TIMEOUT)
{
    /* Three CI shards: two runs with the same leak, one with a double close. */
    clk_test_run a, b, c;
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &a);
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("leak-open", ":memory:"), &b);
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS("double-close", ":memory:"), &c);
    clk_assert_report(&a);
    clk_assert_report(&b);
    clk_assert_report(&c);
    char *merged = clk_test_path(a.dir, "merged.json");
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "report", "--json", merged, a.json_path, b.json_path, c.json_path));
    cr_assert_eq(p.status, 23, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    char *text = clk_test_read_file(merged, NULL);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_not_null(j, "no merged JSON: %s", clk_test_excerpt(p.err));
    cr_assert_eq(clk_test_summary(j, "leaks"), 2, "two shards with one leak each: %s", clk_test_excerpt(text));
    json_t *leak = clk_test_find_leak(j, "sqlite", ":memory:", "leak_with_open");
    cr_assert_not_null(leak, "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_int(leak, "count"), 2, "the same leak from two shards is one entry: %s",
                 clk_test_excerpt(text));
    cr_assert_eq(clk_test_summary(j, "double_closes"), 1, "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_summary(j, "connects"),
                 clk_test_summary(a.report, "connects") + clk_test_summary(b.report, "connects") +
                     clk_test_summary(c.report, "connects"),
                 "%s", clk_test_excerpt(text));
    cr_assert_not_null(clk_test_find_left_field(j, "double_close", "sqlite", "close_second_time"), "%s",
                       clk_test_excerpt(text));
    json_decref(j);
    clk_test_proc_free(&p);
    clk_test_run_free(&a);
    clk_test_run_free(&b);
    clk_test_run_free(&c);
}

/* Entries of a report keyed by fingerprint, with counts, for comparing two reports. */
static void same_entries(json_t *a, json_t *b, const char *list, const char *text_a, const char *text_b)
{
    json_t *la = json_object_get(a, list), *lb = json_object_get(b, list);
    cr_assert_eq(json_array_size(la), json_array_size(lb), "%s: %zu vs %zu entries\n%s\n---\n%s", list,
                 json_array_size(la), json_array_size(lb), clk_test_excerpt(text_a), clk_test_excerpt(text_b));
    for (size_t i = 0; i < json_array_size(la); i++) {
        json_t *ea = json_array_get(la, i);
        int found = 0;
        for (size_t k = 0; k < json_array_size(lb); k++) {
            json_t *eb = json_array_get(lb, k);
            if (!strcmp(clk_test_str(ea, "fingerprint"), clk_test_str(eb, "fingerprint")) &&
                !strcmp(clk_test_str(ea, "target"), clk_test_str(eb, "target"))) {
                cr_assert_eq(clk_test_int(ea, "count"), clk_test_int(eb, "count"), "%s count of %s", list,
                             clk_test_str(ea, "fingerprint"));
                cr_assert_eq(json_array_size(json_object_get(ea, "pids")), json_array_size(json_object_get(eb, "pids")));
                found = 1;
            }
        }
        cr_assert(found, "%s entry %s missing from the single run", list, clk_test_str(ea, "fingerprint"));
    }
}

Test(cli, merged_shards_equal_one_run_of_both_halves, TIMEOUT)
{
    /* Half 1 leaks (twice, one call site); half 2 double-closes and leaks elsewhere. */
    const char *half1 = "leak-open", *half2 = "double-close";
    clk_test_run a, b, both;
    char *fx = clk_test_fixture("fx_sqlite");
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS(half1, ":memory:"), &a);
    clk_test_connleak_fixture(NULL, "fx_sqlite", ARGS(half2, ":memory:"), &b);
    char script[4096];
    snprintf(script, sizeof script, "'%s' %s :memory: && '%s' %s :memory:", fx, half1, fx, half2);
    clk_test_connleak(NULL, ARGS("/bin/sh", "-c", script), NULL, &both);
    clk_assert_report(&a);
    clk_assert_report(&b);
    clk_assert_report(&both);
    char *merged = clk_test_path(a.dir, "merged.json");
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "report", "--json", merged, a.json_path, b.json_path));
    cr_assert_eq(p.status, both.proc.status, "merged report exits %d, the single run %d: %s", p.status,
                 both.proc.status, clk_test_excerpt(p.err));
    char *text = clk_test_read_file(merged, NULL);
    json_t *m = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_not_null(m, "no merged JSON: %s", clk_test_excerpt(p.err));
    const char *keys[] = {"connects", "closes", "leaks", "double_closes", "unknown_closes", "suppressed"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert_eq(clk_test_summary(m, keys[i]), clk_test_summary(both.report, keys[i]), "summary.%s: %s vs %s",
                     keys[i], clk_test_excerpt(text), clk_test_excerpt(both.json_text));
    /* the single run also counts its shell */
    cr_assert_eq(clk_test_summary(m, "processes") + 1, clk_test_summary(both.report, "processes"));
    same_entries(m, both.report, "leaks", text, both.json_text);
    same_entries(m, both.report, "left_field_closes", text, both.json_text);
    json_decref(m);
    clk_test_proc_free(&p);
    clk_test_run_free(&a);
    clk_test_run_free(&b);
    clk_test_run_free(&both);
}

Test(cli, report_bad_input, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *garbage = clk_test_path(dir, "garbage.json");
    char *truncated = clk_test_path(dir, "truncated.json");
    char *binary = clk_test_path(dir, "junk.raw");
    clk_test_write_file(garbage, "this is not a report\n", 21);
    clk_test_write_file(truncated, "{\"version\": 1, \"summary\": {\"leaks\": ", 37);
    clk_test_write_file(binary, "CLKRAW1\n\xff\xff\xff\xff\x01\x02", 14);
    const char *const inputs[] = {garbage, truncated, binary, "/nonexistent-connleak-dir/report.json", dir};
    for (size_t i = 0; i < 5; i++) {
        clk_test_proc p;
        cli(&p, ARGS(clk_test_cli(), "report", inputs[i]));
        assert_bad_input(&p, inputs[i]);
        clk_test_proc_free(&p);
    }
    clk_test_rmtree(dir);
}

/* ---- preload-path and direct preloading ---- */

Test(cli, preload_path_prints_one_existing_path, TIMEOUT)
{
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "preload-path"));
    cr_assert_eq(p.status, 0, "exit %d: %s", p.status, p.err);
    cr_assert_eq(clk_test_count_lines(p.out), 1, "want exactly one line: \"%s\"", p.out);
    char *path = strdup(p.out);
    path[strcspn(path, "\n")] = '\0';
    cr_assert_eq(path[0], '/', "not absolute: %s", path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s does not exist", path);
    cr_assert(S_ISREG(st.st_mode), "%s is not a file", path);
    const char *base = strrchr(path, '/') + 1;
    cr_assert_str_eq(base, "libconnleak-preload.so");
    clk_test_proc_free(&p);
}

static char *ld_preload(void)
{
    char *s = malloc(strlen(clk_test_preload()) + 16);
    sprintf(s, "LD_PRELOAD=%s", clk_test_preload());
    return s;
}

Test(cli, direct_preload_reports_and_keeps_the_status, TIMEOUT)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-exit", ":memory:", "0"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "the program's status must not change (got %d): %s", p.status,
                 clk_test_excerpt(p.err));
    long long pid = clk_test_stdout_int(p.out, "pid=");
    cr_assert_gt(pid, 0, "stdout: %s", p.out);
    char want[64];
    snprintf(want, sizeof want, "pid=%lld\n", pid);
    cr_assert_str_eq(p.out, want, "nothing but the program's own output on stdout");
    cr_assert(icontains(p.err, "leak"), "stderr should report the leak:\n%s", p.err);
    cr_assert(clk_test_contains(p.err, ":memory:"), "stderr should name the target:\n%s", p.err);
    clk_test_proc_free(&p);

    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-exit", ":memory:", "7"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 7, "the program's status must not change (got %d)", p.status);
    clk_test_proc_free(&p);
}

Test(cli, direct_preload_clean_program, TIMEOUT)
{
    clk_test_proc p;
    /* The same environment does report a leak: the detector is active. */
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert(clk_test_contains(p.err, ":memory:") && !clk_test_contains(p.err, "cannot be preloaded"),
              "the preloaded detector did not report a leak:\n%s", p.err);
    clk_test_proc_free(&p);

    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "clean", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "status %d: %s", p.status, clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, "clean done\n", "nothing but the program's own output on stdout");
    cr_assert(!clk_test_contains(p.err, ":memory:"), "a clean program should get no finding:\n%s", p.err);
    clk_test_proc_free(&p);
}

Test(cli, direct_preload_exitcode_option, TIMEOUT)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS=exitcode=42"), NULL, 0, &p);
    cr_assert_eq(p.status, 42, "exitcode=42 with a leak: got %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "clean", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS=exitcode=42"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "exitcode=42 without a leak: got %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}

static void check_bad_option(const char *options, const char *named)
{
    char env[256];
    snprintf(env, sizeof env, "CONNLEAK_OPTIONS=%s", options);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "clean", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", env), NULL, 0, &p);
    cr_assert(p.exited && p.status < 128, "%s: the program crashed (status %d):\n%s", options, p.status,
              clk_test_excerpt(p.err));
    int lines = 0;
    for (const char *l = p.err; l && *l;) {
        size_t n = strcspn(l, "\n");
        char *line = strndup(l, n);
        if (strstr(line, named))
            lines++;
        free(line);
        l += n;
        if (*l)
            l++;
    }
    cr_assert_eq(lines, 1, "%s: want one line naming %s on stderr, got:\n%s", options, named, p.err);
    clk_test_proc_free(&p);
}

Test(cli, connleak_options_unknown_key, TIMEOUT)
{
    check_bad_option("no_such_key=1", "no_such_key");
}

Test(cli, connleak_options_bad_value, TIMEOUT)
{
    check_bad_option("stack_depth=banana", "stack_depth");
}

/* ---- CONNLEAK_OPTIONS under connleak run: every key works or is refused before the command ---- */

static void run_with_options(const char *options, const char *const *opts, const char *mode, clk_test_proc *p)
{
    char env[512];
    snprintf(env, sizeof env, "CONNLEAK_OPTIONS=%s", options);
    const char *argv[16] = {clk_test_cli(), "run"};
    int n = 2;
    for (int i = 0; opts && opts[i]; i++)
        argv[n++] = opts[i];
    argv[n++] = "--";
    argv[n++] = clk_test_fixture("fx_sqlite");
    argv[n++] = mode;
    argv[n++] = ":memory:";
    argv[n] = NULL;
    clk_test_exec(argv, ARGS("LD_PRELOAD", env), NULL, 0, p);
}

Test(cli, run_connleak_options_exitcode_is_the_exitcode, TIMEOUT)
{
    clk_test_proc p;
    run_with_options("exitcode=42", NULL, "leak-open", &p);
    cr_assert_eq(p.status, 42, "CONNLEAK_OPTIONS=exitcode=42 under run, a leak: got %d\n%s", p.status,
                 clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    run_with_options("exitcode=42", ARGS("--exitcode", "7"), "leak-open", &p);
    cr_assert_eq(p.status, 7, "--exitcode wins over exitcode=: got %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    run_with_options("exitcode=42", NULL, "clean", &p);
    cr_assert_eq(p.status, 0, "exitcode=42, no leak: got %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}

Test(cli, run_connleak_options_output_is_the_text_report, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *out = clk_test_path(dir, "report.txt");
    char options[600];
    snprintf(options, sizeof options, "output=%s", out);
    clk_test_proc p;
    run_with_options(options, NULL, "leak-open", &p);
    cr_assert_eq(p.status, 23, "status %d\n%s", p.status, clk_test_excerpt(p.err));
    char *text = clk_test_read_file(out, NULL);
    cr_assert(text && clk_test_contains(text, "SUMMARY: connleak:") && clk_test_contains(text, "leak_with_open"),
              "output= should get the text report:\n%s\n--- stderr:\n%s", text ? text : "(none)", p.err);
    free(text);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(cli, run_refuses_a_bad_connleak_option_once_before_starting, TIMEOUT)
{
    /* the unknown key's line lists every key that works, fail_on and help too */
    const char *bad[][2] = {{"no_such_key=1", "held_longer_than, symbolize, symbolizer, help; fail_on under connleak run"},
                            {"stack_depth=999", "1 to 128"}};
    for (int i = 0; i < 2; i++) {
        char env[128];
        snprintf(env, sizeof env, "CONNLEAK_OPTIONS=%s", bad[i][0]);
        clk_test_proc p;
        /* two processes: the error is the CLI's, once, and neither runs */
        char script[1024];
        snprintf(script, sizeof script, "'%s' clean :memory:; '%s' clean :memory:", clk_test_fixture("fx_sqlite"),
                 clk_test_fixture("fx_sqlite"));
        clk_test_exec(ARGS(clk_test_cli(), "run", "--", "sh", "-c", script), ARGS("LD_PRELOAD", env), NULL, 0, &p);
        assert_bad_input(&p, bad[i][0]);
        cr_assert(clk_test_contains(p.err, bad[i][1]), "%s: the line should say %s: %s", bad[i][0], bad[i][1], p.err);
        cr_assert(!clk_test_contains(p.out, "clean done"), "%s: the command must not run: %s", bad[i][0], p.out);
        clk_test_proc_free(&p);
    }
}

Test(cli, connleak_options_help_lists_the_keys, TIMEOUT)
{
    clk_test_proc p;
    run_with_options("help=1", NULL, "clean", &p);
    cr_assert_eq(p.status, 0, "help=1 under run: status %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, "clean done"), "help=1: the command still runs: %s", p.out);
    const char *keys[] = {"exitcode (0 to 255)", "stack_depth (1 to 128)", "output", "follow_children", "fail_on"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(clk_test_contains(p.err, keys[i]), "help=1 should list %s:\n%s", keys[i], p.err);
    const char *first = strstr(p.err, "exitcode (0 to 255)");
    cr_assert(first && !strstr(first + 1, "exitcode (0 to 255)"), "the keys once, not per process:\n%s", p.err);
    clk_test_proc_free(&p);
    /* direct mode: the library lists them */
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "clean", ":memory:"),
                  ARGS(ld_preload(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS=help=1"), NULL, 0, &p);
    cr_assert(p.status == 0 && clk_test_contains(p.err, "stack_depth (1 to 128)"),
              "help=1 without the CLI: status %d\n%s", p.status, p.err);
    clk_test_proc_free(&p);
}

/* ---- report files: checked before the command runs, mode from the umask ---- */

Test(cli, run_refuses_an_output_it_cannot_write_before_starting, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    const char *bad[] = {"/nonexistent-connleak-dir/report.sarif", dir};
    for (int i = 0; i < 2; i++) {
        clk_test_proc p;
        cli(&p, ARGS(clk_test_cli(), "run", "--format", "sarif", "--output", bad[i], "--",
                     clk_test_fixture("fx_sqlite"), "clean", ":memory:"));
        assert_bad_input(&p, bad[i]);
        cr_assert_eq(p.status, 2, "%s: status %d", bad[i], p.status);
        cr_assert(clk_test_contains(p.err, bad[i]), "should name %s: %s", bad[i], p.err);
        cr_assert(!clk_test_contains(p.out, "clean done"), "%s: the command must not run: %s", bad[i], p.out);
        clk_test_proc_free(&p);
    }
    if (geteuid() != 0) { /* root writes anywhere */
        char *ro = clk_test_path(dir, "ro");
        mkdir(ro, 0500);
        char *in_ro = clk_test_path(ro, "r.json");
        clk_test_proc p;
        cli(&p, ARGS(clk_test_cli(), "run", "--json", in_ro, "--", clk_test_fixture("fx_sqlite"), "clean",
                     ":memory:"));
        assert_bad_input(&p, in_ro);
        clk_test_proc_free(&p);
        chmod(ro, 0700);
    }
    clk_test_rmtree(dir);
}

Test(cli, report_files_follow_the_umask, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    const char *masks[] = {"022", "027"};
    const mode_t want[] = {0644, 0640};
    for (int i = 0; i < 2; i++) {
        char *json = clk_test_path(dir, "r.json"), *sarif = clk_test_path(dir, "r.sarif");
        char script[2048];
        char *raw = clk_test_path(dir, masks[i]);
        snprintf(script, sizeof script, "umask %s; exec '%s' run --quiet --json '%s' --format sarif --output '%s' "
                 "--keep-raw '%s' -- '%s' clean :memory:", masks[i], clk_test_cli(), json, sarif, raw,
                 clk_test_fixture("fx_sqlite"));
        clk_test_proc p;
        clk_test_exec(ARGS("sh", "-c", script), ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, &p);
        cr_assert_eq(p.status, 0, "umask %s: status %d\n%s", masks[i], p.status, clk_test_excerpt(p.err));
        struct stat st;
        cr_assert(stat(json, &st) == 0 && (st.st_mode & 0777) == want[i], "umask %s: --json mode %o, want %o",
                  masks[i], st.st_mode & 0777, want[i]);
        cr_assert(stat(sarif, &st) == 0 && (st.st_mode & 0777) == want[i], "umask %s: --output mode %o, want %o",
                  masks[i], st.st_mode & 0777, want[i]);
        /* journals stay private: they hold targets and stacks of whoever ran */
        DIR *d = opendir(raw);
        int journals = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (!strstr(e->d_name, ".raw"))
                continue;
            char *jp = clk_test_path(raw, e->d_name);
            cr_assert(stat(jp, &st) == 0 && (st.st_mode & 0777) == 0600, "umask %s: journal %s mode %o, want 600",
                      masks[i], e->d_name, st.st_mode & 0777);
            journals++;
        }
        if (d)
            closedir(d);
        cr_assert_gt(journals, 0, "umask %s: no journal kept in %s", masks[i], raw);
        clk_test_proc_free(&p);
    }
    clk_test_rmtree(dir);
}

/* Journals reserve disk blocks as their slots fill (16 KiB at a time), not a whole 1 MiB chunk:
 * a CI artifact of many short processes stays small. */
Test(cli, kept_journals_take_about_their_data_on_disk, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *raw = clk_test_path(dir, "raw");
    char script[4096];
    snprintf(script, sizeof script, "for i in $(seq 20); do '%s' leak-open :memory: >/dev/null || exit 1; done",
             clk_test_fixture("fx_sqlite"));
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--quiet", "--keep-raw", raw, "--", "sh", "-c", script),
                  ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 23, "status %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    DIR *d = opendir(raw);
    long long blocks = 0;
    int journals = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        char *jp = clk_test_path(raw, e->d_name);
        if (strstr(e->d_name, ".raw") && stat(jp, &st) == 0) {
            blocks += (long long)st.st_blocks * 512;
            journals++;
        }
    }
    if (d)
        closedir(d);
    cr_assert_geq(journals, 21, "want the shell's and 20 programs' journals, got %d", journals);
    cr_assert_lt(blocks, 2 << 20, "%d journals take %lld bytes on disk: want under 2 MiB", journals, blocks);
    /* and they read back whole */
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--json", "/dev/stdout", raw), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report status %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, "\"leaks\":20,"), "20 leaks read back:\n%s", clk_test_excerpt(p.out));
    cr_assert(!clk_test_contains(p.out, "truncated"), "no journal noted as cut short:\n%s", clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* ---- a real client nobody here wrote: the sqlite3 shell ---- */

Test(cli, sqlite3_shell_session_is_clean, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *db = clk_test_path(dir, "shell.sqlite");
    clk_test_run r;
    clk_test_connleak(NULL,
                      ARGS("sqlite3", db, "create table t(x); insert into t values (41); select x + 1 from t;"),
                      NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "42"), "sqlite3 output: %s\n%s", r.proc.out, r.proc.err);
    long long connects = clk_test_summary(r.report, "connects");
    cr_assert_geq(connects, 1, "the shell's connection was not seen" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "closes", connects);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(cli, output_to_a_device_writes_through_it, TIMEOUT)
{
    /* --output /dev/null (here through a link to it) must not replace the device with a file */
    char *dir = clk_test_mkdtemp();
    char *link = clk_test_path(dir, "devnull");
    cr_assert_eq(symlink("/dev/null", link), 0);
    clk_test_proc p;
    char *fx = clk_test_fixture("fx_sqlite");
    cli(&p, ARGS(clk_test_cli(), "run", "--format", "sarif", "--output", link, "--", fx, "clean", ":memory:"));
    cr_assert_eq(p.status, 0, "exit %d: %s", p.status, clk_test_excerpt(p.err));
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link to /dev/null was replaced by a file");
    cr_assert_eq(stat(link, &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "/dev/null is no longer a device");
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* ---- damaged journals: each is reported as such, and the rest of the run still is ---- */

static void damage(const char *path, long keep_bytes, long garbage_from, long garbage_to)
{
    size_t len;
    char *data = clk_test_read_file(path, &len);
    cr_assert_not_null(data, "cannot read %s", path);
    if (keep_bytes >= 0 && (size_t)keep_bytes < len)
        len = (size_t)keep_bytes;
    for (long i = garbage_from; i < garbage_to && (size_t)i < len; i++)
        data[i] = (char)0xab;
    cr_assert_eq(clk_test_write_file(path, data, len), 0);
    free(data);
}

/* The byte offset just past the last CLOSE record at or before slot `near` of a journal whose
 * records there are opens and closes only; a cut there leaves no connection open mid-pair. */
static long close_boundary(const char *path, long near)
{
    size_t len;
    unsigned char *data = (unsigned char *)clk_test_read_file(path, &len);
    cr_assert_not_null(data, "cannot read %s", path);
    long slot = near;
    while (slot > 1 && !((size_t)(slot + 1) * CONNLEAK_RAW_SLOT <= len &&
                         data[slot * CONNLEAK_RAW_SLOT] == CONNLEAK_REC_CLOSE &&
                         data[(slot - 1) * CONNLEAK_RAW_SLOT] == CONNLEAK_REC_OPEN))
        slot--;
    free(data);
    cr_assert_gt(slot, 1, "%s: no open+close pair before slot %ld", path, near);
    return (slot + 1) * CONNLEAK_RAW_SLOT;
}

/* Journals in dir/raw of fx_stackcache's fork mode: the parent leaks 1 connection
 * early, its forked child 3, each among 100 pairs. Returns the raw directory;
 * parent_raw and child_raw (64 bytes each, or NULL) get the journals' names. */
static char *fork_journals(const char *dir, char *parent_raw, char *child_raw)
{
    char *raw = clk_test_path(dir, "raw");
    cr_assert_eq(mkdir(raw, 0700), 0);
    char pre[4096], run_dir[4096];
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", clk_test_preload());
    snprintf(run_dir, sizeof run_dir, "CONNLEAK_RUN_DIR=%s", raw);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_fixture("fx_stackcache"), "fork"), ARGS(pre, run_dir), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "fixture: %s", clk_test_excerpt(p.err));
    if (parent_raw)
        snprintf(parent_raw, 64, "%lld-0.raw", clk_test_stdout_int(p.out, "parent="));
    if (child_raw)
        snprintf(child_raw, 64, "%lld-0.raw", clk_test_stdout_int(p.out, "child="));
    clk_test_proc_free(&p);
    return raw;
}

/* `connleak report --json` of raw, which must exit 23 (findings remain); its
 * JSON text (in *text) and the parsed report. */
static json_t *report_of(const char *dir, const char *raw, char **text, clk_test_proc *p)
{
    char *json = clk_test_path(dir, "report.json");
    cli(p, ARGS(clk_test_cli(), "report", "--json", json, raw));
    cr_assert_eq(p->status, 23, "report exit %d: %s", p->status, clk_test_excerpt(p->err));
    *text = clk_test_read_file(json, NULL);
    json_t *j = *text ? json_loads(*text, 0, NULL) : NULL;
    cr_assert_not_null(j, "no JSON report: %s", clk_test_excerpt(p->err));
    return j;
}

Test(cli, report_of_a_truncated_and_a_corrupt_journal_keeps_the_rest, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char parent_raw[64], child_raw[64];
    char *raw = fork_journals(dir, parent_raw, child_raw);
    clk_test_proc p;
    /* the child's journal cut 13 bytes into the record after a close near its 100th slot (where
     * exactly depends on how many slots its path strings took); ten of the parent's records
     * overwritten */
    long cut = close_boundary(clk_test_path(raw, child_raw), 100);
    damage(clk_test_path(raw, child_raw), cut + 13, 0, 0);
    long from = close_boundary(clk_test_path(raw, parent_raw), 150);
    damage(clk_test_path(raw, parent_raw), -1, from, from + 10 * CONNLEAK_RAW_SLOT);
    char *text;
    json_t *j = report_of(dir, raw, &text, &p);
    char want[256];
    snprintf(want, sizeof want, "%s: truncated at %ld bytes", child_raw, cut + 13);
    cr_assert(clk_test_contains(text, want), "no note that %s was truncated: %s", child_raw, clk_test_excerpt(text));
    snprintf(want, sizeof want, "%s: 10 corrupt records skipped", parent_raw);
    cr_assert(clk_test_contains(text, want), "no note of the corrupt records: %s", clk_test_excerpt(text));
    cr_assert(clk_test_contains(p.err, "truncated"), "the text report should say it too: %s", clk_test_excerpt(p.err));
    cr_assert_eq(clk_test_summary(j, "processes"), 2, "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_leak_count(j, "sqlite", NULL, "caller_alpha"), 1, "the parent's leak: %s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_leak_count(j, "sqlite", NULL, "caller_beta"), 3, "the child's leaks: %s", clk_test_excerpt(text));
    json_decref(j);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(cli, report_of_a_directory_with_a_foreign_journal_keeps_the_rest, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *raw = fork_journals(dir, NULL, NULL);
    clk_test_proc p;
    /* a file named like a journal that is none, and one cut inside its header */
    cr_assert_eq(clk_test_write_file(clk_test_path(raw, "99999-0.raw"), "garbage, not a journal\n", 23), 0);
    cr_assert_eq(clk_test_write_file(clk_test_path(raw, "99998-0.raw"), CONNLEAK_RAW_MAGIC, 8), 0);
    char *text;
    json_t *j = report_of(dir, raw, &text, &p);
    cr_assert(clk_test_contains(text, "99999-0.raw: not a connleak journal"), "the note says why: %s",
              clk_test_excerpt(text));
    cr_assert(clk_test_contains(text, "99998-0.raw: not a connleak journal"), "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_summary(j, "processes"), 2, "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_leak_count(j, "sqlite", NULL, "caller_alpha"), 1, "%s", clk_test_excerpt(text));
    cr_assert_eq(clk_test_leak_count(j, "sqlite", NULL, "caller_beta"), 3, "%s", clk_test_excerpt(text));
    json_decref(j);
    clk_test_proc_free(&p);
    /* a foreign file named on the command line alone: said, and status 2 */
    cli(&p, ARGS(clk_test_cli(), "report", clk_test_path(raw, "99999-0.raw")));
    cr_assert_eq(p.status, 2, "exit %d: %s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "not a connleak journal"), "%s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* Runs sharing one --keep-raw directory (README's meson setup, tests in
 * parallel): each run reports its own processes; `report DIR` merges them all. */
Test(cli, runs_sharing_a_keep_raw_directory_report_their_own, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *raw = clk_test_path(dir, "raw");
    clk_test_proc p;
    cli(&p, ARGS(clk_test_cli(), "run", "--keep-raw", raw, "--", clk_test_fixture("fx_sqlite"), "leak-open",
                 ":memory:"));
    cr_assert_eq(p.status, 23, "the leaking run: exit %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    /* and a journal made by hand there (direct preloading, no run id) */
    char pre[4096], run_dir[4096];
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", clk_test_preload());
    snprintf(run_dir, sizeof run_dir, "CONNLEAK_RUN_DIR=%s", raw);
    clk_test_exec(ARGS(clk_test_fixture("fx_sqlite"), "leak-open", ":memory:"), ARGS(pre, run_dir), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "the direct run: exit %d: %s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    char *json = clk_test_path(dir, "clean.json");
    cli(&p, ARGS(clk_test_cli(), "run", "--keep-raw", raw, "--json", json, "--", clk_test_fixture("fx_sqlite"), "clean",
                 ":memory:"));
    cr_assert_eq(p.status, 0, "the clean run after it: exit %d: %s", p.status, clk_test_excerpt(p.err));
    json_t *j = json_load_file(json, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_eq(clk_test_summary(j, "processes"), 1, "only its own process");
    cr_assert_eq(clk_test_summary(j, "leaks"), 0);
    json_decref(j);
    clk_test_proc_free(&p);
    json = clk_test_path(dir, "all.json");
    cli(&p, ARGS(clk_test_cli(), "report", "--json", json, raw));
    cr_assert_eq(p.status, 23, "report of the directory: exit %d: %s", p.status, clk_test_excerpt(p.err));
    j = json_load_file(json, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_eq(clk_test_summary(j, "processes"), 3, "every run's processes");
    cr_assert_eq(clk_test_summary(j, "leaks"), 2);
    json_decref(j);
    /* ...and says which runs it merged: the two runs' ids and the journal without one */
    cr_assert(clk_test_contains(p.err, ": merged 3 runs: ") && clk_test_contains(p.err, "(journals without a run id)"),
              "the report names the runs it merged:\n%s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    cli(&p, ARGS(clk_test_cli(), "run", "--keep-raw", raw, "--", clk_test_fixture("fx_sqlite"), "clean", ":memory:"));
    cr_assert(!clk_test_contains(p.err, "merged"), "a run reads its own journals only: no such note:\n%s",
              clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(cli, report_of_a_journal_naming_stacks_it_lacks_says_so, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char child_raw[64];
    char *raw = fork_journals(dir, NULL, child_raw);
    clk_test_proc p;
    /* the child's first open (one of its leaks) now names a stack id the journal never wrote */
    char *path = clk_test_path(raw, child_raw);
    size_t len;
    char *data = clk_test_read_file(path, &len);
    cr_assert_not_null(data);
    long open_at = CONNLEAK_RAW_SLOT;
    while ((size_t)open_at < len && (uint8_t)data[open_at] != CONNLEAK_REC_OPEN)
        open_at += CONNLEAK_RAW_SLOT;
    cr_assert_lt((size_t)open_at, len, "no open in %s", path);
    struct connleak_raw_record rec;
    memcpy(&rec, data + open_at, sizeof rec);
    cr_assert_eq(rec.type, CONNLEAK_REC_OPEN);
    rec.u.ev.stack = 0x7ffffff0u;
    memcpy(data + open_at, &rec, sizeof rec);
    cr_assert_eq(clk_test_write_file(path, data, len), 0);
    free(data);
    char *text;
    json_decref(report_of(dir, raw, &text, &p));
    char want[128];
    snprintf(want, sizeof want, "%s: 1 reference to stacks or strings it does not hold", child_raw);
    cr_assert(clk_test_contains(text, want), "no note of the missing stack: %s", clk_test_excerpt(text));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}
