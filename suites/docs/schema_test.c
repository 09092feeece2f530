/* schema_test.c — real reports validate against docs/report.schema.json (python3-jsonschema): leaks, double and
 * unknown closes, a thread's leak, PostgreSQL, Criterion tests, suppressed and baselined findings, notes, Python
 * frames, `connleak report` merging; and the schema does reject a report that breaks it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docs_common.h"

#define TIMEOUT .timeout = 240

/* The validator is there (or the test is skipped, saying why) before anything runs. */
static void run_fx(const char *const *opts, const char *mode, clk_test_run *r)
{
    docs_need_jsonschema();
    clk_test_connleak(opts, ARGS(FX_DOCS, mode), NO_DETECTOR, r);
}

static int has_python_frame(const json_t *stack)
{
    size_t i;
    json_t *fr;
    json_array_foreach(stack, i, fr) if (!strcmp(clk_test_str(fr, "language"), "python")) return 1;
    return 0;
}

Test(schema, schema_is_valid_2020_12, TIMEOUT)
{
    const char *py = docs_need_jsonschema();
    char *schema = clk_test_path(clk_test_source_root(), "docs/report.schema.json");
    clk_test_proc p;
    clk_test_exec(ARGS(py, "-c",
                       "import json,sys,jsonschema; s=json.load(open(sys.argv[1]));"
                       "assert s['$schema']=='https://json-schema.org/draft/2020-12/schema', s['$schema'];"
                       "jsonschema.Draft202012Validator.check_schema(s)",
                       schema),
                  NO_DETECTOR, NULL, 0, &p);
    cr_assert_eq(p.status, 0, "%s is not a valid draft 2020-12 schema:\n%s%s", schema, p.out, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}

Test(schema, leaks_double_unknown_thread_postgres, TIMEOUT)
{
    clk_test_run r;
    run_fx(NULL, "all", &r);
    clk_assert_status(&r, 23);
    docs_assert_valid(&r, "fx_docs all");
    /* what this report must hold for the validation to mean something */
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", NULL, "open_alpha_cache"), "%s", clk_test_dump(r.report));
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", NULL, "connect_orders"), "%s",
                       clk_test_dump(r.report));
    cr_assert_not_null(clk_test_find_left_field(r.report, "double_close", NULL, "close_again"), "%s",
                       clk_test_dump(r.report));
    cr_assert_not_null(clk_test_find_left_field(r.report, "unknown_close", NULL, "close_stranger"), "%s",
                       clk_test_dump(r.report));
    json_t *worker = clk_test_find_leak(r.report, "sqlite", NULL, "worker_body");
    cr_assert(worker && json_array_size(json_object_get(worker, "thread_created_at")) > 0,
              "the worker's leak has no thread_created_at: %s", clk_test_dump(r.report));
    cr_assert(clk_test_str(worker, "via")[0], "no via on the worker's leak");
    clk_test_run_free(&r);
}

Test(schema, criterion_tests, TIMEOUT)
{
    docs_need_jsonschema();
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(FX_DOCS_TESTS, "--jobs", "1"), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    docs_assert_valid(&r, "fx_docs_tests");
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "open_settings_cache");
    cr_assert(leak && !strcmp(clk_test_str(leak, "test"), "settings::cache_leaks"), "%s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}

Test(schema, suppressed_and_notes, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *supp = docs_write(dir, "s.supp",
                            "# two rules\nleak:^open_alpha_cache$\nunknown_close:close_stranger\ndouble_close:close_again\n");
    clk_test_run r;
    run_fx(ARGS("--suppressions", supp), "all", &r);
    clk_assert_status(&r, 23); /* open_beta_store and the rest still leak */
    docs_assert_valid(&r, "with --suppressions");
    json_t *s = json_object_get(r.report, "suppressed");
    cr_assert_eq(json_array_size(s), 3, "want 3 suppressed findings: %s", clk_test_dump(r.report));
    cr_assert(json_array_size(json_object_get(r.report, "notes")) >= 3, "want the rules' notes: %s",
              clk_test_dump(r.report));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(schema, baselined, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *known = clk_test_path(dir, "known.json");
    clk_test_run r;
    run_fx(ARGS("--write-baseline", known), "gen", &r);
    clk_assert_status(&r, 0); /* --write-baseline: the findings it records do not fail the run */
    docs_assert_valid(&r, "with --write-baseline");
    clk_test_run_free(&r);
    run_fx(ARGS("--baseline", known), "all", &r);
    clk_assert_status(&r, 23); /* the worker's, the stranger's and PostgreSQL's are new */
    docs_assert_valid(&r, "with --baseline");
    cr_assert_eq(clk_test_summary(r.report, "baselined"), 3, "%s", clk_test_dump(r.report));
    json_t *alpha = clk_test_find_leak(r.report, "sqlite", NULL, "open_alpha_cache");
    cr_assert(alpha && json_is_true(json_object_get(alpha, "baselined")), "%s", clk_test_dump(r.report));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(schema, python_frames, TIMEOUT)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    docs_need_jsonschema();
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("/usr/bin/python3", FX_DOCS_PY), NO_DETECTOR, &r);
    clk_assert_status(&r, 23);
    docs_assert_valid(&r, "python3 fx_docs.py");
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "open_python_cache");
    cr_assert(leak && has_python_frame(json_object_get(leak, "opened_at")), "no Python frames: %s",
              clk_test_dump(r.report));
    clk_test_run_free(&r);
}

/* connleak report: JSON shards and a journal directory merged, a shard given twice, a directory with no journals. */
Test(schema, report_merging, TIMEOUT)
{
    docs_need_jsonschema();
    char *dir = clk_test_mkdtemp();
    char *raw = clk_test_path(dir, "raw"), *empty = clk_test_path(dir, "empty");
    cr_assert_eq(mkdir(empty, 0700), 0);
    clk_test_run a, b;
    run_fx(NULL, "gen", &a);
    run_fx(ARGS("--keep-raw", raw), "all", &b);
    clk_assert_report(&a);
    clk_assert_report(&b);
    char *merged = clk_test_path(dir, "merged.json");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", "--json", merged, a.json_path, a.json_path, b.json_path, raw, empty),
                  NO_DETECTOR, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report: status %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_run m = {0};
    m.json_path = merged;
    m.json_text = clk_test_read_file(merged, NULL);
    m.report = m.json_text ? json_loads(m.json_text, 0, NULL) : NULL;
    docs_assert_valid(&m, "connleak report (merged)");
    cr_assert(json_array_size(json_object_get(m.report, "notes")) >= 2, "want notes (a shard twice, no journals): %s",
              clk_test_dump(m.report));
    /* a's leaks plus b's twice (its JSON and its journals) */
    cr_assert_eq(clk_test_leak_count(m.report, "sqlite", NULL, "open_alpha_cache"), 3, "%s", clk_test_dump(m.report));
    clk_test_run_free(&a);
    clk_test_run_free(&b);
    clk_test_rmtree(dir);
}

/* The schema is no rubber stamp: a report with a bad frame, a missing fingerprint or a leak kind among the
 * left-field closes fails it. */
Test(schema, rejects_broken_reports, TIMEOUT)
{
    clk_test_run r;
    run_fx(NULL, "gen", &r);
    clk_assert_report(&r);
    const char *breakers[] = {
        "r['leaks'][0]['opened_at'][0]['line'] = 'twelve'",
        "del r['leaks'][0]['fingerprint']",
        "r['left_field_closes'][0]['kind'] = 'leak'",
        "r['summary']['leaks'] = -1",
        "del r['summary']",
        "r['leaks'][0]['count'] = 0",
        "r['leaks'][0]['opened_at'][0]['offset'] = 4660",
    };
    for (size_t i = 0; i < sizeof breakers / sizeof *breakers; i++) {
        char *bad = clk_test_path(r.dir, "bad.json");
        char script[512];
        snprintf(script, sizeof script,
                 "import json,sys; r=json.load(open(sys.argv[1])); %s; json.dump(r, open(sys.argv[2], 'w'))",
                 breakers[i]);
        clk_test_proc p;
        clk_test_exec(ARGS(docs_python_jsonschema(), "-c", script, r.json_path, bad), NO_DETECTOR, NULL, 0, &p);
        cr_assert_eq(p.status, 0, "%s: %s", breakers[i], p.err);
        clk_test_proc_free(&p);
        char *why = NULL;
        cr_assert_neq(docs_validate(bad, &why), 0, "the schema accepted a report after: %s", breakers[i]);
        cr_assert(clk_test_contains(why, "error(s)"), "%s: the validator did not run: %s", breakers[i], why);
        free(why);
        free(bad);
    }
    clk_test_run_free(&r);
}

/* Connections Python's garbage collector closed: the closed_by_finalizer list and its summary count. */
Test(schema, closed_by_finalizer, TIMEOUT)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    docs_need_jsonschema();
    char *script = clk_test_path(clk_test_source_root(), "suites/python/finalizer.py");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("/usr/bin/python3", script), NO_DETECTOR, &r);
    clk_assert_report(&r);
    docs_assert_valid(&r, "python3 finalizer.py");
    cr_assert(clk_test_summary(r.report, "closed_by_finalizer") >= 1 &&
                  json_array_size(json_object_get(r.report, "closed_by_finalizer")) >= 1,
              "no connection closed by the garbage collector: %s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}

/* --held-longer-than: the long_held list and its summary count (one connection held 50 ms, one closed at once). */
Test(schema, long_held, TIMEOUT)
{
    clk_test_run r;
    run_fx(ARGS("--held-longer-than", "20ms"), "held", &r);
    clk_assert_status(&r, 0);
    docs_assert_valid(&r, "with --held-longer-than 20ms");
    json_t *held = json_object_get(r.report, "long_held");
    cr_assert(json_array_size(held) == 1 && clk_test_summary(r.report, "long_held") == 1,
              "want one long_held entry, counted in the summary: %s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}

/* held_longer_than= in CONNLEAK_OPTIONS is --held-longer-than under `run`: the run's own report lists them. */
Test(schema, long_held_from_options, TIMEOUT)
{
    docs_need_jsonschema();
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(FX_DOCS, "held"), ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS=held_longer_than=20ms"), &r);
    clk_assert_status(&r, 0);
    docs_assert_valid(&r, "with CONNLEAK_OPTIONS=held_longer_than=20ms");
    json_t *held = json_object_get(r.report, "long_held");
    cr_assert(json_array_size(held) == 1 && clk_test_summary(r.report, "long_held") == 1,
              "want one long_held entry, counted in the summary: %s", clk_test_dump(r.report));
    cr_assert_geq(clk_test_int(json_array_get(held, 0), "held_ms"), 50, "%s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}

/* A process that leaves by _exit ends there: the connection its fork child still held was held for as long
 * as the child lived (about nothing), not until the run's report (300 ms later). */
Test(schema, long_held_ends_at__exit, TIMEOUT)
{
    clk_test_run r;
    run_fx(ARGS("--held-longer-than", "200ms"), "held-exit", &r);
    clk_assert_status(&r, 23);
    docs_assert_valid(&r, "a fork child's _exit");
    cr_assert_eq(clk_test_summary(r.report, "leaks"), 1, "the child's leak: %s", clk_test_dump(r.report));
    cr_assert_eq(json_array_size(json_object_get(r.report, "long_held")), 0,
                 "the child held it for no time at all: %s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}

/* A close that returned SQLITE_BUSY: the leak carries the SQL of the statement left unfinalized. */
Test(schema, unfinalized, TIMEOUT)
{
    clk_test_run r;
    run_fx(NULL, "busy", &r);
    clk_assert_status(&r, 23);
    docs_assert_valid(&r, "a busy close");
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "open_db");
    json_t *sql = json_object_get(leak, "unfinalized");
    cr_assert(json_array_size(sql) == 1 && clk_test_contains(json_dumps(sql, 0), "docs_marker"),
              "want the unfinalized statement's SQL: %s", clk_test_dump(r.report));
    clk_test_run_free(&r);
}
