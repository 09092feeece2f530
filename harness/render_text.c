/* render_text.c — the sanitizer-style text report: a header per finding, numbered frames, a summary line. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* A frame's line after its number: " function file:line (module+0xoffset)". */
static void frame_line(struct clk_buf *b, const struct clk_frame *f, const void *unused)
{
    (void)unused;
    clk_buf_putc(b, ' ');
    clk_buf_puts(b, f->function ? f->function : "??");
    if (f->file)
        clk_buf_printf(b, " %s:%d", f->file, f->line);
    if (f->language)
        clk_buf_printf(b, " (%s)", f->language);
    else if (f->module)
        clk_buf_printf(b, " (%s+0x%llx)", f->module, (unsigned long long)f->offset);
    else if (f->has_offset)
        clk_buf_printf(b, " (0x%llx)", (unsigned long long)f->offset);
    clk_buf_putc(b, '\n');
}

/* Into a buffer, each distinct frame formatted once: a report can hold millions of frames. */
static void frames(struct clk_buf *b, struct clk_frame_memo *memo, const struct clk_stack *s)
{
    if (!s->n) {
        clk_buf_puts(b, "    (no stack recorded)\n");
        return;
    }
    for (int i = 0; i < s->n; i++) {
        clk_buf_add(b, "    #", 5);
        clk_buf_int(b, i);
        clk_frame_memo_add(memo, b, &s->f[i], frame_line, NULL);
    }
}

static void pids(struct clk_buf *b, const struct clk_finding *f)
{
    clk_buf_puts(b, f->npids == 1 ? "pid " : "pids ");
    for (size_t i = 0; i < f->npids && i < 8; i++)
        clk_buf_printf(b, "%s%d", i ? ", " : "", f->pids[i]);
    if (f->npids > 8)
        clk_buf_printf(b, ", ... (%zu in all)", f->npids);
}

static void finding(struct clk_buf *b, struct clk_frame_memo *memo, const struct clk_finding *f)
{
    const char *target = f->target ? f->target : "(unknown target)";
    unsigned long long n = (unsigned long long)f->count;
    clk_buf_putc(b, '\n');
    switch (f->kind) {
    case CLK_LEAK:
        clk_buf_printf(b, "%s%llu %s connection%s to %s (%s", f->checkout ? "Checkout never returned: " : "Leak of ", n,
                       f->backend, n == 1 ? "" : "s", target,
                       f->via && !strcmp(f->via, "wire") ? "seen on its socket, " : "");
        pids(b, f);
        if (f->test)
            clk_buf_printf(b, ", test %s", f->test);
        clk_buf_printf(b, "), %s at:\n", f->checkout ? "checked out" : "opened");
        frames(b, memo, &f->opened_at);
        if (f->nunfinalized) {
            clk_buf_puts(b, "  its close returned SQLITE_BUSY: statements never finalized:\n");
            for (int i = 0; i < f->nunfinalized; i++)
                clk_buf_printf(b, "    %s\n", f->unfinalized[i]);
        }
        if (f->thread_created_at.n) { /* as the sanitizers' "thread T1 created at" */
            clk_buf_puts(b, "  thread created at:\n");
            frames(b, memo, &f->thread_created_at);
        }
        break;
    case CLK_DOUBLE_CLOSE:
        clk_buf_printf(b, "Double close of a %s connection to %s (", f->backend, target);
        pids(b, f);
        if (f->test)
            clk_buf_printf(b, ", test %s", f->test);
        if (n > 1)
            clk_buf_printf(b, ", %llu times", n);
        clk_buf_puts(b, "), closed again at:\n");
        frames(b, memo, &f->closed_at);
        clk_buf_puts(b, "  first closed at:\n");
        frames(b, memo, &f->first_closed_at);
        clk_buf_puts(b, "  opened at:\n");
        frames(b, memo, &f->opened_at);
        break;
    case CLK_UNKNOWN_CLOSE:
        clk_buf_printf(b, "Close of a %s connection never seen open (", f->backend);
        pids(b, f);
        clk_buf_printf(b, "%s), closed at:\n", n > 1 ? ", several times" : "");
        frames(b, memo, &f->closed_at);
        break;
    }
}

int clk_render_text(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    int verbose = o->verbose;
    uint64_t failing = clk_report_failing(r), failing_notes = clk_report_failing_notes(r),
             failing_finalized = clk_report_failing_finalized(r);
    struct clk_buf b = {0};
    struct clk_frame_memo memo = {0};
    /* the sanitizers' banner only over what fails the run: baselined findings and unknown closes come without one */
    if (failing || failing_notes || failing_finalized) {
        clk_buf_puts(&b, "=================================================================\n");
        if (failing)
            clk_buf_printf(&b, "==connleak==%s: connleak: %llu leaked connection%s or double close%s%s\n",
                           r->recorded ? "WARNING" : "ERROR", (unsigned long long)failing, failing == 1 ? "" : "s",
                           failing == 1 ? "" : "s", r->recorded ? " (recorded in the baseline, not failing)" : "");
        if (failing_notes)
            clk_buf_printf(&b, "==connleak==ERROR: connleak: %llu note%s on database clients the detector cannot "
                           "see (--fail-on unseen)\n", (unsigned long long)failing_notes, failing_notes == 1 ? "" : "s");
        if (failing_finalized)
            clk_buf_printf(&b, "==connleak==ERROR: connleak: %llu connection%s closed by the garbage collector, not by "
                           "the program (--fail-on finalizer)\n", (unsigned long long)failing_finalized,
                           failing_finalized == 1 ? "" : "s");
    }
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed && !verbose)
            continue;
        if (f->suppressed)
            clk_buf_puts(&b, "\n(suppressed)");
        else if (f->baselined)
            clk_buf_puts(&b, "\n(baselined)");
        finding(&b, &memo, f);
        clk_buf_flush(&b, out, CLK_FLUSH_AT);
    }
    /* held longer than --held-longer-than: reported, never failing */
    for (size_t i = 0; i < r->nlong_held; i++) {
        const struct clk_long_held *h = &r->long_held[i];
        clk_buf_printf(&b, "\nHeld %llu ms (longer than %llu ms%s): a %s connection to %s (pid %d%s%s), opened at:\n",
                       (unsigned long long)h->held_ms, (unsigned long long)r->held_threshold_ms,
                       h->closed ? ", then closed" : ", still open at exit", h->f.backend,
                       h->f.target ? h->f.target : "(unknown target)", h->f.npids ? h->f.pids[0] : 0,
                       h->f.test ? ", test " : "", h->f.test ? h->f.test : "");
        frames(&b, &memo, &h->f.opened_at);
        clk_buf_flush(&b, out, CLK_FLUSH_AT);
    }
    /* closed by a garbage collector: reported, not failing unless --fail-on finalizer */
    for (size_t i = 0; r->finalized && i < r->finalized->nfindings; i++) {
        const struct clk_finding *f = r->finalized->findings[i];
        unsigned long long n = (unsigned long long)f->count;
        clk_buf_printf(&b, "\nClosed by the garbage collector, not by the program: %llu %s connection%s to %s, opened at:\n",
                       n, f->backend, n == 1 ? "" : "s", f->target ? f->target : "(unknown target)");
        frames(&b, &memo, &f->opened_at);
        clk_buf_puts(&b, "  closed at:\n");
        frames(&b, &memo, &f->closed_at);
        clk_buf_flush(&b, out, CLK_FLUSH_AT);
    }
    for (size_t i = 0; i < r->nnotes; i++)
        clk_buf_printf(&b, "\nconnleak: %s: %s\n", clk_note_fails(r, i) ? "error (--fail-on unseen)" : "note",
                       r->notes[i]);
    /* each only when there are some: the line stays as it was without them */
    char known[192] = "";
    size_t kn = 0;
    if (r->summary.baselined)
        kn += (size_t)snprintf(known + kn, sizeof known - kn, ", %llu baselined", (unsigned long long)r->summary.baselined);
    if (r->summary.closed_by_finalizer && kn < sizeof known)
        kn += (size_t)snprintf(known + kn, sizeof known - kn, ", %llu closed by the garbage collector",
                               (unsigned long long)r->summary.closed_by_finalizer);
    if (r->nlong_held && kn < sizeof known)
        snprintf(known + kn, sizeof known - kn, ", %zu held longer than %llu ms", r->nlong_held,
                 (unsigned long long)r->held_threshold_ms);
    unsigned long long leaks = r->summary.leaks, dc = r->summary.double_closes, uc = r->summary.unknown_closes;
    clk_buf_printf(&b,
                   "\nSUMMARY: connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s, "
                   "%llu suppressed%s; %llu connect%s, %llu close%s in %llu process%s.\n",
                   leaks, leaks == 1 ? "" : "s", dc, dc == 1 ? "" : "s", uc, uc == 1 ? "" : "s",
                   (unsigned long long)r->summary.suppressed, known, (unsigned long long)r->summary.connects,
                   r->summary.connects == 1 ? "" : "s", (unsigned long long)r->summary.closes,
                   r->summary.closes == 1 ? "" : "s", (unsigned long long)r->summary.processes,
                   r->summary.processes == 1 ? "" : "es");
    clk_buf_flush(&b, out, 0);
    free(b.p);
    clk_frame_memo_free(&memo);
    return ferror(out) ? -1 : 0;
}
