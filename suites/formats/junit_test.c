/* junit_test.c — --format junit: golden files, and the document parsed back with libxml2 and validated against junit.xsd. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>

#include "formats_common.h"

#define TIMEOUT .timeout = 90

/* ---- parsing back ---- */

static char parse_errors[4096];

static void collect_error(void *ctx, const char *fmt, ...)
{
    size_t n = strlen(parse_errors);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(parse_errors + n, sizeof parse_errors - n, fmt, ap);
    va_end(ap);
}

/* Parses strictly (no recovery, no network) and validates against junit.xsd; fails the test otherwise. */
static xmlDocPtr parse_valid(const struct fmt_run *r)
{
    parse_errors[0] = 0;
    xmlSetGenericErrorFunc(NULL, collect_error);
    xmlDocPtr doc = xmlReadMemory(r->out, (int)r->out_len, "junit.xml", NULL, XML_PARSE_NONET);
    cr_assert(doc && !parse_errors[0], "not well-formed XML: %s\n--- document:\n%s", parse_errors,
              clk_test_excerpt(r->out));

    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(FORMATS_DIR "/junit.xsd");
    xmlSchemaPtr schema = xmlSchemaParse(pc);
    cr_assert_not_null(schema, "junit.xsd does not load: %s", parse_errors);
    xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(schema);
    xmlSchemaSetValidErrors(vc, (xmlSchemaValidityErrorFunc)collect_error, (xmlSchemaValidityWarningFunc)collect_error,
                            NULL);
    int rc = xmlSchemaValidateDoc(vc, doc);
    cr_assert_eq(rc, 0, "not valid against junit.xsd: %s\n--- document:\n%s", parse_errors, clk_test_excerpt(r->out));
    xmlSchemaFreeValidCtxt(vc);
    xmlSchemaFree(schema);
    xmlSchemaFreeParserCtxt(pc);
    return doc;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name))
            return c;
    return NULL;
}

/* An attribute's value as parsed (entities resolved); "" when absent. Freed with the test process. */
static const char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    return v ? (const char *)v : "";
}

static const char *text(xmlNodePtr n)
{
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    return v ? (const char *)v : "";
}

struct tcase {
    const char *classname, *name;
    const char *outcome; /* "failure", "skipped", or NULL when it passed */
    const char *message, *type, *body;
};

/* The one testsuite's testcases, checking the counts it declares against what it holds. */
static size_t testcases(xmlDocPtr doc, struct tcase *out, size_t cap)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    cr_assert_str_eq((const char *)root->name, "testsuites");
    cr_assert_str_eq(attr(root, "name"), "connleak");
    xmlNodePtr suite = child(root, "testsuite");
    cr_assert_not_null(suite, "no <testsuite>");
    cr_assert_str_eq(attr(suite, "name"), "connleak");
    size_t n = 0, failures = 0, skipped = 0;
    for (xmlNodePtr c = suite->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "testcase"))
            continue;
        cr_assert_lt(n, cap, "more testcases than expected");
        struct tcase *t = &out[n++];
        memset(t, 0, sizeof *t);
        t->classname = attr(c, "classname");
        t->name = attr(c, "name");
        xmlNodePtr o = child(c, "failure") ? child(c, "failure") : child(c, "skipped");
        if (o) {
            t->outcome = (const char *)o->name;
            t->message = attr(o, "message");
            t->type = attr(o, "type");
            t->body = text(o);
            failures += !strcmp(t->outcome, "failure");
            skipped += !strcmp(t->outcome, "skipped");
        }
    }
    char want[32];
    snprintf(want, sizeof want, "%zu", n);
    cr_assert_str_eq(attr(suite, "tests"), want, "testsuite tests=");
    cr_assert_str_eq(attr(root, "tests"), want, "testsuites tests=");
    snprintf(want, sizeof want, "%zu", failures);
    cr_assert_str_eq(attr(suite, "failures"), want, "testsuite failures=");
    cr_assert_str_eq(attr(root, "failures"), want, "testsuites failures=");
    snprintf(want, sizeof want, "%zu", skipped);
    cr_assert_str_eq(attr(suite, "skipped"), want, "testsuite skipped=");
    cr_assert_str_eq(attr(suite, "errors"), "0");
    return n;
}

static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    cr_assert(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

static long long first_line(json_t *finding, const char *stack)
{
    return clk_test_int(json_array_get(json_object_get(finding, stack), 0), "line");
}

/* ---- the fixture under `connleak run` ---- */

Test(junit, fixture_golden, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("junit", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("fixture.junit.xml", norm);
    free(norm);
    fmt_run_free(&r);
}

Test(junit, fixture_parses_back, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("junit", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[8];
    size_t n = testcases(doc, tc, 8);
    cr_assert_eq(n, 3, "3 findings, 3 testcases (and no passing one): got %zu\n%s", n, clk_test_excerpt(r.out));

    json_t *leak = fmt_finding(&r, "leak", 0), *dc = fmt_finding(&r, "double_close", 0),
           *uc = fmt_finding(&r, "unknown_close", 0);
    cr_assert(leak && dc && uc, "the JSON report lacks a finding: %s", clk_test_dump(r.report));

    /* the leak: named by its opener, the target's every special character back as written */
    cr_assert_str_eq(tc[0].classname, "connleak.leak");
    cr_assert_str_eq(tc[0].name, "leak_twice");
    cr_assert_str_eq(tc[0].outcome, "failure");
    cr_assert_str_eq(tc[0].type, "leak");
    char *want = fmt("sqlite connection to %s/odd & <name> \"q\" 'x'\t,:%%.db opened in leak_twice "
                     "(suites/formats/fx_formats.c:%lld) is never closed (2 times)",
                     r.dir, first_line(leak, "opened_at"));
    cr_assert_str_eq(tc[0].message, want);
    cr_assert(!strncmp(tc[0].body, want, strlen(want)), "the failure text starts with its message:\n%s", tc[0].body);
    char *frame = fmt("opened at:\n    #0 leak_twice suites/formats/fx_formats.c:%lld (", first_line(leak, "opened_at"));
    cr_assert(strstr(tc[0].body, frame), "no '%s' in the failure text:\n%s", frame, tc[0].body);
    cr_assert(strstr(tc[0].body, "    #1 mode_mixed suites/formats/fx_formats.c:"), "%s", tc[0].body);
    cr_assert(strstr(tc[0].body, "    #2 main suites/formats/fx_formats.c:"), "%s", tc[0].body);
    cr_assert(strstr(tc[0].body, clk_test_str(leak, "fingerprint")), "no fingerprint in:\n%s", tc[0].body);

    /* the double close: named by its opener, where it was closed again, and all three stacks */
    cr_assert_str_eq(tc[1].classname, "connleak.double_close");
    cr_assert_str_eq(tc[1].name, "open_once");
    cr_assert_str_eq(tc[1].type, "double_close");
    char *want_dc = fmt("sqlite connection to :memory: closed again in close_again (suites/formats/fx_formats.c:%lld) "
                        "after close_first closed it",
                        first_line(dc, "closed_at"));
    cr_assert_str_eq(tc[1].message, want_dc);
    const char *again = strstr(tc[1].body, "closed again at:\n    #0 close_again ");
    const char *first = strstr(tc[1].body, "first closed at:\n    #0 close_first ");
    const char *opened = strstr(tc[1].body, "opened at:\n    #0 open_once ");
    cr_assert(again && first && opened && again < first && first < opened,
              "stacks missing or out of order:\n%s", tc[1].body);

    /* the unknown close: no opener, so named by its closer */
    cr_assert_str_eq(tc[2].classname, "connleak.unknown_close");
    cr_assert_str_eq(tc[2].name, "close_stranger");
    cr_assert_str_eq(tc[2].type, "unknown_close");
    cr_assert(strstr(tc[2].message, " never seen open is closed in close_stranger (suites/formats/fx_formats.c:"),
              "%s", tc[2].message);
    cr_assert(strstr(tc[2].body, "closed at:\n    #0 close_stranger "), "%s", tc[2].body);

    xmlFreeDoc(doc);
    free(want);
    free(want_dc);
    free(frame);
    fmt_run_free(&r);
}

Test(junit, clean_run_is_one_passing_testcase, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("junit", ARGS("clean"), &r);
    fmt_assert_ran(&r, 0);
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[2];
    cr_assert_eq(testcases(doc, tc, 2), 1, "%s", r.out);
    cr_assert_str_eq(tc[0].classname, "connleak");
    cr_assert_str_eq(tc[0].name, "connleak");
    cr_assert_null(tc[0].outcome, "the clean testcase passes");
    xmlFreeDoc(doc);
    fmt_run_free(&r);
}

/* ---- a hand-written report through `connleak report`: every field known, compared byte for byte ---- */

Test(junit, synthetic_golden, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("junit", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("synthetic.junit.xml", norm);
    free(norm);
    free(in);
    fmt_run_free(&r);
}

Test(junit, synthetic_parses_back, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("junit", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[10];
    size_t n = testcases(doc, tc, 10);
    cr_assert_eq(n, 7, "7 findings (one suppressed), no passing testcase: %zu\n%s", n, clk_test_excerpt(r.out));

    /* order: leaks by count then fingerprint, then the double close, the unknown close; the suppressed
     * one is a leak too. Find each by what it must be named. */
    const struct {
        const char *classname, *name, *outcome;
    } want[] = {
        {"connleak.leak", "db::opens_twice", "failure"},     /* named by its test */
        {"connleak.leak", "db::opens_twice #2", "failure"},  /* a second leak in the same test */
        {"connleak.leak", "ns::Pool<int>::get(int, char const*)", "failure"}, /* no test: by opener */
        {"connleak.leak", "libplugin.so+0x4d2", "failure"},  /* an opener without a symbol */
        {"connleak.leak", "vendor_open", "skipped"},         /* suppressed */
        {"connleak.double_close", "db::closes_twice", "failure"},
        {"connleak.unknown_close", "finish_stranger", "failure"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        size_t j = 0;
        while (j < n && (strcmp(tc[j].classname, want[i].classname) || strcmp(tc[j].name, want[i].name)))
            j++;
        cr_assert_lt(j, n, "no testcase %s / %s in:\n%s", want[i].classname, want[i].name, clk_test_excerpt(r.out));
        cr_assert_str_eq(tc[j].outcome, want[i].outcome, "%s", want[i].name);
    }
    for (size_t j = 0; j < n; j++) {
        if (!strcmp(tc[j].name, "db::opens_twice")) {
            cr_assert_str_eq(tc[j].message, "sqlite connection to /tmp/app & <co> \"q\" 'x'.db opened in open_cache "
                                            "(src/cache.c:88) is never closed (2 times)");
            cr_assert(strstr(tc[j].body, "test: db::opens_twice\n"), "%s", tc[j].body);
        }
        if (!strcmp(tc[j].name, "ns::Pool<int>::get(int, char const*)"))
            /* the frame in the repository, not the inlined header outside it */
            cr_assert_str_eq(tc[j].message, "postgres connection to postgresql://app@db:5432/main?sslmode=require "
                                            "checked out in serve (src/server.c:140) is never returned to its pool");
        if (!strcmp(tc[j].name, "libplugin.so+0x4d2")) {
            /* newline and CR survive as characters; U+0001 and U+FFFE cannot be in XML at all */
            cr_assert(strstr(tc[j].message, "/tmp/line1\nline2\r\\x01%41 \\xEF\\xBF\\xBE.db"), "%s", tc[j].message);
            cr_assert(!strstr(tc[j].message, "pid"), "no pids in messages: %s", tc[j].message);
        }
        if (!strcmp(tc[j].name, "vendor_open"))
            cr_assert(!strncmp(tc[j].message, "suppressed: sqlite connection to /tmp/ignored.db", 48), "%s",
                      tc[j].message);
    }
    xmlNodePtr out = child(child(xmlDocGetRootElement(doc), "testsuite"), "system-out");
    cr_assert(strstr(text(out), "connleak: note: process 103 ended by signal 9"), "notes go to system-out: %s",
              text(out));
    xmlFreeDoc(doc);
    free(in);
    fmt_run_free(&r);
}

/* Every ASCII control and punctuation character, and non-characters, in a target: still well-formed,
 * valid, and what XML can carry comes back unchanged. */
Test(junit, every_character_escaped, TIMEOUT)
{
    char target[256];
    size_t k = 0;
    for (int c = 1; c < 128; c++)
        target[k++] = (char)c;
    target[k] = 0;
    json_t *rep = json_pack("{s:i, s:[s], s:{}, s:[{s:s, s:s, s:s, s:[i], s:i, s:[{s:s, s:s, s:i, s:s, s:s}]}]}",
                            "version", 1, "command", "x", "summary", "leaks", "backend", "sqlite", "target", target,
                            "test", "t::\x01<&>", "pids", 1, "count", 1, "opened_at", "function", "f", "file",
                            "/src/app/a.c", "line", 1, "module", "/src/app/m", "offset", "0x1");
    cr_assert_not_null(rep);
    char *dir = clk_test_mkdtemp();
    char *in = clk_test_path(dir, "in.json");
    cr_assert_eq(json_dump_file(rep, in, 0), 0);
    struct fmt_run r;
    fmt_report("junit", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[2];
    cr_assert_eq(testcases(doc, tc, 2), 1);
    cr_assert_str_eq(tc[0].name, "t::\\x01<&>");
    char want[512];
    k = 0;
    for (int c = 1; c < 128; c++)
        k += (size_t)(c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? snprintf(want + k, 8, "\\x%02X", c)
                                                                         : snprintf(want + k, 8, "%c", c));
    cr_assert(strstr(tc[0].message, want), "target not round-tripped:\n  want %s\n  got  %s", want, tc[0].message);
    xmlFreeDoc(doc);
    json_decref(rep);
    fmt_run_free(&r);
    clk_test_rmtree(dir);
}

Test(junit, passwords_never_appear, TIMEOUT)
{
    struct fmt_run r;
    char *pg = clk_test_fixture("fx_pg");
    fmt_run_command("junit", NULL, ARGS(pg, "passwords"), &r);
    fmt_assert_ran(&r, 23);
    cr_assert(!strstr(r.out, "s3cret"), "a password in the JUnit report:\n%s", clk_test_excerpt(r.out));
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[10];
    cr_assert_eq(testcases(doc, tc, 10), 7);
    xmlFreeDoc(doc);
    fmt_run_free(&r);
}

/* A file name that is not UTF-8 (Linux names are bytes): the document stays well-formed, the bytes shown. */
Test(junit, invalid_utf8_target, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("junit", ARGS("bad-utf8", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    xmlDocPtr doc = parse_valid(&r);
    struct tcase tc[2];
    cr_assert_eq(testcases(doc, tc, 2), 1);
    cr_assert(strstr(tc[0].message, "/bad\\xFF\\xC3(\\xED\\xA0\\x80.db opened in leak_twice"), "%s", tc[0].message);
    xmlFreeDoc(doc);
    fmt_run_free(&r);
}
