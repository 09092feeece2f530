/* suppress.c — LeakSanitizer-style suppressions: `leak:`, `double_close:`, `unknown_close:` lines with * globs over stack frames. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

struct rule {
    enum clk_kind kind;
    char *text;  /* the line as written after trimming, for notes: "leak:open_cache" */
    char *glob;  /* the pattern as a whole-string glob: '^'/'$' anchors turned into the absence of '*' */
    int line;
};

struct clk_suppressions {
    char *path;
    struct rule *rules;
    size_t n;
};

/* Whole-string match where '*' is any run of characters and every other byte
 * is literal ('?' and '[' too: C++ names such as "f[abi:cxx11]" must match as
 * written). Greedy with one backtrack point, which is exact for '*'-only globs. */
static int glob_match(const char *p, const char *s)
{
    const char *star = NULL, *mark = NULL;
    while (*s) {
        if (*p == '*') {
            star = ++p;
            mark = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star;
            s = ++mark;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return !*p;
}

/* LSan's rule: a pattern matches anywhere in the name unless '^' anchors it to
 * the start or a final '$' to the end; so "foo" becomes "*foo*", "^foo" "foo*".
 * NULL when nothing is left between the anchors. */
static char *compile(const char *pat)
{
    size_t n = strlen(pat);
    int at_start = pat[0] == '^';
    int at_end = n > (size_t)at_start && pat[n - 1] == '$';
    const char *core = pat + at_start;
    size_t core_n = n - (size_t)at_start - (size_t)at_end;
    if (!core_n)
        return NULL;
    char *g = clk_xmalloc(core_n + 3), *w = g;
    if (!at_start)
        *w++ = '*';
    memcpy(w, core, core_n);
    w += core_n;
    if (!at_end)
        *w++ = '*';
    *w = 0;
    return g;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n' || e[-1] == '\f' ||
                     e[-1] == '\v'))
        *--e = 0;
    return s;
}

static int kind_from_name(const char *name, enum clk_kind *k)
{
    for (int i = CLK_LEAK; i <= CLK_UNKNOWN_CLOSE; i++)
        if (!strcmp(name, clk_kind_name((enum clk_kind)i))) {
            *k = (enum clk_kind)i;
            return 0;
        }
    return -1;
}

/* Parses one trimmed, non-comment line into s; the error text into why. */
static int parse_line(struct clk_suppressions *s, char *text, int lineno, char *why, size_t whycap)
{
    char *colon = strchr(text, ':');
    if (!colon) {
        snprintf(why, whycap, "'%s' is not KIND:PATTERN (leak:, double_close: or unknown_close:)", text);
        return -1;
    }
    *colon = 0;
    char *kname = trim(text), *pat = trim(colon + 1);
    enum clk_kind kind;
    if (kind_from_name(kname, &kind) != 0) {
        snprintf(why, whycap, "unknown suppression kind '%s' (leak, double_close or unknown_close)", kname);
        return -1;
    }
    char *glob = compile(pat);
    if (!glob) {
        snprintf(why, whycap, "empty pattern after '%s:'", kname);
        return -1;
    }
    s->rules = clk_xrealloc(s->rules, (s->n + 1) * sizeof *s->rules);
    struct rule *r = &s->rules[s->n++];
    r->kind = kind;
    size_t tn = strlen(kname) + strlen(pat) + 2;
    r->text = clk_xmalloc(tn);
    snprintf(r->text, tn, "%s:%s", kname, pat);
    r->glob = glob;
    r->line = lineno;
    return 0;
}

struct clk_suppressions *clk_suppressions_load(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        clk_err("cannot read suppressions file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct clk_suppressions *s = clk_xcalloc(1, sizeof *s);
    s->path = clk_xstrdup(path);
    char *buf = NULL;
    size_t cap = 0;
    int lineno = 0, bad = 0;
    errno = 0;
    while (getline(&buf, &cap, fp) != -1) {
        lineno++;
        char *text = buf;
        if (lineno == 1 && !strncmp(text, "\xef\xbb\xbf", 3)) /* a UTF-8 BOM from some editors */
            text += 3;
        text = trim(text);
        if (!*text || *text == '#')
            continue;
        char why[512];
        if (parse_line(s, text, lineno, why, sizeof why) != 0) {
            clk_err("%s:%d: %s", path, lineno, why);
            bad = 1;
            break;
        }
    }
    if (!bad && ferror(fp)) { /* e.g. a directory: fopen succeeds, reading fails */
        clk_err("cannot read suppressions file %s: %s", path, strerror(errno ? errno : EIO));
        bad = 1;
    }
    free(buf);
    fclose(fp);
    if (bad) {
        clk_suppressions_free(s);
        return NULL;
    }
    return s;
}

static int name_matches(const char *glob, const char *name)
{
    if (!name || !*name)
        return 0;
    if (glob_match(glob, name))
        return 1;
    /* files and modules are absolute paths: "^cache.c$" should still find .../src/cache.c */
    const char *base = clk_basename(name);
    return base != name && *base && glob_match(glob, base);
}

static int stack_matches(const char *glob, const struct clk_stack *st)
{
    for (int i = 0; i < st->n; i++) {
        const struct clk_frame *f = &st->f[i];
        if (name_matches(glob, f->function) || name_matches(glob, f->file) || name_matches(glob, f->module))
            return 1;
    }
    return 0;
}

/* The stacks that describe a finding of each kind. */
static int finding_matches(const struct rule *ru, const struct clk_finding *f)
{
    switch (f->kind) {
    case CLK_LEAK:
        return stack_matches(ru->glob, &f->opened_at);
    case CLK_DOUBLE_CLOSE:
        return stack_matches(ru->glob, &f->closed_at) || stack_matches(ru->glob, &f->first_closed_at) ||
               stack_matches(ru->glob, &f->opened_at);
    case CLK_UNKNOWN_CLOSE:
        return stack_matches(ru->glob, &f->closed_at);
    }
    return 0;
}

/* A note once: re-rendering a JSON report that already carries it must not repeat it. */
static void note_once(struct clk_report *r, const char *text)
{
    for (size_t i = 0; i < r->nnotes; i++)
        if (!strcmp(r->notes[i], text))
            return;
    clk_report_note(r, CLK_NOTE_INFO, "%s", text);
}

void clk_suppressions_apply(struct clk_report *r, const struct clk_suppressions *s)
{
    if (!s)
        return;
    /* per rule: connections (or closes) it suppressed, the sum of the findings' counts */
    uint64_t *hits = clk_xcalloc(s->n, sizeof *hits);
    for (size_t i = 0; i < r->nfindings; i++) {
        struct clk_finding *f = r->findings[i];
        /* the first matching rule takes the hit, as in LSan, so the notes add up to summary.suppressed */
        for (size_t k = 0; k < s->n; k++) {
            const struct rule *ru = &s->rules[k];
            if (ru->kind == f->kind && finding_matches(ru, f)) {
                f->suppressed = 1;
                hits[k] += f->count;
                break;
            }
        }
    }
    /* LSan prints "Suppressions used" by default; notes reach every format that shows them */
    for (size_t k = 0; k < s->n; k++) {
        const struct rule *ru = &s->rules[k];
        if (!hits[k])
            continue;
        char text[1024];
        snprintf(text, sizeof text, "suppression '%s' matched %llu (%s:%d)", ru->text, (unsigned long long)hits[k],
                 s->path, ru->line);
        note_once(r, text);
    }
    free(hits);
}

void clk_suppressions_free(struct clk_suppressions *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->n; k++) {
        free(s->rules[k].text);
        free(s->rules[k].glob);
    }
    free(s->rules);
    free(s->path);
    free(s);
}
