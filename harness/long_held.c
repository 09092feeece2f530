/* long_held.c — connections held open longer than --held-longer-than while the command ran, closed later or not (as HikariCP's leakDetectionThreshold warns). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void clk_long_held_add(struct clk_report *r, const struct clk_finding *f, uint64_t held_ms, int closed)
{
    if (r->nlong_held == r->caplong_held) {
        r->caplong_held = r->caplong_held ? r->caplong_held * 2 : 8;
        r->long_held = clk_xrealloc(r->long_held, r->caplong_held * sizeof *r->long_held);
    }
    struct clk_long_held *h = &r->long_held[r->nlong_held++];
    memset(h, 0, sizeof *h);
    h->f = *f;
    h->f.pids = clk_xmalloc(f->npids * sizeof *f->pids + 1);
    memcpy(h->f.pids, f->pids, f->npids * sizeof *f->pids);
    h->f.opened_at.f = clk_xmalloc((size_t)f->opened_at.n * sizeof *f->opened_at.f + 1);
    memcpy(h->f.opened_at.f, f->opened_at.f, (size_t)f->opened_at.n * sizeof *f->opened_at.f);
    memset(&h->f.closed_at, 0, sizeof h->f.closed_at);
    memset(&h->f.first_closed_at, 0, sizeof h->f.first_closed_at);
    memset(&h->f.thread_created_at, 0, sizeof h->f.thread_created_at);
    h->held_ms = held_ms;
    h->closed = closed;
}
