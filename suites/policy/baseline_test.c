/* baseline_test.c — baselines: --write-baseline records fingerprints, --baseline lets known findings pass and names new and vanished ones. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "policy.h"

static json_t *load_baseline(const char *path)
{
    json_error_t e;
    json_t *b = json_load_file(path, 0, &e);
    cr_assert_not_null(b, "baseline %s is not JSON: %s", path, e.text);
    cr_assert_eq(clk_test_int(b, "version"), 1, "baseline version: %s", clk_test_dump(b));
    cr_assert(json_is_array(json_object_get(b, "fingerprints")), "no fingerprints array: %s", clk_test_dump(b));
    return b;
}

/* The baseline entry opened by `fn`, NULL when none. */
static json_t *baseline_entry(const json_t *b, const char *fn)
{
    json_t *a = json_object_get(b, "fingerprints");
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(clk_test_str(json_array_get(a, i), "opened_by"), fn))
            return json_array_get(a, i);
    return NULL;
}

/* Runs the fixture with --write-baseline; returns the baseline's path. */
static char *write_baseline(const char *const *modes, int want_status)
{
    char *base = policy_path("baseline.json");
    clk_test_run r;
    policy_run(ARGS("--write-baseline", base), modes, NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, want_status);
    cr_assert(clk_test_exists(base), "--write-baseline wrote nothing" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    return base;
}

Test(baseline, round_trip, TIMEOUT)
{
    char *base = policy_path("baseline.json");
    clk_test_run r;
    policy_run(ARGS("--write-baseline", base), ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0); /* writing a baseline records the findings as known: this run passes */
    cr_assert(!clk_test_contains(r.proc.err, "ERROR") &&
                  clk_test_contains(r.proc.err, "(recorded in the baseline, not failing)") &&
                  clk_test_contains(r.proc.err, "written: this run's unsuppressed leaks and double closes are recorded"),
              "the text says the findings were recorded, not that the run failed:\n%s", r.proc.err);
    cr_assert_eq(clk_test_summary(r.report, "new"), 1, "summary.new counts what is neither suppressed nor baselined"
                 CLK_CTX_FMT, CLK_CTX(&r));
    json_t *leak = policy_entry(r.report, "leaks", "open_cache");
    cr_assert_not_null(leak, "the leak" CLK_CTX_FMT, CLK_CTX(&r));

    json_t *b = load_baseline(base);
    cr_assert_eq(json_array_size(json_object_get(b, "fingerprints")), 1, "one entry: %s", clk_test_dump(b));
    json_t *e = baseline_entry(b, "open_cache");
    cr_assert_not_null(e, "entry opened_by open_cache: %s", clk_test_dump(b));
    cr_assert_str_eq(clk_test_str(e, "fingerprint"), clk_test_str(leak, "fingerprint"));
    cr_assert_str_eq(clk_test_str(e, "kind"), "leak");
    cr_assert_str_eq(clk_test_str(e, "backend"), "sqlite");
    cr_assert_str_eq(clk_test_str(e, "target"), ":memory:");
    cr_assert(json_is_null(json_object_get(e, "test")), "test is null outside tests: %s", clk_test_dump(b));
    json_decref(b);
    clk_test_run_free(&r);

    policy_run(ARGS("--baseline", base), ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "baselined", 1);
    clk_assert_summary(&r, "leaks", 1); /* still reported */
    clk_assert_summary(&r, "new", 0);   /* and not new */
    leak = policy_entry(r.report, "leaks", "open_cache");
    cr_assert(leak && json_is_true(json_object_get(leak, "baselined")), "marked baselined" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "1 finding(s) baselined (reported, not failing)"),
              "says it skipped the known one:\n%s", r.proc.err);
    cr_assert(clk_test_contains(r.proc.err, "(baselined)"), "text marks it:\n%s", r.proc.err);
    cr_assert(clk_test_contains(r.proc.err, "0 suppressed, 1 baselined;"), "summary line:\n%s", r.proc.err);
    cr_assert(!clk_test_contains(r.proc.err, "ERROR") && !clk_test_contains(r.proc.err, "====="),
              "no error banner for known findings:\n%s", r.proc.err);
    cr_assert(!clk_test_contains(r.proc.err, "no longer seen"), "nothing vanished:\n%s", r.proc.err);
    clk_test_run_free(&r);
}

Test(baseline, new_leak_beside_known_one_fails, TIMEOUT)
{
    char *base = write_baseline(ARGS("cache"), 0);
    clk_test_run r;
    policy_run(ARGS("--baseline", base), ARGS("cache", "session"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 2);
    clk_assert_summary(&r, "baselined", 1);
    json_t *known = policy_entry(r.report, "leaks", "open_cache");
    json_t *fresh = policy_entry(r.report, "leaks", "open_session");
    cr_assert(known && json_is_true(json_object_get(known, "baselined")), "open_cache known" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(fresh && !json_is_true(json_object_get(fresh, "baselined")), "open_session new" CLK_CTX_FMT, CLK_CTX(&r));
    /* only the new one counts as failing */
    cr_assert(clk_test_contains(r.proc.err, "ERROR: connleak: 1 leaked connection or double close"),
              "one failing finding:\n%s", r.proc.err);
    cr_assert(clk_test_contains(r.proc.err, "1 finding(s) baselined (reported, not failing)"), "%s", r.proc.err);
    clk_test_run_free(&r);
}

Test(baseline, disappeared_known_leak_is_mentioned, TIMEOUT)
{
    char *base = write_baseline(ARGS("cache", "session"), 0);
    json_t *b = load_baseline(base);
    cr_assert_eq(json_array_size(json_object_get(b, "fingerprints")), 2, "two entries: %s", clk_test_dump(b));
    char want[256];
    snprintf(want, sizeof want, "baselined finding no longer seen: leak sqlite opened by open_cache (%s)",
             clk_test_str(baseline_entry(b, "open_cache"), "fingerprint"));
    json_decref(b);

    clk_test_run r;
    policy_run(ARGS("--baseline", base), ARGS("session"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    cr_assert(policy_note(r.report, want), "a note \"%s\"" CLK_CTX_FMT, want, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, want), "the text report says \"%s\":\n%s", want, r.proc.err);
    cr_assert(!clk_test_contains(r.proc.err, "opened by open_session ("), "open_session is still seen:\n%s",
              r.proc.err);
    clk_test_run_free(&r);
}

Test(baseline, report_on_a_json_report, TIMEOUT)
{
    char *base = write_baseline(ARGS("cache"), 0);
    clk_test_run r;
    policy_run(NULL, ARGS("cache", "double-close"), NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);

    clk_test_proc p;
    policy_cli(ARGS("report", "--baseline", base, r.json_path), &p);
    cr_assert_eq(p.status, 23, "the double close is new: exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "1 finding(s) baselined (reported, not failing)"), "%s", p.err);
    clk_test_proc_free(&p);

    /* a baseline written by `report` from the JSON equals one written by the run */
    char *base2 = policy_path("from-report.json");
    policy_cli(ARGS("report", "--quiet", "--write-baseline", base2, r.json_path), &p);
    cr_assert_eq(p.status, 0, "--write-baseline exits 0: exit %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    policy_cli(ARGS("report", "--baseline", base2, r.json_path), &p);
    cr_assert_eq(p.status, 0, "everything known: exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "2 finding(s) baselined (reported, not failing)"), "%s", p.err);
    clk_test_proc_free(&p);

    json_t *b1 = load_baseline(base), *b2 = load_baseline(base2);
    cr_assert_str_eq(clk_test_str(baseline_entry(b1, "open_cache"), "fingerprint"),
                     clk_test_str(baseline_entry(b2, "open_cache"), "fingerprint"),
                     "fingerprints survive the JSON round trip");
    json_t *dc = baseline_entry(b2, "open_for_twice");
    cr_assert(dc && !strcmp(clk_test_str(dc, "kind"), "double_close"), "double closes are recorded: %s",
              clk_test_dump(b2));
    json_decref(b1);
    json_decref(b2);
    clk_test_run_free(&r);
}

/* One word in every format for a finding the baseline knows: "baselined" (issue 15), never "known". */
Test(baseline, one_vocabulary_across_formats, TIMEOUT)
{
    char *base = write_baseline(ARGS("cache"), 0);
    clk_test_run r;
    policy_run(NULL, ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    static const char *const formats[] = {"text", "github", "junit", "html"};
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        char *out = policy_path(formats[i]);
        clk_test_proc p;
        policy_cli(ARGS("report", "--quiet", "--baseline", base, "--format", formats[i], "--output", out, r.json_path), &p);
        cr_assert_eq(p.status, 0, "%s: exit %d\n%s", formats[i], p.status, clk_test_excerpt(p.err));
        clk_test_proc_free(&p);
        size_t n = 0;
        char *text = clk_test_read_file(out, &n);
        cr_assert_not_null(text, "%s: no output at %s", formats[i], out);
        cr_assert(clk_test_contains(text, "baselined"), "%s says baselined:\n%s", formats[i], clk_test_excerpt(text));
        cr_assert(!clk_test_contains(text, "known (baseline)") && !clk_test_contains(text, "known in the baseline"),
                  "%s uses another word:\n%s", formats[i], clk_test_excerpt(text));
        free(text);
        free(out);
    }
    clk_test_run_free(&r);
}

Test(baseline, double_close_known, TIMEOUT)
{
    char *base = write_baseline(ARGS("double-close"), 0);
    clk_test_run r;
    policy_run(ARGS("--baseline", base), ARGS("double-close"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "double_closes", 1);
    clk_assert_summary(&r, "baselined", 1);
    clk_test_run_free(&r);
}

Test(baseline, suppressed_findings_are_not_recorded, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:open_session\n");
    char *base = policy_path("baseline.json");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp, "--write-baseline", base), ARGS("cache", "session"), NULL, &r);
    clk_assert_status(&r, 0);
    clk_test_run_free(&r);
    json_t *b = load_baseline(base);
    cr_assert_eq(json_array_size(json_object_get(b, "fingerprints")), 1, "only open_cache: %s", clk_test_dump(b));
    cr_assert_not_null(baseline_entry(b, "open_cache"), "%s", clk_test_dump(b));
    json_decref(b);
}

Test(baseline, written_atomically_and_deterministically, TIMEOUT)
{
    char *base = write_baseline(ARGS("cache", "session", "double-close"), 0);
    char *first = clk_test_read_file(base, NULL);
    cr_assert(first && strlen(first) && first[strlen(first) - 1] == '\n', "ends with a newline");
    /* update in place: read as the baseline, rewritten by the same run */
    clk_test_run r;
    policy_run(ARGS("--baseline", base, "--write-baseline", base), ARGS("double-close", "session", "cache"), NULL, &r);
    clk_assert_status(&r, 0);
    clk_test_run_free(&r);
    char *second = clk_test_read_file(base, NULL);
    cr_assert_str_eq(first, second, "the same findings give the same bytes");
    struct stat st;
    cr_assert_eq(stat(base, &st), 0);
    cr_assert(st.st_mode & 0044, "readable by others as any file is (mode %o)", st.st_mode & 0777);
    DIR *d = opendir(policy_dir());
    struct dirent *de;
    while ((de = readdir(d)))
        cr_assert(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "baseline.json"),
                  "no temporary file left behind: %s", de->d_name);
    closedir(d);
    free(first);
    free(second);
}

Test(baseline, unwritable_path, TIMEOUT)
{
    char *base = policy_path("no-such-dir/baseline.json");
    clk_test_run r;
    policy_run(ARGS("--write-baseline", base), ARGS("clean"), NULL, &r);
    policy_assert_config_error(r.proc.status, r.proc.err, "unwritable baseline");
    cr_assert(clk_test_contains(r.proc.err, "cannot write baseline") && clk_test_contains(r.proc.err, base), "%s",
              r.proc.err);
    clk_test_run_free(&r);
}

/* `connleak report --baseline FILE` over a leaking JSON report: status and stderr. */
static void bad_baseline(const char *content, const char *why_part)
{
    char *base = content ? policy_write("bad.json", content) : policy_path("missing.json");
    char *input = policy_path("in.json");
    clk_test_run r;
    policy_run(NULL, ARGS("cache"), NULL, &r);
    cr_assert_eq(clk_test_write_file(input, r.json_text, strlen(r.json_text)), 0);
    clk_test_run_free(&r);
    clk_test_proc p;
    policy_cli(ARGS("report", "--baseline", base, input), &p);
    policy_assert_config_error(p.status, p.err, why_part);
    cr_assert_eq(clk_test_count_lines(p.err), 1, "one line:\n%s", p.err);
    cr_assert(clk_test_contains(p.err, base) && clk_test_contains(p.err, why_part), "want '%s':\n%s", why_part, p.err);
    clk_test_proc_free(&p);
}

Test(baseline, unreadable_or_corrupt, TIMEOUT)
{
    bad_baseline(NULL, "cannot read baseline");
    bad_baseline("{\"version\": 1, \"fingerprints\": [", "not valid JSON");
    bad_baseline("[1, 2]", "not a connleak baseline");
    bad_baseline("{\"version\": 1, \"fingerprints\": {}}", "not a connleak baseline");
    bad_baseline("{\"version\": 2, \"fingerprints\": []}", "version 2");
    bad_baseline("{\"version\": 1, \"fingerprints\": [{\"kind\": \"leak\"}]}", "entry 1");
}

Test(baseline, hand_written_fingerprint_list, TIMEOUT)
{
    clk_test_run r;
    policy_run(NULL, ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    char text[256];
    snprintf(text, sizeof text, "{\"version\": 1, \"fingerprints\": [\"%s\"]}\n",
             clk_test_str(policy_entry(r.report, "leaks", "open_cache"), "fingerprint"));
    clk_test_run_free(&r);
    char *base = policy_write("hand.json", text);
    policy_run(ARGS("--baseline", base), ARGS("cache"), NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "baselined", 1);
    clk_test_run_free(&r);
}
