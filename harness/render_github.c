/* render_github.c — GitHub Actions workflow commands: an ::error/::warning annotation per finding, then a summary. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Escapes per the runner's rules: %, CR and LF always; ':' and ',' too in property values
 * (they delimit properties). Everything a user controls (targets, paths, names) goes through here,
 * so a crafted target cannot end the line and inject a command of its own. Other control characters
 * (an ESC sequence, say) have no escape in that grammar: they are shown as \xNN, not passed to the log. */
static int special(unsigned char c, int property)
{
    return c == '%' || (c < 0x20 && c != '\t') || c == 0x7f || (property && (c == ':' || c == ','));
}

static void gh_escape(struct clk_buf *b, const char *s, int property)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        const unsigned char *run = p; /* the bytes that need nothing, in one piece */
        while (*p && !special(*p, property))
            p++;
        clk_buf_add(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        switch (*p) {
        case '%': clk_buf_puts(b, "%25"); break;
        case '\r': clk_buf_puts(b, "%0D"); break;
        case '\n': clk_buf_puts(b, "%0A"); break;
        case ':': clk_buf_puts(b, "%3A"); break;
        case ',': clk_buf_puts(b, "%2C"); break;
        default: clk_buf_printf(b, "\\x%02X", *p);
        }
        p++;
    }
}

/* A plain log line (notes, summary) must stay one line, and not be read as a command. */
static void plain_line(struct clk_buf *b, const char *s)
{
    if (s[0] == ':' && s[1] == ':')
        clk_buf_putc(b, ' ');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\r' || c == '\n')
            clk_buf_putc(b, ' ');
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            clk_buf_printf(b, "\\x%02X", c);
        else
            clk_buf_putc(b, (char)c);
    }
    clk_buf_putc(b, '\n');
}

/* The frame the annotation is attached to: the first in the repository, else the first with an
 * absolute file; a build-relative leftover ("./csu/...") names no file GitHub could show. */
static const struct clk_frame *annotated_frame(const struct clk_render_opts *o, const struct clk_stack *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->f[i].file && clk_relative_path(o, s->f[i].file) != s->f[i].file)
            return &s->f[i];
    for (int i = 0; i < s->n; i++)
        if (s->f[i].file && s->f[i].file[0] == '/')
            return &s->f[i];
    return NULL;
}

/* The stacks go out escaped piece by piece (gh_escape goes a byte at a time, so the pieces come out as
 * the whole would). A frame's line after its number, escaped, is remembered per frame (see clk_frame_memo). */
static void frame_line(struct clk_buf *out, const struct clk_frame *f, const void *opts)
{
    const struct clk_render_opts *o = opts;
    struct clk_buf b = {0};
    clk_buf_printf(&b, " %s", f->function ? f->function : "??");
    if (f->file)
        clk_buf_printf(&b, " %s:%d", clk_relative_path(o, f->file), f->line);
    else if (f->module)
        clk_buf_printf(&b, " (%s+0x%llx)", clk_relative_path(o, f->module), (unsigned long long)f->offset);
    gh_escape(out, b.p, 0);
    free(b.p);
}

static void stack_lines(struct clk_buf *out, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                        const char *title, const struct clk_stack *s)
{
    clk_buf_puts(out, "%0A");
    gh_escape(out, title, 0);
    clk_buf_putc(out, ':');
    if (!s->n)
        clk_buf_puts(out, "%0A  (no stack recorded)");
    for (int i = 0; i < s->n; i++) {
        clk_buf_add(out, "%0A  #", 6);
        clk_buf_int(out, i);
        clk_frame_memo_add(memo, out, &s->f[i], frame_line, o);
    }
}

/* The annotation's text, escaped: a sentence about the annotated line, then the stacks. */
static void message(struct clk_buf *out, const struct clk_finding *f, struct clk_frame_memo *memo,
                    const struct clk_render_opts *o)
{
    struct clk_buf b = {0};
    clk_buf_printf(&b, "%s connection", f->backend);
    if (f->target)
        clk_buf_printf(&b, " to %s", f->target);
    const char *opener = clk_first_function(&f->opened_at), *first_closer = clk_first_function(&f->first_closed_at);
    if (f->kind == CLK_LEAK)
        clk_buf_printf(&b, f->checkout ? " checked out here is never returned to its pool"
                                       : " opened here is never closed");
    else if (f->kind == CLK_DOUBLE_CLOSE)
        clk_buf_printf(&b, " closed here was already closed");
    else
        clk_buf_printf(&b, " closed here was never seen open");
    /* the parenthesis: who else was involved, how often, in which test and processes */
    struct clk_buf first = {0};
    if (f->kind == CLK_DOUBLE_CLOSE && opener)
        clk_buf_printf(&first, "opened by %s", opener);
    if (f->kind == CLK_DOUBLE_CLOSE && first_closer)
        clk_buf_printf(&first, "%sfirst closed by %s", first.n ? ", " : "", first_closer);
    clk_render_details(&b, f, first.p, 1);
    free(first.p);
    if (f->baselined)
        clk_buf_printf(&b, "; baselined, does not fail the run");
    gh_escape(out, b.p, 0);
    free(b.p);
    if (f->kind == CLK_LEAK) {
        stack_lines(out, memo, o, f->checkout ? "checked out at" : "opened at", &f->opened_at);
    } else if (f->kind == CLK_DOUBLE_CLOSE) {
        stack_lines(out, memo, o, "closed again at", &f->closed_at);
        stack_lines(out, memo, o, "first closed at", &f->first_closed_at);
        stack_lines(out, memo, o, "opened at", &f->opened_at);
    } else {
        stack_lines(out, memo, o, "closed at", &f->closed_at);
    }
}

static void annotation(struct clk_buf *out, struct clk_frame_memo *memo, const struct clk_finding *f,
                       const struct clk_render_opts *o)
{
    /* unknown closes do not fail the run, nor do findings the baseline knows */
    const char *level = f->baselined ? "notice" : f->kind == CLK_UNKNOWN_CLOSE ? "warning" : "error";
    const struct clk_frame *at = annotated_frame(o, f->kind == CLK_LEAK ? &f->opened_at : &f->closed_at);
    clk_buf_printf(out, "::%s ", level);
    if (at) {
        clk_buf_puts(out, "file=");
        gh_escape(out, clk_relative_path(o, at->file), 1);
        if (at->line > 0)
            clk_buf_printf(out, ",line=%d", at->line);
        clk_buf_putc(out, ',');
    }
    struct clk_buf title = {0};
    if (f->kind == CLK_LEAK && f->checkout)
        clk_buf_printf(&title, "connleak: %s connection checkout never returned", f->backend);
    else if (f->kind == CLK_LEAK)
        clk_buf_printf(&title, "connleak: leaked %s connection", f->backend);
    else if (f->kind == CLK_DOUBLE_CLOSE)
        clk_buf_printf(&title, "connleak: double close of a %s connection", f->backend);
    else
        clk_buf_printf(&title, "connleak: close of a %s connection never seen open", f->backend);
    if (f->baselined)
        clk_buf_printf(&title, " (in baseline)");
    clk_buf_puts(out, "title=");
    gh_escape(out, title.p, 1);
    clk_buf_puts(out, "::");
    message(out, f, memo, o);
    clk_buf_putc(out, '\n');
    free(title.p);
}

int clk_render_github(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    struct clk_buf w = {0}; /* what goes to out */
    struct clk_frame_memo memo = {0};
    for (size_t i = 0; i < r->nfindings; i++)
        if (!r->findings[i]->suppressed) {
            annotation(&w, &memo, r->findings[i], o);
            clk_buf_flush(&w, out, CLK_FLUSH_AT);
        }
    /* connections held longer than --held-longer-than: warnings at the opener, never failing */
    for (size_t i = 0; i < r->nlong_held; i++) {
        const struct clk_long_held *h = &r->long_held[i];
        const struct clk_frame *at = annotated_frame(o, &h->f.opened_at);
        clk_buf_puts(&w, "::warning ");
        if (at) {
            clk_buf_puts(&w, "file=");
            gh_escape(&w, clk_relative_path(o, at->file), 1);
            if (at->line > 0)
                clk_buf_printf(&w, ",line=%d", at->line);
            clk_buf_putc(&w, ',');
        }
        clk_buf_puts(&w, "title=");
        gh_escape(&w, "connleak: connection held too long", 1);
        clk_buf_puts(&w, "::");
        struct clk_buf m = {0};
        clk_buf_printf(&m, "a %s connection to %s held %llu ms (longer than %llu ms)%s", h->f.backend,
                       h->f.target ? h->f.target : "(unknown target)", (unsigned long long)h->held_ms,
                       (unsigned long long)r->held_threshold_ms, h->closed ? "" : ", still open when its process ended");
        gh_escape(&w, m.p, 0);
        free(m.p);
        clk_buf_putc(&w, '\n');
    }
    clk_frame_memo_free(&memo);
    struct clk_buf b = {0};
    /* a client the detector cannot see, or a journal read in part, is a warning annotation (an error
     * when --fail-on makes it fail the run); what is merely for information stays a log line */
    for (size_t i = 0; i < r->nnotes; i++) {
        enum clk_note_kind kind = clk_note_kind(r->notes[i]);
        if (kind == CLK_NOTE_INFO) {
            b.n = 0;
            clk_buf_printf(&b, "connleak: note: %s", r->notes[i]);
            plain_line(&w, b.p);
            continue;
        }
        clk_buf_printf(&w, "::%s title=", clk_note_fails(r, i) ? "error" : "warning");
        gh_escape(&w, kind == CLK_NOTE_UNSEEN ? "connleak: database client not seen" : "connleak: report incomplete", 1);
        clk_buf_puts(&w, "::");
        gh_escape(&w, r->notes[i], 0);
        clk_buf_putc(&w, '\n');
    }
    unsigned long long leaks = r->summary.leaks, dc = r->summary.double_closes, uc = r->summary.unknown_closes;
    b.n = 0;
    clk_buf_printf(&b,
                   "connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s, %llu suppressed, "
                   "%llu baselined; %llu connect%s, %llu close%s in %llu process%s.",
                   leaks, leaks == 1 ? "" : "s", dc, dc == 1 ? "" : "s", uc, uc == 1 ? "" : "s",
                   (unsigned long long)r->summary.suppressed, (unsigned long long)r->summary.baselined,
                   (unsigned long long)r->summary.connects, r->summary.connects == 1 ? "" : "s",
                   (unsigned long long)r->summary.closes, r->summary.closes == 1 ? "" : "s",
                   (unsigned long long)r->summary.processes, r->summary.processes == 1 ? "" : "es");
    plain_line(&w, b.p);
    free(b.p);
    clk_buf_flush(&w, out, 0);
    free(w.p);
    return ferror(out) ? -1 : 0;
}
