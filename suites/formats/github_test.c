/* github_test.c — --format github: golden files, and every line checked against the workflow-command grammar. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "formats_common.h"

#define TIMEOUT .timeout = 90

/* One annotation, unescaped. */
struct command {
    char level[16];
    char file[1024], title[1024];
    long line; /* 0 when absent */
    char *message;
};

/* The runner's rules: ::LEVEL [k=v(,k=v)*]::DATA on one line; property values carry no raw ':' ',' CR LF;
 * the only escapes are %25 %0D %0A, plus %3A %2C in property values. */
#define COMMAND_RE                                                                                     \
    "^::(error|warning|notice)( (file|line|endLine|col|endColumn|title)=[^,:\r\n]*"                     \
    "(,(file|line|endLine|col|endColumn|title)=[^,:\r\n]*)*)?::[^\r\n]*$"

static int bad_escapes(const char *s, const char *end, int property)
{
    for (; s < end; s++)
        if (*s == '%' && strncmp(s, "%25", 3) && strncmp(s, "%0D", 3) && strncmp(s, "%0A", 3) &&
            (!property || (strncmp(s, "%3A", 3) && strncmp(s, "%2C", 3))))
            return 1;
    return 0;
}

static void unescape(char *dst, size_t cap, const char *s, const char *end)
{
    size_t n = 0;
    while (s < end && n + 1 < cap) {
        static const struct {
            const char *esc;
            char c;
        } map[] = {{"%25", '%'}, {"%0D", '\r'}, {"%0A", '\n'}, {"%3A", ':'}, {"%2C", ','}};
        size_t i = 0;
        while (i < 5 && strncmp(s, map[i].esc, 3))
            i++;
        if (i < 5) {
            dst[n++] = map[i].c;
            s += 3;
        } else {
            dst[n++] = *s++;
        }
    }
    dst[n] = 0;
}

/* Splits the output into annotations and plain lines, asserting the grammar on every line; the last line
 * is the plain summary. Returns the number of annotations. */
static size_t commands(const char *out, struct command *cmds, size_t cap, char *summary, size_t summary_cap)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, COMMAND_RE, REG_EXTENDED | REG_NOSUB), 0);
    size_t n = 0;
    const char *last = NULL;
    cr_assert(out[0] && out[strlen(out) - 1] == '\n', "output does not end in a newline:\n%s", clk_test_excerpt(out));
    for (const char *line = out; *line;) {
        const char *eol = strchr(line, '\n');
        char *l = strndup(line, (size_t)(eol - line));
        cr_assert(!strchr(l, '\r'), "a raw CR in: %s", l);
        if (!strncmp(l, "::", 2)) {
            cr_assert_eq(regexec(&re, l, 0, NULL, 0), 0, "not a workflow command: %s", l);
            cr_assert_lt(n, cap);
            struct command *c = &cmds[n++];
            memset(c, 0, sizeof *c);
            const char *sp = strchr(l + 2, ' '), *data = strstr(l + 2, "::");
            size_t lvl = (size_t)((sp && sp < data ? sp : data) - (l + 2));
            snprintf(c->level, sizeof c->level, "%.*s", (int)lvl, l + 2);
            cr_assert(!bad_escapes(data + 2, l + strlen(l), 0), "a stray %% in the data of: %s", l);
            for (const char *p = sp && sp < data ? sp + 1 : data; p < data;) {
                const char *comma = memchr(p, ',', (size_t)(data - p));
                const char *vend = comma ? comma : data, *eq = memchr(p, '=', (size_t)(vend - p));
                cr_assert(!bad_escapes(eq + 1, vend, 1), "a stray %% in a property of: %s", l);
                if (!strncmp(p, "file=", 5))
                    unescape(c->file, sizeof c->file, eq + 1, vend);
                else if (!strncmp(p, "title=", 6))
                    unescape(c->title, sizeof c->title, eq + 1, vend);
                else if (!strncmp(p, "line=", 5))
                    c->line = strtol(eq + 1, NULL, 10);
                p = vend + (comma != NULL);
            }
            size_t dl = strlen(data + 2) + 1;
            c->message = malloc(dl);
            unescape(c->message, dl, data + 2, data + 2 + dl - 1);
            cr_assert_null(last, "annotations come before the plain lines");
        } else {
            last = line;
            snprintf(summary, summary_cap, "%s", l);
        }
        free(l);
        line = eol + 1;
    }
    cr_assert_not_null(last, "no plain summary line");
    cr_assert(!strncmp(summary, "connleak: ", 10), "the summary line: %s", summary);
    regfree(&re);
    return n;
}

static long long first_line(json_t *finding, const char *stack)
{
    return clk_test_int(json_array_get(json_object_get(finding, stack), 0), "line");
}

/* ---- the fixture under `connleak run` ---- */

Test(github, fixture_golden, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("github", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("fixture.github.txt", norm);
    free(norm);
    fmt_run_free(&r);
}

Test(github, fixture_grammar, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("github", ARGS("mixed", "@DIR"), &r);
    fmt_assert_ran(&r, 23);
    struct command c[4];
    char summary[512];
    size_t n = commands(r.out, c, 4, summary, sizeof summary);
    cr_assert_eq(n, 3, "one annotation per finding:\n%s", r.out);
    json_t *leak = fmt_finding(&r, "leak", 0), *dc = fmt_finding(&r, "double_close", 0),
           *uc = fmt_finding(&r, "unknown_close", 0);
    cr_assert(leak && dc && uc, "%s", clk_test_dump(r.report));

    cr_assert_str_eq(c[0].level, "error");
    cr_assert_str_eq(c[0].title, "connleak: leaked sqlite connection");
    cr_assert_str_eq(c[0].file, "suites/formats/fx_formats.c");
    cr_assert_eq(c[0].line, first_line(leak, "opened_at"));
    char want[8192];
    snprintf(want, sizeof want,
             "sqlite connection to %s/odd & <name> \"q\" 'x'\t,:%%.db opened here is never closed (2 times)\n"
             "opened at:\n  #0 leak_twice suites/formats/fx_formats.c:%lld\n",
             r.dir, first_line(leak, "opened_at"));
    cr_assert(!strncmp(c[0].message, want, strlen(want)), "message:\n%s\nexpected to start:\n%s", c[0].message, want);

    cr_assert_str_eq(c[1].level, "error");
    cr_assert_str_eq(c[1].title, "connleak: double close of a sqlite connection");
    cr_assert_eq(c[1].line, first_line(dc, "closed_at"));
    const char *again = strstr(c[1].message, "\nclosed again at:\n  #0 close_again ");
    const char *first = strstr(c[1].message, "\nfirst closed at:\n  #0 close_first ");
    const char *opened = strstr(c[1].message, "\nopened at:\n  #0 open_once ");
    cr_assert(again && first && opened && again < first && first < opened, "%s", c[1].message);

    cr_assert_str_eq(c[2].level, "warning", "an unknown close does not fail the run");
    cr_assert_str_eq(c[2].title, "connleak: close of a sqlite connection never seen open");
    cr_assert_eq(c[2].line, first_line(uc, "closed_at"));

    cr_assert_str_eq(summary, "connleak: 2 leaked connections, 1 double close, 1 unknown close, 0 suppressed, "
                              "0 baselined; 3 connects, 1 close in 1 process.");
    for (size_t i = 0; i < n; i++)
        free(c[i].message);
    fmt_run_free(&r);
}

/* --source-root: paths relative to it rather than to GITHUB_WORKSPACE or the working directory
 * (CI systems other than GitHub); a frame outside it keeps its full path. */
Test(github, source_root_option, TIMEOUT)
{
    char *suites = NULL;
    cr_assert(asprintf(&suites, "%s/suites", clk_test_source_root()) > 0);
    const char *cmd[] = {FX_FORMATS, "mixed", "@DIR", NULL};
    struct fmt_run r;
    fmt_run_command("github", ARGS("--stack-depth", "3", "--source-root", suites), cmd, &r);
    fmt_assert_ran(&r, 23);
    cr_assert(clk_test_contains(r.out, "::error file=formats/fx_formats.c,line="),
              "paths relative to --source-root:\n%s", clk_test_excerpt(r.out));
    fmt_run_free(&r);
    free(suites);
    fmt_run_command("github", ARGS("--source-root", "/nonexistent-connleak-root"), cmd, &r);
    cr_assert_eq(r.proc.status, 2, "a --source-root that is no directory is refused: %d\n%s", r.proc.status,
                 clk_test_excerpt(r.proc.err));
    fmt_run_free(&r);
}

Test(github, clean_run_is_the_summary_alone, TIMEOUT)
{
    struct fmt_run r;
    fmt_run_fixture("github", ARGS("clean"), &r);
    fmt_assert_ran(&r, 0);
    struct command c[1];
    char summary[512];
    cr_assert_eq(commands(r.out, c, 1, summary, sizeof summary), 0);
    cr_assert_eq(clk_test_count_lines(r.out), 1, "%s", r.out);
    fmt_run_free(&r);
}

/* ---- a hand-written report through `connleak report` ---- */

Test(github, synthetic_golden, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("github", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    char *norm = fmt_normalize(&r);
    fmt_golden("synthetic.github.txt", norm);
    free(norm);
    free(in);
    fmt_run_free(&r);
}

Test(github, synthetic_grammar, TIMEOUT)
{
    struct fmt_run r;
    char *in = fmt_input("synthetic.json");
    fmt_report("github", in, "/src/app", &r);
    fmt_assert_ran(&r, 23);
    struct command c[8];
    char summary[512];
    size_t n = commands(r.out, c, 8, summary, sizeof summary);
    cr_assert_eq(n, 6, "six unsuppressed findings:\n%s", r.out);
    cr_assert(!strstr(r.out, "ignored.db"), "a suppressed finding is not annotated");
    int seen_weird = 0, seen_newline = 0, seen_checkout = 0;
    for (size_t i = 0; i < n; i++) {
        /* a ',' and ':' in a file name survive the property escaping */
        if (!strcmp(c[i].file, "src/we,ird:name.c"))
            seen_weird = c[i].line == 7;
        /* a newline in the target cannot start a line of its own (no command injection); other
         * controls are shown, not written; no file in the repository: no file property */
        if (strstr(c[i].message, "/tmp/line1\nline2\r\\x01%41"))
            seen_newline = !c[i].file[0] && !c[i].line;
        if (!strcmp(c[i].title, "connleak: postgres connection checkout never returned"))
            seen_checkout = !strcmp(c[i].file, "src/server.c") && c[i].line == 140;
        free(c[i].message);
    }
    cr_assert(seen_weird && seen_newline && seen_checkout, "weird=%d newline=%d checkout=%d\n%s", seen_weird,
              seen_newline, seen_checkout, r.out);
    cr_assert(strstr(r.out, "\nconnleak: note: process 103 ended by signal 9"), "notes are plain lines:\n%s", r.out);
    free(in);
    fmt_run_free(&r);
}

Test(github, passwords_never_appear, TIMEOUT)
{
    struct fmt_run r;
    char *pg = clk_test_fixture("fx_pg");
    fmt_run_command("github", NULL, ARGS(pg, "passwords"), &r);
    fmt_assert_ran(&r, 23);
    cr_assert(!strstr(r.out, "s3cret"), "a password in the annotations:\n%s", clk_test_excerpt(r.out));
    struct command c[8];
    char summary[512];
    size_t n = commands(r.out, c, 8, summary, sizeof summary);
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++)
        free(c[i].message);
    fmt_run_free(&r);
}
