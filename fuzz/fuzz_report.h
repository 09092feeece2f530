/* fuzz_report.h — for the CLI parsers' fuzz bodies: freeing a report (the CLI never does) and checking it is sane. */
#ifndef CONNLEAK_FUZZ_REPORT_H
#define CONNLEAK_FUZZ_REPORT_H

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "harness.h"

/* Frees what a report owns; interned strings and symbolizer caches live for the process. */
static inline void fuzz_report_free(struct clk_report *r)
{
    for (int i = 0; i < r->ncommand; i++)
        free(r->command[i]);
    free(r->command);
    for (size_t i = 0; i < r->nfindings; i++) {
        struct clk_finding *f = r->findings[i];
        free(f->pids);
        free(f->opened_at.f);
        free(f->first_closed_at.f);
        free(f->closed_at.f);
        free(f->thread_created_at.f);
        free(f);
    }
    free(r->findings);
    clk_map_free(&r->index);
    for (size_t i = 0; i < r->sources.cap; i++)
        if (r->sources.keys[i])
            free(r->sources.vals[i]);
    clk_map_free(&r->sources);
    for (size_t i = 0; i < r->nnotes; i++)
        free(r->notes[i]);
    free(r->notes);
    memset(r, 0, sizeof *r);
}

static inline void fuzz_check_stack(const struct clk_stack *s)
{
    FUZZ_CHECK(s->n >= 0);
    FUZZ_CHECK(s->n == 0 || s->f != NULL);
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *fr = &s->f[i];
        /* touch every string: a dangling one shows under ASan */
        FUZZ_CHECK(!fr->function || strlen(fr->function) < (size_t)-1);
        FUZZ_CHECK(!fr->file || strlen(fr->file) < (size_t)-1);
        FUZZ_CHECK(!fr->module || strlen(fr->module) < (size_t)-1);
    }
}

/* Findings well formed, the summary consistent with them (clk_report_finish). */
static inline void fuzz_check_report(struct clk_report *r)
{
    FUZZ_CHECK(r->nfindings <= r->capfindings);
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        FUZZ_CHECK(f != NULL);
        FUZZ_CHECK(f->kind == CLK_LEAK || f->kind == CLK_DOUBLE_CLOSE || f->kind == CLK_UNKNOWN_CLOSE);
        FUZZ_CHECK(f->count >= 1);
        FUZZ_CHECK(f->backend != NULL);
        FUZZ_CHECK(strlen(f->fingerprint) == 32 && strspn(f->fingerprint, "0123456789abcdef") == 32);
        FUZZ_CHECK(f->npids == 0 || f->pids != NULL);
        FUZZ_CHECK(!f->target || strlen(f->target) < (size_t)-1);
        FUZZ_CHECK(!f->test || strlen(f->test) < (size_t)-1);
        fuzz_check_stack(&f->opened_at);
        fuzz_check_stack(&f->first_closed_at);
        fuzz_check_stack(&f->closed_at);
        fuzz_check_stack(&f->thread_created_at);
    }
    for (size_t i = 0; i < r->nnotes; i++)
        FUZZ_CHECK(r->notes[i] && strlen(r->notes[i]) < 1024);
    clk_report_finish(r);
    uint64_t total = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        total += r->findings[i]->count;
    FUZZ_CHECK(r->summary.leaks + r->summary.double_closes + r->summary.unknown_closes + r->summary.suppressed ==
               total);
}

#endif
