/* render_text.c — the sanitizer-style text report: a header per finding, numbered frames, a summary line. */
#include <string.h>

#include "harness.h"

static void frames(FILE *out, const struct clk_stack *s)
{
    if (!s->n) {
        fprintf(out, "    (no stack recorded)\n");
        return;
    }
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        fprintf(out, "    #%d %s", i, f->function ? f->function : "??");
        if (f->file)
            fprintf(out, " %s:%d", f->file, f->line);
        if (f->module)
            fprintf(out, " (%s+0x%llx)", f->module, (unsigned long long)f->offset);
        else if (f->has_offset)
            fprintf(out, " (0x%llx)", (unsigned long long)f->offset);
        fputc('\n', out);
    }
}

static void pids(FILE *out, const struct clk_finding *f)
{
    fprintf(out, "pid%s ", f->npids == 1 ? "" : "s");
    for (size_t i = 0; i < f->npids && i < 8; i++)
        fprintf(out, "%s%d", i ? ", " : "", f->pids[i]);
    if (f->npids > 8)
        fprintf(out, ", ... (%zu in all)", f->npids);
}

static void finding(FILE *out, const struct clk_finding *f)
{
    const char *target = f->target ? f->target : "(unknown target)";
    unsigned long long n = (unsigned long long)f->count;
    fputc('\n', out);
    switch (f->kind) {
    case CLK_LEAK:
        if (f->checkout)
            fprintf(out, "Checkout never returned: %llu %s connection%s to %s (", n, f->backend, n == 1 ? "" : "s",
                    target);
        else
            fprintf(out, "Leak of %llu %s connection%s to %s (", n, f->backend, n == 1 ? "" : "s", target);
        pids(out, f);
        if (f->test)
            fprintf(out, ", test %s", f->test);
        fprintf(out, "), %s at:\n", f->checkout ? "checked out" : "opened");
        frames(out, &f->opened_at);
        break;
    case CLK_DOUBLE_CLOSE:
        fprintf(out, "Double close of a %s connection to %s (", f->backend, target);
        pids(out, f);
        if (f->test)
            fprintf(out, ", test %s", f->test);
        if (n > 1)
            fprintf(out, ", %llu times", n);
        fprintf(out, "), closed again at:\n");
        frames(out, &f->closed_at);
        fprintf(out, "  first closed at:\n");
        frames(out, &f->first_closed_at);
        fprintf(out, "  opened at:\n");
        frames(out, &f->opened_at);
        break;
    case CLK_UNKNOWN_CLOSE:
        fprintf(out, "Close of a %s connection never seen open (", f->backend);
        pids(out, f);
        fprintf(out, "%s), closed at:\n", n > 1 ? ", several times" : "");
        frames(out, &f->closed_at);
        break;
    }
}

int clk_render_text(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    int verbose = o->verbose;
    uint64_t failing = clk_report_failing(r);
    int any = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        if (!r->findings[i]->suppressed || verbose)
            any = 1;
    if (any) {
        fprintf(out, "=================================================================\n");
        if (failing)
            fprintf(out, "==connleak==ERROR: connleak: %llu leaked connection%s or double close%s\n",
                    (unsigned long long)failing, failing == 1 ? "" : "s", failing == 1 ? "" : "s");
    }
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed && !verbose)
            continue;
        if (f->suppressed)
            fprintf(out, "\n(suppressed)");
        else if (f->baselined)
            fprintf(out, "\n(known, in baseline)");
        finding(out, f);
    }
    for (size_t i = 0; i < r->nnotes; i++)
        fprintf(out, "\nconnleak: note: %s\n", r->notes[i]);
    char known[64] = ""; /* only when a baseline skipped some: the line stays as it was without one */
    if (r->summary.baselined)
        snprintf(known, sizeof known, ", %llu known (baseline)", (unsigned long long)r->summary.baselined);
    unsigned long long leaks = r->summary.leaks, dc = r->summary.double_closes, uc = r->summary.unknown_closes;
    fprintf(out,
            "\nSUMMARY: connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s, "
            "%llu suppressed%s; %llu connects, %llu closes in %llu process%s.\n",
            leaks, leaks == 1 ? "" : "s", dc, dc == 1 ? "" : "s", uc, uc == 1 ? "" : "s",
            (unsigned long long)r->summary.suppressed, known, (unsigned long long)r->summary.connects,
            (unsigned long long)r->summary.closes, (unsigned long long)r->summary.processes,
            r->summary.processes == 1 ? "" : "es");
    return ferror(out) ? -1 : 0;
}
