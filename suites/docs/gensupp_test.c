/* gensupp_test.c — --gen-suppressions: one rule per finding after the report (stderr, or =FILE); fed back with
 * --suppressions they suppress every finding (status 0), and each rule alone suppresses its finding and no other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs_common.h"

#define TIMEOUT .timeout = 240

/* The rule lines of a generated file (not the comments), each malloc'd; returns how many. */
static int rules_of(const char *text, char **rules, int cap)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[0] != '#' && n < cap) {
            rules[n] = strndup(p, len);
            n++;
        }
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

static long long suppressed(const clk_test_run *r)
{
    return clk_test_summary(r->report, "suppressed");
}

/* 2 distinct leaks (open_alpha_cache, open_beta_store, both through open_db) and a double close. */
Test(gen_suppressions, rules_suppress_exactly_their_findings, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *rules_path = clk_test_path(dir, "generated.supp");
    char opt[4200];
    snprintf(opt, sizeof opt, "--gen-suppressions=%s", rules_path);
    clk_test_run r;
    clk_test_connleak(ARGS(opt), ARGS(FX_DOCS, "gen"), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 2);
    clk_assert_summary(&r, "double_closes", 1);
    clk_test_run_free(&r);

    char *text = clk_test_read_file(rules_path, NULL);
    cr_assert_not_null(text, "no %s written", rules_path);
    char *rules[16];
    int n = rules_of(text, rules, 16);
    cr_assert_eq(n, 3, "want 3 rules, one per finding:\n%s", text);
    cr_assert(clk_test_contains(text, "leak:^open_alpha_cache$") && clk_test_contains(text, "leak:^open_beta_store$"),
              "the leaks' rules should name their own openers (open_db is shared):\n%s", text);
    cr_assert(clk_test_contains(text, "double_close:^close_again$"), "double close rule:\n%s", text);

    /* all of them: every finding suppressed, status 0 */
    clk_test_connleak(ARGS("--suppressions", rules_path), ARGS(FX_DOCS, "gen"), NO_DETECTOR, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_eq(suppressed(&r), 3, "%s", clk_test_dump(r.report));
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_test_run_free(&r);

    /* each alone: its finding, and no other */
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "one%d.supp", i);
        char line[1024];
        snprintf(line, sizeof line, "%s\n", rules[i]);
        char *one = docs_write(dir, name, line);
        clk_test_connleak(ARGS("--suppressions", one), ARGS(FX_DOCS, "gen"), NO_DETECTOR, &r);
        clk_assert_status(&r, 23);
        clk_assert_report(&r);
        cr_assert_eq(suppressed(&r), 1, "rule '%s' alone should suppress one finding: %s", rules[i],
                     clk_test_dump(r.report));
        json_t *s = json_array_get(json_object_get(r.report, "suppressed"), 0);
        const char *kind = clk_test_str(s, "kind");
        cr_assert(!strncmp(rules[i], kind, strlen(kind)) && rules[i][strlen(kind)] == ':',
                  "rule '%s' suppressed a %s", rules[i], kind);
        long long left = clk_test_summary(r.report, "leaks") + clk_test_summary(r.report, "double_closes");
        cr_assert_eq(left, 2, "rule '%s': the two other findings should remain: %s", rules[i], clk_test_dump(r.report));
        clk_test_run_free(&r);
        free(one);
    }
    clk_test_rmtree(dir);
}

/* Without =FILE the rules follow the report on stderr; every kind (an unknown close, a thread's leak, PostgreSQL's)
 * gets a rule that works. */
Test(gen_suppressions, on_stderr_after_the_report, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(ARGS("--gen-suppressions"), ARGS(FX_DOCS, "all"), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    const char *err = r.proc.err;
    const char *summary = strstr(err, "SUMMARY: connleak:"), *gen = strstr(err, "# connleak --gen-suppressions:");
    cr_assert(summary && gen && gen > summary, "the rules should come after the report:\n%s", clk_test_excerpt(err));
    cr_assert(clk_test_contains(gen, "unknown_close:^close_stranger$"), "%s", clk_test_excerpt(gen));
    char *dir = clk_test_mkdtemp();
    char *path = docs_write(dir, "from-stderr.supp", gen);
    long long findings = clk_test_summary(r.report, "leaks") + clk_test_summary(r.report, "double_closes") +
                         clk_test_summary(r.report, "unknown_closes");
    clk_test_run_free(&r);

    clk_test_connleak(ARGS("--suppressions", path), ARGS(FX_DOCS, "all"), NO_DETECTOR, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_eq(suppressed(&r), findings, "every finding should be suppressed: %s", clk_test_dump(r.report));
    cr_assert_eq(json_array_size(json_object_get(r.report, "leaks")) +
                     json_array_size(json_object_get(r.report, "left_field_closes")),
                 0, "%s", clk_test_dump(r.report));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* Findings that share a stack (one line, two targets: one fingerprint) share one rule, written once after both
 * descriptions and said to be theirs in plain words; the other leak keeps a rule of its own. */
Test(gen_suppressions, one_rule_for_findings_that_share_a_stack, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *rules_path = clk_test_path(dir, "generated.supp");
    char opt[4200];
    snprintf(opt, sizeof opt, "--gen-suppressions=%s", rules_path);
    clk_test_run r;
    clk_test_connleak(ARGS(opt), ARGS(FX_DOCS, "targets"), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "leaks", 3);
    json_t *leaks = json_object_get(r.report, "leaks");
    cr_assert_eq(json_array_size(leaks), 3, "three findings" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);

    char *text = clk_test_read_file(rules_path, NULL);
    cr_assert_not_null(text, "no %s written", rules_path);
    char *rules[16];
    int n = rules_of(text, rules, 16);
    cr_assert_eq(n, 2, "want 2 rules, each once:\n%s", text);
    cr_assert(strcmp(rules[0], rules[1]) != 0, "a rule written twice:\n%s", text);
    cr_assert(clk_test_contains(text, "leak:^open_settings$"),
              "the shared rule names the name the two findings alone share (open_db is open_alpha_cache's too):\n%s",
              text);
    cr_assert(clk_test_contains(text, "leak:^open_alpha_cache$"), "open_alpha_cache's own rule:\n%s", text);
    cr_assert(clk_test_contains(text, "# connleak --gen-suppressions: 2 rules for 3 findings;"), "header:\n%s", text);
    cr_assert(clk_test_contains(text, "# (one rule for these 2 leaks: the names a rule can use do not tell them "
                                      "apart)"), "the shared rule's comment:\n%s", text);
    cr_assert(!clk_test_contains(text, "in no other"), "no double negative:\n%s", text);
    const char *settings = strstr(text, "file:settings"), *memory = strstr(text, "to :memory:, opened at open_db <- "
                                                                                 "open_settings");
    const char *shared = strstr(text, "leak:^open_settings$");
    cr_assert(settings && memory && settings < shared && memory < shared,
              "both findings are described before their rule:\n%s", text);

    clk_test_connleak(ARGS("--suppressions", rules_path), ARGS(FX_DOCS, "targets"), NO_DETECTOR, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_eq(suppressed(&r), 3, "%s", clk_test_dump(r.report));
    clk_test_run_free(&r);
    for (int i = 0; i < n; i++)
        free(rules[i]);
    clk_test_rmtree(dir);
}

/* connleak report takes it too; a clean run gets a header and no rules; a finding already suppressed gets none. */
Test(gen_suppressions, report_clean_and_suppressed, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(ARGS("--gen-suppressions=all"), ARGS(FX_DOCS, "clean"), NO_DETECTOR, &r);
    clk_assert_status(&r, 0);
    cr_assert(clk_test_contains(r.proc.err, "# connleak --gen-suppressions: 0 rules"), "%s",
              clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);

    char *dir = clk_test_mkdtemp();
    char *supp = docs_write(dir, "alpha.supp", "leak:open_alpha_cache\n");
    clk_test_connleak(ARGS("--suppressions", supp), ARGS(FX_DOCS, "gen"), NO_DETECTOR, &r);
    clk_assert_report(&r);
    char *out = clk_test_path(dir, "from-report.supp");
    char opt[4200];
    snprintf(opt, sizeof opt, "--gen-suppressions=%s", out);
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "--quiet", "--suppressions", supp, opt, r.json_path), NO_DETECTOR,
                  NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report: %d %s", p.status, p.err);
    clk_test_proc_free(&p);
    char *text = clk_test_read_file(out, NULL);
    char *rules[8];
    cr_assert_eq(rules_of(text, rules, 8), 2, "the suppressed leak gets no rule:\n%s", text);
    cr_assert(!clk_test_contains(text, "open_alpha_cache$"), "%s", text);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(gen_suppressions, documented, .timeout = 60)
{
    docs_assert_documented("--gen-suppressions", "--gen-suppressions[=FILE]", "\\-\\-gen\\-suppressions",
                           "`--gen-suppressions=FILE`");
}
