/* render_junit.c — JUnit XML (the Jenkins/Surefire schema CI systems read): one testcase per finding. */
#include <stdlib.h>
#include <string.h>

#include "connleak.h"
#include "harness.h"

/* Length of the valid XML 1.0 character starting at p (UTF-8), 0 when it is not one:
 * a malformed sequence, a C0 control other than tab/newline/return, a surrogate, U+FFFE/U+FFFF. */
static int xml_char_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x20)
        return c == '\t' || c == '\n' || c == '\r';
    int len = clk_utf8_len(p);
    /* U+FFFE and U+FFFF: EF BF BE, EF BF BF */
    if (len == 3 && c == 0xef && p[1] == 0xbf && p[2] >= 0xbe)
        return 0;
    return len;
}

/* Bytes written as they are: printable ASCII but the five XML reserves markup for. */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* '"' '&' '\'' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, /* '<' '>' */
    R16(1), R16(1), R16(1), R16(1),
#undef R16
};

/* Writes s escaped for an attribute value (attr) or element text. Bytes XML cannot carry at all
 * (even as references) are shown as \xNN so the document stays well-formed. */
static void xml_put(struct clk_buf *b, const char *s, int attr)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        const unsigned char *run = p;
        while (plain[*p])
            p++;
        if (p > run)
            clk_buf_add(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        int len = xml_char_len(p);
        if (!len) {
            clk_buf_printf(b, "\\x%02X", *p++);
            continue;
        }
        switch (*p) {
        case '&': clk_buf_puts(b, "&amp;"); break;
        case '<': clk_buf_puts(b, "&lt;"); break;
        case '>': clk_buf_puts(b, "&gt;"); break;
        case '"': clk_buf_puts(b, "&quot;"); break;
        case '\'': clk_buf_puts(b, "&apos;"); break;
        /* attribute-value normalisation would turn these into spaces; \r is normalised away in text too */
        case '\t': clk_buf_puts(b, attr ? "&#9;" : "\t"); break;
        case '\n': clk_buf_puts(b, attr ? "&#10;" : "\n"); break;
        case '\r': clk_buf_puts(b, "&#13;"); break;
        default: clk_buf_add(b, (const char *)p, (size_t)len);
        }
        p += len;
    }
}

static void attr(struct clk_buf *b, const char *name, const char *value)
{
    clk_buf_printf(b, " %s=\"", name);
    xml_put(b, value, 1);
    clk_buf_putc(b, '"');
}

static void attr_u(struct clk_buf *b, const char *name, unsigned long long v)
{
    clk_buf_printf(b, " %s=\"%llu\"", name, v);
}

/* The element text is escaped piece by piece as it is written: escaping goes a character at a time and
 * every piece starts with ASCII, so the pieces come out as the whole would. A frame's line after its
 * number, escaped, is remembered per frame (see clk_frame_memo). */
static void frame_line(struct clk_buf *out, const struct clk_frame *f, const void *opts)
{
    const struct clk_render_opts *o = opts;
    struct clk_buf b = {0};
    clk_buf_printf(&b, " %s", f->function ? f->function : "??");
    if (f->file)
        clk_buf_printf(&b, " %s:%d", clk_relative_path(o, f->file), f->line);
    if (f->module)
        clk_buf_printf(&b, " (%s+0x%llx)", clk_relative_path(o, f->module), (unsigned long long)f->offset);
    else if (f->has_offset)
        clk_buf_printf(&b, " (0x%llx)", (unsigned long long)f->offset);
    clk_buf_add(&b, "\n", 1);
    xml_put(out, b.p, 0);
    free(b.p);
}

static void stack_text(struct clk_buf *out, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                       const char *title, const struct clk_stack *s)
{
    xml_put(out, title, 0);
    clk_buf_add(out, ":\n", 2);
    if (!s->n)
        clk_buf_puts(out, "    (no stack recorded)\n");
    for (int i = 0; i < s->n; i++) {
        clk_buf_add(out, "    #", 5);
        clk_buf_int(out, i);
        clk_frame_memo_add(memo, out, &s->f[i], frame_line, o);
    }
}

/* What a testcase's failure (or skip) says: the message, test, fingerprint and stacks. */
static void body(struct clk_buf *out, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                 const struct clk_finding *f, const char *msg)
{
    struct clk_buf head = {0};
    clk_buf_printf(&head, "%s\n", msg);
    if (f->test)
        clk_buf_printf(&head, "test: %s\n", f->test);
    clk_buf_printf(&head, "fingerprint: %s\n", f->fingerprint);
    xml_put(out, head.p, 0);
    free(head.p);
    if (f->kind == CLK_LEAK) {
        stack_text(out, memo, o, f->checkout ? "checked out at" : "opened at", &f->opened_at);
    } else {
        stack_text(out, memo, o, f->kind == CLK_DOUBLE_CLOSE ? "closed again at" : "closed at", &f->closed_at);
        if (f->kind == CLK_DOUBLE_CLOSE) {
            stack_text(out, memo, o, "first closed at", &f->first_closed_at);
            stack_text(out, memo, o, "opened at", &f->opened_at);
        }
    }
}

/* "in leak_twice (src/db.c:30)": the frame a reader should look at — the first in the repository. */
static void where(struct clk_buf *b, const struct clk_render_opts *o, const struct clk_stack *s)
{
    const struct clk_frame *at = NULL;
    for (int i = 0; i < s->n && !at; i++)
        if (s->f[i].file && clk_relative_path(o, s->f[i].file) != s->f[i].file)
            at = &s->f[i];
    for (int i = 0; i < s->n && !at; i++)
        if (s->f[i].file)
            at = &s->f[i];
    if (!at && s->n)
        at = &s->f[0];
    if (!at)
        return;
    clk_buf_printf(b, " in %s", at->function ? at->function : "??");
    if (at->file)
        clk_buf_printf(b, " (%s:%d)", clk_relative_path(o, at->file), at->line);
}

/* The failure message: one line that says what, where, how often and in which processes. */
static char *message(const struct clk_finding *f, const struct clk_render_opts *o)
{
    struct clk_buf b = {0};
    clk_buf_printf(&b, "%s connection", f->backend);
    if (f->target)
        clk_buf_printf(&b, " to %s", f->target);
    switch (f->kind) {
    case CLK_LEAK:
        clk_buf_printf(&b, f->checkout ? " checked out" : " opened");
        where(&b, o, &f->opened_at);
        clk_buf_printf(&b, f->checkout ? " is never returned to its pool" : " is never closed");
        break;
    case CLK_DOUBLE_CLOSE:
        clk_buf_printf(&b, " closed again");
        where(&b, o, &f->closed_at);
        if (clk_first_function(&f->first_closed_at))
            clk_buf_printf(&b, " after %s closed it", clk_first_function(&f->first_closed_at));
        break;
    case CLK_UNKNOWN_CLOSE:
        clk_buf_printf(&b, " never seen open is closed");
        where(&b, o, &f->closed_at);
        break;
    }
    clk_render_details(&b, f, NULL, 0);
    return b.p;
}

/* What names an opener (or closer) without a symbol: its module and offset. */
static void frame_name(struct clk_buf *b, const struct clk_stack *s)
{
    const struct clk_frame *f = &s->f[0];
    if (f->function)
        clk_buf_printf(b, "%s", f->function);
    else if (f->module)
        clk_buf_printf(b, "%s+0x%llx", clk_basename(f->module), (unsigned long long)f->offset);
    else
        clk_buf_printf(b, "0x%llx", (unsigned long long)f->offset);
}

/* Named by the test it happened in, else by the frame that opened (or, never seen open, closed) the
 * connection; a repeated name gets " #2", " #3"... since CI systems merge testcases of the same name. */
static char *testcase_name(const struct clk_finding *f, const char *classname, struct clk_map *seen)
{
    struct clk_buf b = {0};
    if (f->test)
        clk_buf_printf(&b, "%s", f->test);
    else if (f->opened_at.n)
        frame_name(&b, &f->opened_at);
    else if (f->closed_at.n)
        frame_name(&b, &f->closed_at);
    else
        clk_buf_printf(&b, "(no stack)");
    uint64_t key = clk_fnv1a(clk_fnv1a(CLK_FNV_INIT, classname, strlen(classname) + 1), b.p, b.n);
    void **slot = clk_map_slot(seen, key, 1);
    uintptr_t n = (uintptr_t)*slot + 1;
    *slot = (void *)n;
    if (n > 1)
        clk_buf_printf(&b, " #%lu", (unsigned long)n);
    return b.p;
}

static void testcase(struct clk_buf *out, struct clk_frame_memo *memo, const struct clk_finding *f,
                     const struct clk_render_opts *o, struct clk_map *seen)
{
    char classname[64];
    snprintf(classname, sizeof classname, "connleak.%s", clk_kind_name(f->kind));
    char *name = testcase_name(f, classname, seen);
    char *msg = message(f, o);
    clk_buf_puts(out, "    <testcase");
    attr(out, "classname", classname);
    attr(out, "name", name);
    clk_buf_puts(out, " time=\"0\">\n");
    if (f->suppressed || f->baselined) {
        /* counted, not failing: a suppression matched, or the baseline already knows it */
        struct clk_buf why = {0};
        clk_buf_printf(&why, "%s: %s", f->suppressed ? "suppressed" : "baselined", msg);
        clk_buf_puts(out, "      <skipped");
        attr(out, "message", why.p);
        clk_buf_puts(out, ">");
        free(why.p);
        body(out, memo, o, f, msg);
        clk_buf_puts(out, "</skipped>\n");
    } else {
        clk_buf_puts(out, "      <failure");
        attr(out, "message", msg);
        attr(out, "type", clk_kind_name(f->kind));
        clk_buf_puts(out, ">");
        body(out, memo, o, f, msg);
        clk_buf_puts(out, "</failure>\n");
    }
    clk_buf_puts(out, "    </testcase>\n");
    free(msg);
    free(name);
}

/* A note that fails the run (--fail-on unseen) fails a testcase of its own, so CI shows it red;
 * every note is in system-out too. */
static void note_testcase(struct clk_buf *out, const char *note, unsigned n)
{
    clk_buf_puts(out, "    <testcase");
    attr(out, "classname", "connleak.unseen");
    if (n > 1)
        clk_buf_printf(out, " name=\"database client not seen #%u\"", n);
    else
        attr(out, "name", "database client not seen");
    clk_buf_puts(out, " time=\"0\">\n      <failure");
    attr(out, "message", note);
    attr(out, "type", "unseen");
    clk_buf_puts(out, ">");
    xml_put(out, note, 0);
    clk_buf_puts(out, "\n(--fail-on unseen)</failure>\n    </testcase>\n");
}

int clk_render_junit(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    unsigned long long failures = clk_report_failing_notes(r), skipped = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed || f->baselined)
            skipped++;
        else
            failures++;
    }
    /* a passing "connleak" testcase when nothing fails, so the suite is never empty and shows green */
    unsigned long long tests = r->nfindings + clk_report_failing_notes(r) + (failures == 0);
    struct clk_buf b = {0};

    clk_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    attr(&b, "name", "connleak");
    attr_u(&b, "tests", tests);
    attr_u(&b, "failures", failures);
    attr_u(&b, "errors", 0);
    clk_buf_puts(&b, " time=\"0\">\n  <testsuite");
    attr(&b, "name", "connleak");
    attr_u(&b, "tests", tests);
    attr_u(&b, "failures", failures);
    attr_u(&b, "errors", 0);
    attr_u(&b, "skipped", skipped);
    clk_buf_puts(&b, " time=\"0\">\n    <properties>\n      <property");
    attr(&b, "name", "connleak.version");
    attr(&b, "value", CONNLEAK_VERSION);
    clk_buf_puts(&b, "/>\n    </properties>\n");

    struct clk_map seen = {0};
    struct clk_frame_memo memo = {0};
    for (size_t i = 0; i < r->nfindings; i++) {
        testcase(&b, &memo, r->findings[i], o, &seen);
        clk_buf_flush(&b, out, CLK_FLUSH_AT);
    }
    clk_map_free(&seen);
    clk_frame_memo_free(&memo);
    for (size_t i = 0, n = 0; i < r->nnotes; i++)
        if (clk_note_fails(r, i))
            note_testcase(&b, r->notes[i], (unsigned)++n);
    if (!failures)
        clk_buf_puts(&b, "    <testcase classname=\"connleak\" name=\"connleak\" time=\"0\"/>\n");

    struct clk_buf sys = {0};
    for (size_t i = 0; i < r->nnotes; i++)
        clk_buf_printf(&sys, "connleak: note: %s\n", r->notes[i]);
    /* held longer than --held-longer-than: information, never a failure */
    for (size_t i = 0; i < r->nlong_held; i++) {
        const struct clk_long_held *h = &r->long_held[i];
        const char *fn = clk_first_function(&h->f.opened_at);
        clk_buf_printf(&sys, "connleak: held %llu ms (longer than %llu ms): a %s connection to %s opened by %s%s%s\n",
                       (unsigned long long)h->held_ms, (unsigned long long)r->held_threshold_ms, h->f.backend,
                       h->f.target ? h->f.target : "(unknown target)", fn ? fn : "??", h->f.test ? " in test " : "",
                       h->f.test ? h->f.test : "");
    }
    unsigned long long leaks = r->summary.leaks, dc = r->summary.double_closes, uc = r->summary.unknown_closes;
    clk_buf_printf(&sys,
                   "SUMMARY: connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s, "
                   "%llu suppressed, %llu baselined; %llu connect%s, %llu close%s in %llu process%s.\n",
                   leaks, leaks == 1 ? "" : "s", dc, dc == 1 ? "" : "s", uc, uc == 1 ? "" : "s",
                   (unsigned long long)r->summary.suppressed, (unsigned long long)r->summary.baselined,
                   (unsigned long long)r->summary.connects, r->summary.connects == 1 ? "" : "s",
                   (unsigned long long)r->summary.closes, r->summary.closes == 1 ? "" : "s",
                   (unsigned long long)r->summary.processes, r->summary.processes == 1 ? "" : "es");
    clk_buf_puts(&b, "    <system-out>");
    xml_put(&b, sys.p, 0);
    clk_buf_puts(&b, "</system-out>\n  </testsuite>\n</testsuites>\n");
    free(sys.p);
    clk_buf_flush(&b, out, 0);
    free(b.p);
    return ferror(out) ? -1 : 0;
}
