/* suppress_test.c — suppressions: what they match (function, file, module; globs and anchors), what they change, and bad files. */
#include <stdio.h>
#include <string.h>

#include "policy.h"

/* ---- through `connleak run` ---- */

Test(suppress, suppressed_leak_does_not_fail_and_is_counted, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:open_cache\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "suppressed", 1);
    clk_assert_summary(&r, "leaks", 0);
    cr_assert_eq(policy_count(r.report, "leaks"), 0, "no leak should be listed" CLK_CTX_FMT, CLK_CTX(&r));
    json_t *s = policy_entry(r.report, "suppressed", "open_cache");
    cr_assert_not_null(s, "the leak should be listed under \"suppressed\"" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_str(s, "kind"), "leak");
    cr_assert(policy_note(r.report, "suppression 'leak:open_cache' matched 1"),
              "a note should say which suppression matched how often" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(clk_test_contains(r.proc.err, "1 suppressed"), "summary line:\n%s", r.proc.err);
    clk_test_run_free(&r);
}

Test(suppress, by_function_leaves_the_other_leak, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:open_cache\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache", "session"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "suppressed", 1);
    cr_assert_not_null(policy_entry(r.report, "leaks", "open_session"), "open_session still leaks" CLK_CTX_FMT,
                       CLK_CTX(&r));
    cr_assert_not_null(policy_entry(r.report, "suppressed", "open_cache"), "open_cache suppressed" CLK_CTX_FMT,
                       CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* One run per pattern: `modes` leak from two places; `pattern` must suppress exactly the one opened by `gone`. */
static void suppresses_only(const char *pattern, const char *const *modes, const char *gone, const char *kept)
{
    char text[256];
    snprintf(text, sizeof text, "%s\n", pattern);
    char *supp = policy_write("s.supp", text);
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), modes, NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    cr_assert_eq(clk_test_summary(r.report, "suppressed"), 1, "%s: one suppressed" CLK_CTX_FMT, pattern,
                 CLK_CTX(&r));
    cr_assert_not_null(policy_entry(r.report, "suppressed", gone), "%s should suppress %s" CLK_CTX_FMT, pattern, gone,
                       CLK_CTX(&r));
    cr_assert_not_null(policy_entry(r.report, "leaks", kept), "%s should leave %s" CLK_CTX_FMT, pattern, kept,
                       CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(suppress, by_file, TIMEOUT)
{
    suppresses_only("leak:fx_policy_other.c", ARGS("cache", "other"), "open_elsewhere", "open_cache");
    /* anchored: the base name of the absolute path */
    suppresses_only("leak:^fx_policy_other.c$", ARGS("cache", "other"), "open_elsewhere", "open_cache");
    suppresses_only("leak:suites/policy/fx_policy_o*", ARGS("cache", "other"), "open_elsewhere", "open_cache");
}

Test(suppress, by_module, TIMEOUT)
{
    suppresses_only("leak:libfxpolicyplug.so", ARGS("cache", "plugin"), "plugin_open", "open_cache");
    suppresses_only("leak:^libfxpolicyplug*$", ARGS("cache", "plugin"), "plugin_open", "open_cache");
}

Test(suppress, by_function_glob, TIMEOUT)
{
    suppresses_only("leak:^open_ses*", ARGS("cache", "session"), "open_session", "open_cache");
    suppresses_only("leak:*ession$", ARGS("cache", "session"), "open_session", "open_cache");
}

Test(suppress, comments_blank_lines_and_whitespace, TIMEOUT)
{
    char *supp = policy_write("s.supp", "# known leaks of the cache layer\n"
                                        "\n"
                                        "   \t\n"
                                        "  # indented comment\n"
                                        "  leak:open_cache  \r\n"
                                        "leak :  open_session\t\n"
                                        "# the end, no final newline\n"
                                        "double_close:close_twice");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache", "session"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "suppressed", 2);
    cr_assert(policy_note(r.report, "suppression 'leak:open_cache' matched 1") && policy_note(r.report, "s.supp:5)"),
              "the note should name the suppression and its line" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(policy_note(r.report, "suppression 'leak:open_session' matched 1") && policy_note(r.report, "s.supp:6)"),
              "spaces around the kind and pattern are trimmed" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(suppress, connleak_options_suppressions, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:open_cache\n");
    char env[4096];
    snprintf(env, sizeof env, "CONNLEAK_OPTIONS=stack_depth=16:suppressions=%s", supp);
    clk_test_run r;
    policy_run(NULL, ARGS("cache"), ARGS(env), &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "suppressed", 1);
    clk_test_run_free(&r);
}

Test(suppress, double_close_by_any_of_its_stacks, TIMEOUT)
{
    const char *hit[] = {"double_close:close_twice", "double_close:close_once", "double_close:open_for_twice"};
    for (size_t i = 0; i < sizeof hit / sizeof *hit; i++) {
        char text[128];
        snprintf(text, sizeof text, "%s\n", hit[i]);
        char *supp = policy_write("s.supp", text);
        clk_test_run r;
        policy_run(ARGS("--suppressions", supp), ARGS("double-close"), NULL, &r);
        clk_assert_report(&r);
        cr_assert_eq(r.proc.status, 0, "%s: exit %d" CLK_CTX_FMT, hit[i], r.proc.status, CLK_CTX(&r));
        clk_assert_summary(&r, "double_closes", 0);
        clk_assert_summary(&r, "suppressed", 1);
        json_t *s = policy_entry(r.report, "suppressed", "close_twice");
        cr_assert(s && !strcmp(clk_test_str(s, "kind"), "double_close"), "%s: listed as a suppressed double close" CLK_CTX_FMT,
                  hit[i], CLK_CTX(&r));
        clk_test_run_free(&r);
    }
}

Test(suppress, kind_must_match, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:close_twice\nunknown_close:close_twice\nleak:open_for_twice\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("double-close"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "double_closes", 1);
    clk_assert_summary(&r, "suppressed", 0);
    clk_test_run_free(&r);
}

Test(suppress, unknown_close, TIMEOUT)
{
    char *supp = policy_write("s.supp", "unknown_close:close_never_seen\n");
    clk_test_run r;
    clk_test_connleak_fixture(ARGS("--suppressions", supp), "fx_sqlite", ARGS("unknown-close"), &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "suppressed", 1);
    json_t *s = policy_entry(r.report, "suppressed", "close_never_seen");
    cr_assert(s && !strcmp(clk_test_str(s, "kind"), "unknown_close"), "listed as a suppressed unknown close" CLK_CTX_FMT,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(suppress, verbose_lists_suppressed, TIMEOUT)
{
    char *supp = policy_write("s.supp", "leak:open_cache\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache", "session"), NULL, &r);
    cr_assert(!clk_test_contains(r.proc.err, "(suppressed)") && !clk_test_contains(r.proc.err, "#0 open_cache"),
              "without --verbose a suppressed leak is not shown:\n%s", r.proc.err);
    clk_test_run_free(&r);
    policy_run(ARGS("--verbose", "--suppressions", supp), ARGS("cache", "session"), NULL, &r);
    cr_assert(clk_test_contains(r.proc.err, "(suppressed)") && clk_test_contains(r.proc.err, "#0 open_cache"),
              "--verbose lists the suppressed leak:\n%s", r.proc.err);
    clk_assert_status(&r, 23);
    clk_test_run_free(&r);
}

/* ---- matching rules, through `connleak report` on a hand-made report ---- */

static const char frames_report[] =
    "{\"version\": 1, \"command\": [\"app\"],"
    " \"summary\": {\"processes\": 1, \"connects\": 2, \"closes\": 2},"
    " \"leaks\": [{\"backend\": \"sqlite\", \"target\": \"/tmp/app.db\", \"pids\": [7], \"count\": 1,"
    "   \"opened_at\": ["
    "     {\"function\": \"open_cache\", \"file\": \"/src/app/cache.c\", \"line\": 88, \"module\": \"/usr/bin/app\", \"offset\": \"0x1a2b\"},"
    "     {\"function\": \"main\", \"file\": \"/src/app/main.c\", \"line\": 5, \"module\": \"/usr/bin/app\", \"offset\": \"0x100\"}]}],"
    " \"left_field_closes\": [{\"backend\": \"postgres\", \"kind\": \"double_close\", \"pids\": [7], \"count\": 1,"
    "   \"closed_at\": [{\"function\": \"closer_again\", \"file\": \"/src/db/pool.c\", \"line\": 9, \"module\": \"/usr/lib/libdb.so.1\", \"offset\": \"0x10\"}],"
    "   \"first_closed_at\": [{\"function\": \"closer_first\", \"file\": \"/src/db/pool.c\", \"line\": 7, \"module\": \"/usr/lib/libdb.so.1\", \"offset\": \"0x20\"}],"
    "   \"opened_at\": [{\"function\": \"opener\", \"file\": \"/src/db/conn.c\", \"line\": 3, \"module\": \"/usr/lib/libdb.so.1\", \"offset\": \"0x30\"}]}]}\n";

/* `connleak report --suppressions` over frames_report with one line: how many findings it suppressed. */
static long long suppressed_by(const char *line)
{
    char *input = policy_write("in.json", frames_report);
    char text[256];
    snprintf(text, sizeof text, "%s\n", line);
    char *supp = policy_write("s.supp", text);
    char *out = policy_path("out.json");
    clk_test_proc p;
    policy_cli(ARGS("report", "--quiet", "--suppressions", supp, "--json", out, input), &p);
    cr_assert(p.status == 0 || p.status == 23, "%s: report exit %d\n%s", line, p.status, clk_test_excerpt(p.err));
    char *json = clk_test_read_file(out, NULL);
    cr_assert_not_null(json, "%s: no report written\n%s", line, clk_test_excerpt(p.err));
    json_t *rep = json_loads(json, 0, NULL);
    long long n = clk_test_summary(rep, "suppressed");
    json_decref(rep);
    free(json);
    clk_test_proc_free(&p);
    return n;
}

Test(suppress, matching_rules, TIMEOUT)
{
    static const struct {
        const char *line;
        int suppressed;
    } cases[] = {
        {"leak:open_cache", 1},          /* function */
        {"leak:pen_cach", 1},            /* a substring, as in LSan */
        {"leak:^open_cache$", 1},        /* anchored both ends */
        {"leak:^pen_cache", 0},          /* ^ anchors the start */
        {"leak:open_cach$", 0},          /* $ anchors the end */
        {"leak:^cache$", 0},             /* no name is exactly "cache" */
        {"leak:open_*", 1},              /* glob */
        {"leak:o*n_c*e", 1},
        {"leak:^o*e$", 1},
        {"leak:close_*", 0},
        {"leak:?pen_cache", 0},          /* only * is special */
        {"leak:cache.c", 1},             /* file, substring of the path */
        {"leak:^cache.c$", 1},           /* file base name */
        {"leak:^/src/app/*.c$", 1},      /* file full path */
        {"leak:^src", 0},                /* the full path starts with / */
        {"leak:^app$", 1},               /* module base name */
        {"leak:/usr/bin/", 1},           /* module path */
        {"leak:main", 1},                /* any frame, not only the first */
        {"leak:*", 1},
        {"leak:closer_again", 0},        /* another finding's stack */
        {"double_close:closer_again", 1}, /* closed again at */
        {"double_close:closer_first", 1}, /* first closed at */
        {"double_close:^opener$", 1},    /* opened at */
        {"double_close:libdb.so", 1},
        {"double_close:open_cache", 0},
        {"unknown_close:closer_again", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long long n = suppressed_by(cases[i].line);
        cr_expect_eq(n, cases[i].suppressed, "'%s' suppressed %lld finding(s), expected %d", cases[i].line, n,
                     cases[i].suppressed);
    }
}

Test(suppress, first_matching_line_takes_the_hit, TIMEOUT)
{
    char *input = policy_write("in.json", frames_report);
    char *supp = policy_write("s.supp", "leak:open_*\nleak:open_cache\ndouble_close:opener\nunknown_close:nothing\n");
    char *out = policy_path("out.json");
    clk_test_proc p;
    policy_cli(ARGS("report", "--suppressions", supp, "--json", out, input), &p);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    char *json = clk_test_read_file(out, NULL);
    json_t *rep = json_loads(json, 0, NULL);
    cr_assert(policy_note(rep, "suppression 'leak:open_*' matched 1"), "%s", json);
    cr_assert(policy_note(rep, "suppression 'double_close:opener' matched 1"), "%s", json);
    cr_assert(!policy_note(rep, "leak:open_cache") && !policy_note(rep, "nothing"), "unused lines get no note: %s", json);
    cr_assert(clk_test_contains(p.err, "connleak: note: suppression 'leak:open_*' matched 1"), "text:\n%s", p.err);
    json_decref(rep);
    free(json);
    clk_test_proc_free(&p);
}

/* ---- bad suppression files ---- */

static void malformed(const char *bad_line, const char *why_part)
{
    char text[512];
    snprintf(text, sizeof text, "# header\n\nleak:open_cache\n%s\nleak:open_session\n", bad_line);
    char *supp = policy_write("bad.supp", text);
    char *input = policy_write("in.json", frames_report);
    char want[4096];
    snprintf(want, sizeof want, "connleak: %s:4: ", supp);

    /* report over a leaking input: the configuration error, not the findings status */
    clk_test_proc p;
    policy_cli(ARGS("report", "--suppressions", supp, input), &p);
    policy_assert_config_error(p.status, p.err, bad_line);
    cr_assert(clk_test_contains(p.err, want), "'%s': the error should start with \"%s\":\n%s", bad_line, want, p.err);
    cr_assert(clk_test_contains(p.err, why_part), "'%s': the error should say '%s':\n%s", bad_line, why_part, p.err);
    cr_assert_eq(clk_test_count_lines(p.err), 1, "'%s': one line on stderr:\n%s", bad_line, p.err);
    clk_test_proc_free(&p);

    /* run of a clean command */
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("clean"), NULL, &r);
    policy_assert_config_error(r.proc.status, r.proc.err, bad_line);
    cr_assert(clk_test_contains(r.proc.err, want), "'%s': run should print \"%s\":\n%s", bad_line, want, r.proc.err);
    clk_test_run_free(&r);
}

Test(suppress, malformed_line_names_file_and_line, TIMEOUT)
{
    malformed("leak open_cache", "KIND:PATTERN");
    malformed("leek:open_cache", "unknown suppression kind 'leek'");
    malformed("leak:", "empty pattern");
    malformed("  double_close:   ", "empty pattern");
    malformed("leak:^$", "empty pattern");
    malformed(":open_cache", "unknown suppression kind ''");
}

Test(suppress, unreadable_file, TIMEOUT)
{
    char *missing = policy_path("no-such.supp");
    char *input = policy_write("in.json", frames_report);
    clk_test_proc p;
    policy_cli(ARGS("report", "--suppressions", missing, input), &p);
    policy_assert_config_error(p.status, p.err, "missing file");
    cr_assert_eq(clk_test_count_lines(p.err), 1, "one line:\n%s", p.err);
    cr_assert(clk_test_contains(p.err, missing) && clk_test_contains(p.err, "No such file"), "%s", p.err);
    clk_test_proc_free(&p);

    policy_cli(ARGS("report", "--suppressions", policy_dir(), input), &p); /* a directory */
    policy_assert_config_error(p.status, p.err, "directory");
    cr_assert_eq(clk_test_count_lines(p.err), 1, "one line:\n%s", p.err);
    cr_assert(clk_test_contains(p.err, "cannot read suppressions file"), "%s", p.err);
    clk_test_proc_free(&p);
}

Test(suppress, empty_file_suppresses_nothing, TIMEOUT)
{
    char *supp = policy_write("s.supp", "# nothing yet\n");
    clk_test_run r;
    policy_run(ARGS("--suppressions", supp), ARGS("cache"), NULL, &r);
    clk_assert_report(&r);
    clk_assert_status(&r, 23);
    clk_assert_summary(&r, "suppressed", 0);
    clk_test_run_free(&r);
}
