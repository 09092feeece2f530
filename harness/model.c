/* model.c — the merged report: findings keyed by what they are and where, counts summed, pids united. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void clk_report_init(struct clk_report *r)
{
    memset(r, 0, sizeof *r);
}

const char *clk_kind_name(enum clk_kind k)
{
    return k == CLK_LEAK ? "leak" : k == CLK_DOUBLE_CLOSE ? "double_close" : "unknown_close";
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    h = clk_fnv1a(h, s ? s : "\1", s ? strlen(s) + 1 : 1);
    return h;
}

static uint64_t hash_stack(uint64_t h, const struct clk_stack *s, int with_lines)
{
    h = clk_fnv1a(h, &s->n, sizeof s->n);
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        h = hash_str(h, f->function);
        h = hash_str(h, clk_basename(f->module));
        if (with_lines) {
            h = hash_str(h, f->file);
            h = clk_fnv1a(h, &f->line, sizeof f->line);
            if (!f->function) /* without a name, the address is all there is */
                h = clk_fnv1a(h, &f->offset, sizeof f->offset);
        }
    }
    return h;
}

static uint64_t finding_hash(const struct clk_finding *f, uint64_t seed, int with_lines)
{
    uint64_t h = seed;
    h = clk_fnv1a(h, &f->kind, sizeof f->kind);
    h = clk_fnv1a(h, &f->checkout, sizeof f->checkout);
    h = hash_str(h, f->backend);
    h = hash_str(h, f->test);
    h = hash_stack(h, &f->opened_at, with_lines);
    h = hash_stack(h, &f->closed_at, with_lines);
    if (with_lines) {
        /* the merge key; the fingerprint leaves out targets (temporary paths differ per run) and lines */
        h = hash_str(h, f->target);
        h = hash_stack(h, &f->first_closed_at, with_lines);
    }
    return h;
}

/* Hashes function names and module base names only: stable across builds,
 * machines and address-space layouts, so baselines and shards can compare. */
void clk_finding_fingerprint(struct clk_finding *f)
{
    uint64_t a = finding_hash(f, CLK_FNV_INIT, 0);
    uint64_t b = finding_hash(f, 0x9e3779b97f4a7c15ull, 0);
    snprintf(f->fingerprint, sizeof f->fingerprint, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static struct clk_stack copy_stack(const struct clk_stack *s)
{
    struct clk_stack c = {NULL, s->n};
    if (s->n) {
        c.f = clk_xmalloc((size_t)s->n * sizeof *c.f);
        memcpy(c.f, s->f, (size_t)s->n * sizeof *c.f);
    }
    return c;
}

static void add_pid(struct clk_finding *f, int pid)
{
    for (size_t i = 0; i < f->npids; i++)
        if (f->pids[i] == pid)
            return;
    f->pids = clk_xrealloc(f->pids, (f->npids + 1) * sizeof *f->pids);
    f->pids[f->npids++] = pid;
}

void clk_report_add(struct clk_report *r, const struct clk_finding *in)
{
    uint64_t key = finding_hash(in, CLK_FNV_INIT, 1);
    void **slot = clk_map_slot(&r->index, key, 1);
    struct clk_finding *f = *slot;
    if (f) {
        f->count += in->count;
        for (size_t i = 0; i < in->npids; i++)
            add_pid(f, in->pids[i]);
        return;
    }
    f = clk_xcalloc(1, sizeof *f);
    *f = *in;
    f->pids = NULL;
    f->npids = 0;
    for (size_t i = 0; i < in->npids; i++)
        add_pid(f, in->pids[i]);
    f->opened_at = copy_stack(&in->opened_at);
    f->first_closed_at = copy_stack(&in->first_closed_at);
    f->closed_at = copy_stack(&in->closed_at);
    if (!f->fingerprint[0])
        clk_finding_fingerprint(f);
    if (r->nfindings == r->capfindings) {
        r->capfindings = r->capfindings ? r->capfindings * 2 : 16;
        r->findings = clk_xrealloc(r->findings, r->capfindings * sizeof *r->findings);
    }
    r->findings[r->nfindings++] = f;
    *slot = f;
}

void clk_report_note(struct clk_report *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->notes = clk_xrealloc(r->notes, (r->nnotes + 1) * sizeof *r->notes);
    r->notes[r->nnotes++] = clk_xstrdup(buf);
}

uint64_t clk_report_failing(const struct clk_report *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (!f->suppressed && !f->baselined && (f->kind == CLK_LEAK || f->kind == CLK_DOUBLE_CLOSE))
            n += f->count;
    }
    return n;
}

static int by_importance(const void *a, const void *b)
{
    const struct clk_finding *x = *(struct clk_finding *const *)a, *y = *(struct clk_finding *const *)b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->fingerprint, y->fingerprint);
}

void clk_report_sort(struct clk_report *r)
{
    if (r->nfindings > 1) /* findings is NULL in a clean report: qsort's base must not be */
        qsort(r->findings, r->nfindings, sizeof *r->findings, by_importance);
}

/* Summary figures that follow from the findings. */
void clk_report_finish(struct clk_report *r)
{
    r->summary.leaks = r->summary.double_closes = r->summary.unknown_closes = r->summary.suppressed = 0;
    r->summary.baselined = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->baselined && !f->suppressed)
            r->summary.baselined += f->count;
        if (f->suppressed)
            r->summary.suppressed += f->count;
        else if (f->kind == CLK_LEAK)
            r->summary.leaks += f->count;
        else if (f->kind == CLK_DOUBLE_CLOSE)
            r->summary.double_closes += f->count;
        else
            r->summary.unknown_closes += f->count;
    }
    clk_report_sort(r);
}
