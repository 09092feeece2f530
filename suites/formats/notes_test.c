/* notes_test.c — notes in every format, by kind (unseen, incomplete, info), and --fail-on unseen making the unseen ones fail the run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "formats_common.h"

#define TIMEOUT .timeout = 60
#define GO_NOTE "process 7 (/srv/app) is a Go program: its network connections are not seen"
#define DAMAGE_NOTE "/tmp/j/7.raw: 2 corrupt records skipped"
#define INFO_NOTE "suppression leak:vendor matched 1 finding"

/* `connleak report [fail_on] INPUT --json J --format F --output O`: status; *out the rendering, *json the report. */
static int report(const char *format, const char *input, const char *fail_on, char **out, json_t **json)
{
    char *dir = clk_test_mkdtemp();
    char *in = fmt_input(input), *o = clk_test_path(dir, "out"), *j = clk_test_path(dir, "report.json");
    const char *argv[16];
    int k = 0;
    argv[k++] = clk_test_cli();
    argv[k++] = "report";
    argv[k++] = "--quiet";
    if (fail_on) {
        argv[k++] = "--fail-on";
        argv[k++] = fail_on;
    }
    argv[k++] = in;
    argv[k++] = "--json";
    argv[k++] = j;
    argv[k++] = "--format";
    argv[k++] = format;
    argv[k++] = "--output";
    argv[k++] = o;
    argv[k] = NULL;
    clk_test_proc p;
    clk_test_exec(argv, ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS", "GITHUB_WORKSPACE"), NULL, 0, &p);
    int st = p.status;
    *out = clk_test_read_file(o, NULL);
    cr_assert_not_null(*out, "no %s output (status %d): %s", format, st, p.err);
    char *text = clk_test_read_file(j, NULL);
    *json = text ? json_loads(text, 0, NULL) : NULL;
    cr_assert_not_null(*json, "no JSON report (status %d): %s", st, p.err);
    free(text);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
    return st;
}

Test(notes, every_format_carries_them_by_kind, TIMEOUT)
{
    char *out;
    json_t *json;
    cr_assert_eq(report("text", "notes.json", NULL, &out, &json), 0, "notes alone do not fail the run");
    for (const char *n[] = {GO_NOTE, DAMAGE_NOTE, INFO_NOTE, NULL}, **p = n; *p; p++) {
        char line[256];
        snprintf(line, sizeof line, "connleak: note: %s\n", *p);
        cr_assert(strstr(out, line), "text: no '%s':\n%s", line, out);
    }
    /* JSON: notes stay strings; note_details, in the same order, give the kinds back */
    json_t *notes = json_object_get(json, "notes"), *details = json_object_get(json, "note_details");
    cr_assert_eq(json_array_size(notes), 3);
    cr_assert_eq(json_array_size(details), 3);
    const char *kinds[] = {"unseen", "incomplete", "info"};
    for (size_t i = 0; i < 3; i++) {
        json_t *d = json_array_get(details, i);
        cr_assert_str_eq(json_string_value(json_array_get(notes, i)), clk_test_str(d, "text"));
        cr_assert_str_eq(clk_test_str(d, "kind"), kinds[i]);
        cr_assert_null(json_object_get(d, "fails"));
    }
    free(out);
    json_decref(json);

    /* GitHub: what could not be seen or read is an annotation; the rest a log line */
    report("github", "notes.json", NULL, &out, &json);
    cr_assert(strstr(out, "::warning title=connleak%3A database client not seen::" GO_NOTE "\n"), "%s", out);
    cr_assert(strstr(out, "::warning title=connleak%3A report incomplete::" DAMAGE_NOTE "\n"), "%s", out);
    cr_assert(strstr(out, "\nconnleak: note: " INFO_NOTE "\n"), "%s", out);
    free(out);
    json_decref(json);

    /* SARIF: tool execution notifications, a level and a kind each */
    report("sarif", "notes.json", NULL, &out, &json);
    json_t *sarif = json_loads(out, 0, NULL);
    cr_assert_not_null(sarif, "SARIF does not parse:\n%s", out);
    json_t *inv = json_array_get(json_object_get(json_array_get(json_object_get(sarif, "runs"), 0), "invocations"), 0);
    json_t *tn = json_object_get(inv, "toolExecutionNotifications");
    cr_assert_eq(json_array_size(tn), 3, "%s", out);
    const char *levels[] = {"warning", "warning", "note"};
    for (size_t i = 0; i < 3; i++) {
        json_t *n = json_array_get(tn, i);
        cr_assert_str_eq(clk_test_str(n, "level"), levels[i]);
        cr_assert_str_eq(clk_test_str(json_object_get(n, "properties"), "kind"), kinds[i]);
        cr_assert_str_eq(clk_test_str(json_object_get(n, "message"), "text"),
                         json_string_value(json_array_get(notes = json_object_get(json, "notes"), i)));
    }
    json_decref(sarif);
    free(out);
    json_decref(json);

    /* JUnit: all in system-out; none fails a testcase on its own */
    report("junit", "notes.json", NULL, &out, &json);
    cr_assert(strstr(out, "connleak: note: " GO_NOTE "\n") && strstr(out, "connleak: note: " INFO_NOTE "\n"), "%s", out);
    cr_assert(strstr(out, "failures=\"0\""), "%s", out);
    cr_assert(!strstr(out, "connleak.unseen"), "%s", out);
    free(out);
    json_decref(json);
}

Test(notes, fail_on_unseen_fails_in_every_format, TIMEOUT)
{
    char *out;
    json_t *json;
    cr_assert_eq(report("text", "notes.json", "unseen", &out, &json), 23);
    cr_assert(strstr(out, "==connleak==ERROR: connleak: 1 note on database clients the detector cannot see "
                          "(--fail-on unseen)\n"), "%s", out);
    cr_assert(strstr(out, "connleak: error (--fail-on unseen): " GO_NOTE "\n"), "%s", out);
    cr_assert(strstr(out, "connleak: note: " DAMAGE_NOTE "\n"), "only unseen notes fail:\n%s", out);
    json_t *details = json_object_get(json, "note_details");
    cr_assert(json_is_true(json_object_get(json_array_get(details, 0), "fails")));
    cr_assert_null(json_object_get(json_array_get(details, 1), "fails"));
    free(out);
    json_decref(json);

    report("github", "notes.json", "unseen", &out, &json);
    cr_assert(strstr(out, "::error title=connleak%3A database client not seen::" GO_NOTE "\n"), "%s", out);
    cr_assert(strstr(out, "::warning title=connleak%3A report incomplete::"), "%s", out);
    free(out);
    json_decref(json);

    report("sarif", "notes.json", "unseen", &out, &json);
    cr_assert(strstr(out, "\"level\": \"error\""), "%s", out);
    free(out);
    json_decref(json);

    /* JUnit: a failing testcase of its own, so CI shows the run red for it */
    report("junit", "notes.json", "unseen", &out, &json);
    cr_assert(strstr(out, "failures=\"1\""), "%s", out);
    cr_assert(strstr(out, "<testcase classname=\"connleak.unseen\" name=\"database client not seen\" time=\"0\">\n"
                          "      <failure message=\"" GO_NOTE "\" type=\"unseen\">"), "%s", out);
    free(out);
    json_decref(json);
}

Test(notes, a_report_without_kinds_reads_its_notes_as_information, TIMEOUT)
{
    /* synthetic.json has notes and no note_details (a report of an older connleak) */
    char *out;
    json_t *json;
    cr_assert_eq(report("json", "synthetic.json", "unseen", &out, &json), 23); /* its leaks, not its note */
    json_t *d = json_array_get(json_object_get(json, "note_details"), 0);
    cr_assert_str_eq(clk_test_str(d, "kind"), "info");
    cr_assert_null(json_object_get(d, "fails"));
    free(out);
    json_decref(json);
}
