/* render_json.c — the JSON report, version 1 (SPEC.md), written as it goes (json_out.c). */
#include "harness.h"

/* JSON strings must be UTF-8; a file name need not be: bytes that do not
 * decode become '?' rather than the field going missing. */
#define BAD_BYTE "?"

static void frame_json(struct clk_json *j, const struct clk_frame *f)
{
    clk_json_open(j, '{');
    clk_json_key_str(j, "function", f->function);
    clk_json_key_str(j, "file", f->file);
    clk_json_key(j, "line");
    if (f->line > 0)
        clk_json_int(j, f->line);
    else
        clk_json_null(j);
    clk_json_key_str(j, "module", f->module);
    /* "c" for native code (C++ too, names demangled), else the interpreter's ("python") */
    clk_json_key_str(j, "language", f->language ? f->language : "c");
    clk_json_key(j, "offset");
    if (f->has_offset) {
        char off[24];
        snprintf(off, sizeof off, "0x%llx", (unsigned long long)f->offset);
        clk_json_str(j, off);
    } else {
        clk_json_null(j);
    }
    clk_json_close(j, '}');
}

/* Each distinct frame is written once and copied after that. */
static void stack_json(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_stack *s)
{
    clk_json_open(j, '[');
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        size_t len;
        const char *text = clk_frame_memo_get(memo, f, &len);
        if (text) {
            clk_json_value_text(j, text, len);
            continue;
        }
        size_t start = clk_json_value_start(j);
        frame_json(j, f);
        clk_frame_memo_put(memo, f, j->b.p + start, j->b.n - start);
    }
    clk_json_close(j, ']');
}

/* One finding, compact; a suppressed one says its kind (last, for a leak: it has none otherwise). */
static void finding_json(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_finding *f)
{
    clk_json_open(j, '{');
    clk_json_key_str(j, "backend", f->backend);
    if (f->via)
        clk_json_key_str(j, "via", f->via);
    if (f->kind != CLK_LEAK)
        clk_json_key_str(j, "kind", clk_kind_name(f->kind));
    clk_json_key_str(j, "target", f->target);
    clk_json_key_str(j, "test", f->test);
    clk_json_key(j, "pids");
    clk_json_open(j, '[');
    for (size_t i = 0; i < f->npids; i++)
        clk_json_int(j, f->pids[i]);
    clk_json_close(j, ']');
    clk_json_key_int(j, "count", (long long)f->count);
    clk_json_key_str(j, "fingerprint", f->fingerprint);
    if (f->baselined) {
        clk_json_key(j, "baselined");
        clk_json_bool(j, 1);
    }
    if (f->kind == CLK_LEAK) {
        clk_json_key(j, "checkout");
        clk_json_bool(j, f->checkout);
        if (f->nunfinalized) { /* its close returned SQLITE_BUSY: what kept it open */
            clk_json_key(j, "unfinalized");
            clk_json_open(j, '[');
            for (int i = 0; i < f->nunfinalized; i++) {
                clk_json_open(j, '{');
                clk_json_key_str(j, "sql", f->unfinalized[i]);
                clk_json_close(j, '}');
            }
            clk_json_close(j, ']');
        }
        clk_json_key(j, "opened_at");
        stack_json(j, memo, &f->opened_at);
        if (f->thread_created_at.n) { /* absent on the main thread */
            clk_json_key(j, "thread_created_at");
            stack_json(j, memo, &f->thread_created_at);
        }
        if (f->closed_at.n) { /* closed_by_finalizer: where the garbage collector closed it */
            clk_json_key(j, "closed_at");
            stack_json(j, memo, &f->closed_at);
        }
        if (f->suppressed) {
            clk_json_key_str(j, "kind", clk_kind_name(f->kind));
        }
    } else {
        clk_json_key(j, "closed_at");
        stack_json(j, memo, &f->closed_at);
        clk_json_key(j, "first_closed_at");
        stack_json(j, memo, &f->first_closed_at);
        clk_json_key(j, "opened_at");
        stack_json(j, memo, &f->opened_at);
    }
    clk_json_close(j, '}');
}

/* Connections held longer than --held-longer-than, one compact object per line (always there: empty
 * when the option was off). */
static void long_held(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_report *r)
{
    clk_json_raw(j, "  \"long_held\": [");
    for (size_t i = 0; i < r->nlong_held; i++) {
        const struct clk_long_held *h = &r->long_held[i];
        clk_json_raw(j, i ? ",\n    " : "\n    ");
        clk_json_open(j, '{');
        clk_json_key_str(j, "backend", h->f.backend);
        if (h->f.via)
            clk_json_key_str(j, "via", h->f.via);
        clk_json_key_str(j, "target", h->f.target);
        clk_json_key_str(j, "test", h->f.test);
        clk_json_key(j, "pids");
        clk_json_open(j, '[');
        for (size_t k = 0; k < h->f.npids; k++)
            clk_json_int(j, h->f.pids[k]);
        clk_json_close(j, ']');
        clk_json_key_int(j, "held_ms", (long long)h->held_ms);
        clk_json_key(j, "closed");
        clk_json_bool(j, h->closed);
        clk_json_key(j, "opened_at");
        stack_json(j, memo, &h->f.opened_at);
        clk_json_close(j, '}');
        clk_json_flush(j);
    }
    clk_json_raw(j, r->nlong_held ? "\n  ],\n" : "],\n");
}

/* A list of findings, one compact object per line. */
static void findings(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_report *r, const char *key,
                     int which)
{
    clk_json_raw(j, "  \"");
    clk_json_raw(j, key);
    clk_json_raw(j, "\": [");
    int first = 1;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        int in = which == 2 ? f->suppressed : !f->suppressed && ((f->kind == CLK_LEAK) == (which == 0));
        if (!in)
            continue;
        clk_json_raw(j, first ? "\n    " : ",\n    ");
        finding_json(j, memo, f);
        clk_json_flush(j);
        first = 0;
    }
    clk_json_raw(j, first ? "],\n" : "\n  ],\n");
}

static void strings(struct clk_json *j, char *const *s, size_t n)
{
    clk_json_open(j, '[');
    for (size_t i = 0; i < n; i++)
        clk_json_str(j, s[i]);
    clk_json_close(j, ']');
}

/* The top level laid out by hand, one member a line; each value compact. */
int clk_render_json(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    (void)o;
    struct clk_json j;
    clk_json_init(&j, out, 0, BAD_BYTE);
    clk_json_raw(&j, "{\n  \"version\": 1,\n  \"command\": ");
    strings(&j, r->command, (size_t)(r->ncommand > 0 ? r->ncommand : 0));
    clk_json_raw(&j, ",\n  \"summary\": ");
    clk_render_summary_json(&j, r, 1);
    clk_json_raw(&j, ",\n");
    struct clk_frame_memo memo = {0};
    findings(&j, &memo, r, "leaks", 0);
    findings(&j, &memo, r, "left_field_closes", 1);
    findings(&j, &memo, r, "suppressed", 2);
    static const struct clk_report none;
    findings(&j, &memo, r->finalized ? r->finalized : &none, "closed_by_finalizer", 0);
    long_held(&j, &memo, r);
    clk_frame_memo_free(&memo);
    clk_json_raw(&j, "  \"notes\": ");
    strings(&j, r->notes, r->nnotes);
    /* notes stay plain strings (SPEC.md); their kinds, and which fail the run, alongside in the same order */
    clk_json_raw(&j, ",\n  \"note_details\": ");
    clk_json_open(&j, '[');
    for (size_t i = 0; i < r->nnotes; i++) {
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "kind", clk_note_kind_name(clk_note_kind(r->notes[i])));
        clk_json_key_str(&j, "text", r->notes[i]);
        if (clk_note_fails(r, i)) {
            clk_json_key(&j, "fails");
            clk_json_bool(&j, 1);
        }
        clk_json_close(&j, '}');
    }
    clk_json_close(&j, ']');
    clk_json_raw(&j, "\n}\n");
    return clk_json_end(&j);
}
