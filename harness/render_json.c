/* render_json.c — the JSON report, version 1 (SPEC.md), with jansson. */
#include <jansson.h>
#include <stdlib.h>

#include "harness.h"

/* JSON strings must be UTF-8; a file name need not be: bytes that do not
 * decode become '?' rather than the field going missing. */
static json_t *str_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = clk_xstrdup(s);
    for (char *p = copy; *p;) {
        const unsigned char c = (unsigned char)*p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0;
        for (int k = 1; ok && k < len; k++)
            ok = ((unsigned char)p[k] >> 6) == 2;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *stack_json(const struct clk_stack *s)
{
    json_t *a = json_array();
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        char off[32];
        snprintf(off, sizeof off, "0x%llx", (unsigned long long)f->offset);
        json_array_append_new(a, json_pack("{s:o, s:o, s:o, s:o, s:o}", "function", str_or_null(f->function), "file",
                                           str_or_null(f->file), "line",
                                           f->line > 0 ? json_integer(f->line) : json_null(), "module",
                                           str_or_null(f->module), "offset",
                                           f->has_offset ? json_string(off) : json_null()));
    }
    return a;
}

static json_t *finding_json(const struct clk_finding *f)
{
    json_t *o = json_object();
    json_t *pids = json_array();
    for (size_t i = 0; i < f->npids; i++)
        json_array_append_new(pids, json_integer(f->pids[i]));
    json_object_set_new(o, "backend", str_or_null(f->backend));
    if (f->kind != CLK_LEAK)
        json_object_set_new(o, "kind", json_string(clk_kind_name(f->kind)));
    json_object_set_new(o, "target", str_or_null(f->target));
    json_object_set_new(o, "test", str_or_null(f->test));
    json_object_set_new(o, "pids", pids);
    json_object_set_new(o, "count", json_integer((json_int_t)f->count));
    json_object_set_new(o, "fingerprint", json_string(f->fingerprint));
    if (f->baselined)
        json_object_set_new(o, "baselined", json_true());
    if (f->kind == CLK_LEAK) {
        json_object_set_new(o, "checkout", json_boolean(f->checkout));
        json_object_set_new(o, "opened_at", stack_json(&f->opened_at));
    } else {
        json_object_set_new(o, "closed_at", stack_json(&f->closed_at));
        json_object_set_new(o, "first_closed_at", stack_json(&f->first_closed_at));
        json_object_set_new(o, "opened_at", stack_json(&f->opened_at));
    }
    return o;
}

/* jansson writes a token at a time: gather a value in memory, then write it once. */
static int gather(const char *p, size_t n, void *data)
{
    clk_buf_add(data, p, n);
    return 0;
}

static void dump(json_t *value, FILE *out, size_t flags)
{
    struct clk_buf b = {0};
    json_dump_callback(value, gather, &b, flags);
    if (b.n)
        fwrite(b.p, 1, b.n, out);
    free(b.p);
}

/* One member, `"key": value`, the value compact; jansson owns nothing after. */
static void member(FILE *out, const char *key, json_t *value, int last)
{
    fprintf(out, "  \"%s\": ", key);
    dump(value, out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fputs(last ? "\n" : ",\n", out);
    json_decref(value);
}

/* A list of findings, one compact object per line. */
static void findings(FILE *out, const struct clk_report *r, const char *key, int which)
{
    fprintf(out, "  \"%s\": [", key);
    int first = 1;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        int in = which == 2 ? f->suppressed : !f->suppressed && ((f->kind == CLK_LEAK) == (which == 0));
        if (!in)
            continue;
        json_t *j = finding_json(f);
        if (f->suppressed)
            json_object_set_new(j, "kind", json_string(clk_kind_name(f->kind)));
        fputs(first ? "\n    " : ",\n    ", out);
        dump(j, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(j);
        first = 0;
    }
    fputs(first ? "],\n" : "\n  ],\n", out);
}

/* Streamed a finding at a time: a report of 100,000 findings would be millions
 * of jansson objects if built whole. */
int clk_render_json(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    json_t *cmd = json_array();
    for (int i = 0; i < r->ncommand; i++)
        json_array_append_new(cmd, str_or_null(r->command[i]));
    json_t *notes = json_array();
    for (size_t i = 0; i < r->nnotes; i++)
        json_array_append_new(notes, str_or_null(r->notes[i]));
    fputs("{\n  \"version\": 1,\n", out);
    member(out, "command", cmd, 0);
    member(out, "summary",
           json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "processes", (json_int_t)r->summary.processes,
                     "connects", (json_int_t)r->summary.connects, "closes", (json_int_t)r->summary.closes, "leaks",
                     (json_int_t)r->summary.leaks, "double_closes", (json_int_t)r->summary.double_closes,
                     "unknown_closes", (json_int_t)r->summary.unknown_closes, "suppressed",
                     (json_int_t)r->summary.suppressed, "baselined", (json_int_t)r->summary.baselined),
           0);
    findings(out, r, "leaks", 0);
    findings(out, r, "left_field_closes", 1);
    findings(out, r, "suppressed", 2);
    member(out, "notes", notes, 1);
    fputs("}\n", out);
    return ferror(out) ? -1 : 0;
}
