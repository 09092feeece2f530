/* sarif_test.c — --format sarif: golden files, every field SARIF 2.1.0 and code scanning require, the results cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "formats_common.h"

#define TIMEOUT .timeout = 90

static const char *const rule_ids[] = {"connleak/leak", "connleak/double-close", "connleak/unknown-close"};
static const char *const rule_levels[] = {"error", "error", "warning"};

static json_t *parse(const struct fmt_run *r)
{
    json_error_t err;
    json_t *doc = json_loads(r->out, 0, &err);
    cr_assert_not_null(doc, "not JSON: %s (line %d)\n%s", err.text, err.line, clk_test_excerpt(r->out));
    return doc;
}

/* json_object_get along a path of keys; array indexes as "[n]". */
static json_t *at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = k[0] == '[' ? json_array_get(j, strtoul(k + 1, NULL, 10)) : json_object_get(j, k);
    return j;
}

static const char *str_at(json_t *j, const char *path)
{
    json_t *v = at(j, path);
    cr_assert(json_is_string(v), "%s is not a string in %s", path, clk_test_dump(j));
    return json_string_value(v);
}

static int is_hex32(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* A location that code scanning accepts: an artifact URI, relative only against %SRCROOT%, lines from 1. */
static void check_physical(json_t *loc, const char *what)
{
    json_t *phys = json_object_get(loc, "physicalLocation");
    cr_assert(json_is_object(phys), "%s: no physicalLocation: %s", what, clk_test_dump(loc));
    const char *uri = str_at(phys, "artifactLocation.uri");
    cr_assert(uri[0], "%s: empty uri", what);
    json_t *base = at(phys, "artifactLocation.uriBaseId");
    if (base) {
        cr_assert_str_eq(json_string_value(base), "%SRCROOT%", "%s", what);
        cr_assert(uri[0] != '/' && !strstr(uri, "://"), "%s: a relative uri is expected with uriBaseId: %s", what, uri);
    } else {
        cr_assert(!strncmp(uri, "file:///", 8), "%s: an absolute uri without base is a file: URI: %s", what, uri);
    }
    cr_assert(!strpbrk(uri, " ,:<>\"'\\") || !strncmp(uri, "file:", 5), "%s: uri not percent-encoded: %s", what, uri);
    json_t *line = at(phys, "region.startLine");
    if (line)
        cr_assert(json_is_integer(line) && json_integer_value(line) >= 1, "%s: startLine < 1", what);
}

/* Everything the 2.1.0 schema requires and code scanning reads, on any connleak SARIF document. */
static void check_document(json_t *doc, size_t want_results)
{
    cr_assert_str_eq(str_at(doc, "$schema"), "https://json.schemastore.org/sarif-2.1.0.json");
    cr_assert_str_eq(str_at(doc, "version"), "2.1.0");
    cr_assert_eq(json_array_size(json_object_get(doc, "runs")), 1);
    json_t *run = at(doc, "runs.[0]");
    json_t *driver = at(run, "tool.driver");
    cr_assert_str_eq(str_at(driver, "name"), "connleak");
    cr_assert_str_eq(str_at(driver, "version"), CLK_PROJECT_VERSION);
    cr_assert(!strncmp(str_at(driver, "informationUri"), "https://", 8));
    json_t *rules = json_object_get(driver, "rules");
    cr_assert_eq(json_array_size(rules), 3, "%s", clk_test_dump(rules));
    for (size_t i = 0; i < 3; i++) {
        json_t *rule = json_array_get(rules, i);
        cr_assert_str_eq(str_at(rule, "id"), rule_ids[i]);
        cr_assert(str_at(rule, "shortDescription.text")[0] && str_at(rule, "fullDescription.text")[0] &&
                      str_at(rule, "help.text")[0],
                  "rule %s lacks a description or help", rule_ids[i]);
        cr_assert_str_eq(str_at(rule, "defaultConfiguration.level"), rule_levels[i]);
    }
    json_t *results = json_object_get(run, "results");
    cr_assert(json_is_array(results), "no results array");
    cr_assert_eq(json_array_size(results), want_results, "%zu results, expected %zu", json_array_size(results),
                 want_results);
    int relative = 0;
    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *res = json_array_get(results, i);
        const char *id = str_at(res, "ruleId");
        json_t *index = json_object_get(res, "ruleIndex");
        cr_assert(json_is_integer(index) && json_integer_value(index) >= 0 && json_integer_value(index) < 3,
                  "result %zu: bad ruleIndex", i);
        size_t ri = (size_t)json_integer_value(index);
        cr_assert_str_eq(id, rule_ids[ri], "result %zu: ruleId and ruleIndex disagree", i);
        cr_assert_str_eq(str_at(res, "level"), rule_levels[ri], "result %zu", i);
        cr_assert(str_at(res, "message.text")[0], "result %zu: empty message", i);
        json_t *locs = json_object_get(res, "locations");
        cr_assert_geq(json_array_size(locs), 1, "result %zu: code scanning needs a location", i);
        check_physical(json_array_get(locs, 0), "locations[0]");
        relative |= at(res, "locations.[0].physicalLocation.artifactLocation.uriBaseId") != NULL;
        json_t *steps = at(res, "codeFlows.[0].threadFlows.[0].locations");
        cr_assert_geq(json_array_size(steps), 1, "result %zu: no code flow", i);
        for (size_t s = 0; s < json_array_size(steps); s++)
            check_physical(at(json_array_get(steps, s), "location"), "a code-flow step");
        cr_assert(is_hex32(str_at(res, "partialFingerprints.connleak/v1")), "result %zu: fingerprint", i);
    }
    if (relative) {
        const char *root = str_at(run, "originalUriBaseIds.%SRCROOT%.uri");
        cr_assert(!strncmp(root, "file:///", 8) && root[strlen(root) - 1] == '/', "%%SRCROOT%% is %s", root);
    }
    cr_assert_eq(json_is_true(at(run, "invocations.[0].executionSuccessful")), 1);
}

/* The functions of a code flow's steps, space-separated, in order. */
static char *flow_functions(json_t *res)
{
    json_t *steps = at(res, "codeFlows.[0].threadFlows.[0].locations");
    size_t cap = 4096, n = 0;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_t *name = at(json_array_get(steps, i), "location.logicalLocations.[0].name");
        n += (size_t)snprintf(s + n, cap - n, "%s%s", n ? " " : "", name ? json_string_value(name) : "??");
    }
    return s;
}

static long long first_line(json_t *finding, const char *stack)
{
    return clk_test_int(json_array_get(json_object_get(finding, stack), 0), "line");
}

static long long line_of(json_t *loc)
{
    return json_integer_value(at(loc, "physicalLocation.region.startLine"));
}

/* ---- the fixture under `connleak run` ---- */

Test(sarif, fixture_golden, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("sarif", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("fixture.sarif.json", norm);
    free(norm);
    fmt_run_free(&r);
}

Test(sarif, fixture_fields, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("sarif", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    json_t *doc = parse(&r);
    check_document(doc, 3);
    json_t *results = at(doc, "runs.[0].results");
    json_t *leak = fmt_finding(&r, "leak", 0), *dc = fmt_finding(&r, "double_close", 0),
           *uc = fmt_finding(&r, "unknown_close", 0);
    cr_assert(leak && dc && uc, "the JSON report lacks a finding: %s", clk_test_dump(r.report));

    json_t *res = json_array_get(results, 0);
    cr_assert_str_eq(str_at(res, "ruleId"), "connleak/leak");
    char want[8192];
    snprintf(want, sizeof want,
             "sqlite connection to %s/odd & <name> \"q\" 'x'\t,:%%.db opened here is never closed (2 times)",
             r.dir);
    cr_assert_str_eq(str_at(res, "message.text"), want);
    cr_assert_str_eq(str_at(res, "locations.[0].physicalLocation.artifactLocation.uri"), "suites/formats/fx_formats.c");
    cr_assert_eq(line_of(at(res, "locations.[0]")), first_line(leak, "opened_at"));
    cr_assert_str_eq(str_at(res, "partialFingerprints.connleak/v1"), clk_test_str(leak, "fingerprint"),
                     "the fingerprint is the JSON report's");
    char *flow = flow_functions(res);
    cr_assert_str_eq(flow, "main mode_mixed leak_twice", "outermost caller first");
    free(flow);
    cr_assert_str_eq(str_at(res, "codeFlows.[0].threadFlows.[0].locations.[2].kinds.[0]"), "acquire");

    res = json_array_get(results, 1);
    cr_assert_str_eq(str_at(res, "ruleId"), "connleak/double-close");
    cr_assert_eq(line_of(at(res, "locations.[0]")), first_line(dc, "closed_at"), "located at the second close");
    cr_assert_eq(line_of(at(res, "relatedLocations.[0]")), first_line(dc, "opened_at"));
    cr_assert_eq(line_of(at(res, "relatedLocations.[1]")), first_line(dc, "first_closed_at"));
    cr_assert_str_eq(str_at(res, "partialFingerprints.connleak/v1"), clk_test_str(dc, "fingerprint"));
    flow = flow_functions(res);
    cr_assert_str_eq(flow, "main mode_mixed open_once main mode_mixed close_first main mode_mixed close_again",
                     "opened, first closed, closed again");
    free(flow);
    cr_assert(strstr(str_at(res, "message.text"), "opened by open_once, first closed by close_first"), "%s",
              str_at(res, "message.text"));

    res = json_array_get(results, 2);
    cr_assert_str_eq(str_at(res, "ruleId"), "connleak/unknown-close");
    cr_assert_str_eq(str_at(res, "level"), "warning");
    cr_assert_eq(line_of(at(res, "locations.[0]")), first_line(uc, "closed_at"));
    cr_assert_str_eq(str_at(res, "partialFingerprints.connleak/v1"), clk_test_str(uc, "fingerprint"));

    char root[4096];
    snprintf(root, sizeof root, "file://%s/", r.root);
    cr_assert_str_eq(str_at(doc, "runs.[0].originalUriBaseIds.%SRCROOT%.uri"), root);
    json_decref(doc);
    fmt_run_free(&r);
}

/* Every result's message.text of a run, one a line. */
static char *message_texts(json_t *doc)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    json_t *results = at(doc, "runs.[0].results");
    for (size_t i = 0; i < json_array_size(results); i++)
        fprintf(f, "%s\n", str_at(json_array_get(results, i), "message.text"));
    fclose(f);
    return p;
}

Test(sarif, identical_runs_give_identical_messages, TIMEOUT)
{
    /* the same command twice, on the same files: pids differ, messages must not (pids stay in the JSON) */
    char *dir = clk_test_mkdtemp();
    char *texts[2];
    long long pids[2];
    for (int i = 0; i < 2; i++) {
        struct fmt_run r;
        fmt_run_command("sarif", ARGS("--stack-depth", "3"), ARGS(FX_FORMATS, "mixed", dir), &r);
        fmt_assert_ran(&r, 23);
        json_t *doc = parse(&r);
        texts[i] = message_texts(doc);
        pids[i] = json_integer_value(at(fmt_finding(&r, "leak", 0), "pids.[0]"));
        cr_assert(strstr(texts[i], "never closed"), "no leak message: %s", texts[i]);
        json_decref(doc);
        fmt_run_free(&r);
    }
    cr_assert_neq(pids[0], pids[1], "two runs, two pids");
    cr_assert_str_eq(texts[0], texts[1], "message.text differs between identical runs");
    free(texts[0]);
    free(texts[1]);
    clk_test_rmtree(dir);
}

Test(sarif, clean_run_has_no_results, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("sarif", ARGS("clean"), &r);
    fmt_assert_ran(&r, 0);
    json_t *doc = parse(&r);
    check_document(doc, 0);
    json_decref(doc);
    fmt_run_free(&r);
}

/* ---- a hand-written report through `connleak report` ---- */

Test(sarif, synthetic_golden, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("sarif", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("synthetic.sarif.json", norm);
    free(norm);
    free(in);
    fmt_run_free(&r);
}

static json_t *result_with_rule_and_text(json_t *doc, const char *rule, const char *text_part)
{
    json_t *results = at(doc, "runs.[0].results");
    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *res = json_array_get(results, i);
        if (!strcmp(str_at(res, "ruleId"), rule) && strstr(str_at(res, "message.text"), text_part))
            return res;
    }
    cr_assert_fail("no %s result mentioning '%s'", rule, text_part);
    return NULL;
}

Test(sarif, synthetic_fields, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("sarif", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    json_t *doc = parse(&r);
    check_document(doc, 6); /* seven findings, one suppressed */
    cr_assert(!strstr(r.out, "ignored.db"), "a suppressed finding is not a result");
    cr_assert_str_eq(str_at(doc, "runs.[0].originalUriBaseIds.%SRCROOT%.uri"), "file:///src/app/");

    json_t *res = result_with_rule_and_text(doc, "connleak/leak", "app & <co>");
    cr_assert_str_eq(str_at(res, "message.text"), "sqlite connection to /tmp/app & <co> \"q\" 'x'.db opened here is "
                                                  "never closed (2 times, test db::opens_twice)");
    cr_assert_str_eq(str_at(res, "locations.[0].physicalLocation.artifactLocation.uri"), "src/cache.c");
    cr_assert_str_eq(str_at(res, "properties.test"), "db::opens_twice");

    /* the repository frame is the location, not the header outside it; the flow still shows the header */
    res = result_with_rule_and_text(doc, "connleak/leak", "checked out here is never returned");
    cr_assert_str_eq(str_at(res, "locations.[0].physicalLocation.artifactLocation.uri"), "src/server.c");
    cr_assert_eq(line_of(at(res, "locations.[0]")), 140);
    cr_assert_str_eq(str_at(res, "codeFlows.[0].threadFlows.[0].locations.[1].location.physicalLocation."
                                "artifactLocation.uri"),
                     "file:///usr/include/dbpool/pool.h");
    cr_assert_eq(json_is_true(at(res, "properties.checkout")), 1);

    /* a file name with ',' and ':' is percent-encoded */
    res = result_with_rule_and_text(doc, "connleak/leak", "/tmp/second.db");
    cr_assert_str_eq(str_at(res, "locations.[0].physicalLocation.artifactLocation.uri"), "src/we%2Cird%3Aname.c");

    /* no source file anywhere: the module is the location, without a line */
    res = result_with_rule_and_text(doc, "connleak/leak", "/tmp/line1");
    cr_assert_str_eq(str_at(res, "locations.[0].physicalLocation.artifactLocation.uri"), "build/libplugin.so");
    cr_assert_null(at(res, "locations.[0].physicalLocation.region"));
    cr_assert(strstr(str_at(res, "message.text"), "/tmp/line1\nline2\r\001%41 \xef\xbf\xbe.db"),
              "the target as it is: %s", str_at(res, "message.text"));
    cr_assert(strstr(str_at(res, "codeFlows.[0].threadFlows.[0].locations.[0].location.message.text"),
                     "./csu/relative.c:3"),
              "a file that cannot be located stays in the step's text");

    res = result_with_rule_and_text(doc, "connleak/double-close", ":memory:");
    cr_assert_eq(line_of(at(res, "locations.[0]")), 120);
    char *flow = flow_functions(res);
    cr_assert_str_eq(flow, "run_closes_twice open_cache run_closes_twice close_cache run_closes_twice close_again");
    free(flow);

    res = result_with_rule_and_text(doc, "connleak/unknown-close", "postgres connection closed here was never seen open");
    cr_assert_str_eq(str_at(res, "message.text"),
                     "postgres connection closed here was never seen open (3 times)");

    cr_assert_eq(json_integer_value(at(doc, "runs.[0].properties.summary.suppressed")), 1);
    cr_assert(strstr(str_at(doc, "runs.[0].invocations.[0].toolExecutionNotifications.[0].message.text"),
                     "signal 9"));
    cr_assert_null(at(doc, "runs.[0].properties.resultsTruncated"));
    json_decref(doc);
    free(in);
    fmt_run_free(&r);
}

/* Code scanning takes at most 25,000 results a run: the most important ones are kept and the cut is noted. */
Test(sarif, results_capped_at_25000, .timeout = 300)
{
    json_t *leaks = json_array();
    char fn[32];
    for (int i = 0; i < 25001; i++) {
        snprintf(fn, sizeof fn, "open_%d", i);
        json_array_append_new(leaks, json_pack("{s:s, s:s, s:[i], s:i, s:[{s:s, s:s, s:i, s:s, s:s}]}", "backend",
                                               "sqlite", "target", ":memory:", "pids", 1, "count", i == 7 ? 5 : 1,
                                               "opened_at", "function", fn, "file", "/src/app/a.c", "line", 1,
                                               "module", "/src/app/m", "offset", "0x1"));
    }
    json_t *rep = json_pack("{s:i, s:[s], s:{}, s:o}", "version", 1, "command", "x", "summary", "leaks", leaks);
    char *dir = clk_test_mkdtemp();
    char *in = clk_test_path(dir, "in.json");
    cr_assert_eq(json_dump_file(rep, in, JSON_COMPACT), 0);
    json_decref(rep);
    struct fmt_run r;
    fmt_report("sarif", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    json_t *doc = parse(&r);
    json_t *run = at(doc, "runs.[0]");
    cr_assert_eq(json_array_size(json_object_get(run, "results")), 25000);
    cr_assert_eq(json_is_true(at(run, "properties.resultsTruncated")), 1);
    cr_assert_eq(json_integer_value(at(run, "properties.resultsTotal")), 25001);
    cr_assert(strstr(str_at(run, "results.[0].message.text"), "(5 times"), "the biggest leak comes first");
    json_decref(doc);
    fmt_run_free(&r);
    clk_test_rmtree(dir);
}

Test(sarif, passwords_never_appear, TIMEOUT)
{
    struct fmt_run r;
    char *pg = clk_test_fixture("fx_pg");
    fmt_run_command("sarif", NULL, ARGS(pg, "passwords"), &r);
    fmt_assert_ran(&r, 23);
    cr_assert(!strstr(r.out, "s3cret"), "a password in the SARIF report:\n%s", clk_test_excerpt(r.out));
    json_t *doc = parse(&r);
    check_document(doc, 7);
    json_decref(doc);
    fmt_run_free(&r);
}

/* A file name that is not UTF-8: still JSON (jansson refuses such strings), each bad byte a U+FFFD. */
Test(sarif, invalid_utf8_target, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("sarif", ARGS("bad-utf8", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    json_t *doc = parse(&r);
    check_document(doc, 1);
    const char *msg = str_at(doc, "runs.[0].results.[0].message.text");
    cr_assert(strstr(msg, "/bad\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd.db opened here"), "%s",
              msg);
    json_decref(doc);
    fmt_run_free(&r);
}
