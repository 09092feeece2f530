/* load_json.c — reads JSON reports (version 1), e.g. from CI shards, back into findings to merge. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rawfmt.h"

static const char *istr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? clk_intern(json_string_value(v)) : NULL;
}

static int read_stack(json_t *a, struct clk_stack *s, const char *path)
{
    s->n = 0;
    s->f = NULL;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        clk_err("%s: a stack is not an array", path);
        return -1;
    }
    s->n = (int)json_array_size(a);
    s->f = clk_xcalloc((size_t)s->n ? (size_t)s->n : 1, sizeof *s->f);
    for (int i = 0; i < s->n; i++) {
        json_t *fr = json_array_get(a, (size_t)i);
        if (!json_is_object(fr)) {
            clk_err("%s: a frame is not an object", path);
            return -1;
        }
        struct clk_frame *f = &s->f[i];
        f->function = istr(fr, "function");
        f->file = istr(fr, "file");
        f->module = istr(fr, "module");
        f->language = istr(fr, "language");
        if (f->language && !strcmp(f->language, "c"))
            f->language = NULL; /* native code: no language of its own in the model */
        json_t *line = json_object_get(fr, "line");
        f->line = json_is_integer(line) ? (int)json_integer_value(line) : 0;
        const char *off = istr(fr, "offset");
        if (off) {
            f->offset = strtoull(off, NULL, 16);
            f->has_offset = 1;
        }
    }
    return 0;
}

/* Where a finding read from a JSON report goes: the findings, the garbage collector's closes, or the
 * long-held connections (whose held_ms and closed come along). */
enum dest { TO_FINDINGS, TO_FINALIZED, TO_LONG_HELD };

static int read_finding_to(struct clk_report *r, json_t *o, int is_leak, int suppressed, const char *path,
                           enum dest dest);

static int read_finding(struct clk_report *r, json_t *o, int is_leak, int suppressed, const char *path)
{
    return read_finding_to(r, o, is_leak, suppressed, path, TO_FINDINGS);
}

static int read_finding_to(struct clk_report *r, json_t *o, int is_leak, int suppressed, const char *path,
                           enum dest dest)
{
    struct clk_finding f = {0};
    if (!json_is_object(o)) {
        clk_err("%s: a finding is not an object", path);
        return -1;
    }
    const char *kind = istr(o, "kind");
    if (is_leak || (kind && strcmp(kind, "leak") == 0))
        f.kind = CLK_LEAK;
    else if (kind && strcmp(kind, "double_close") == 0)
        f.kind = CLK_DOUBLE_CLOSE;
    else if (kind && strcmp(kind, "unknown_close") == 0)
        f.kind = CLK_UNKNOWN_CLOSE;
    else {
        clk_err("%s: a left-field close has no known kind", path);
        return -1;
    }
    f.backend = istr(o, "backend");
    if (!f.backend)
        f.backend = clk_intern("unknown");
    f.via = istr(o, "via");
    f.target = istr(o, "target");
    f.test = istr(o, "test");
    f.checkout = json_is_true(json_object_get(o, "checkout"));
    f.baselined = json_is_true(json_object_get(o, "baselined"));
    json_t *count = json_object_get(o, "count");
    f.count = json_is_integer(count) && json_integer_value(count) > 0 ? (uint64_t)json_integer_value(count) : 1;
    f.suppressed = suppressed;
    json_t *pids = json_object_get(o, "pids");
    size_t np = json_is_array(pids) ? json_array_size(pids) : 0;
    int *pv = clk_xcalloc(np ? np : 1, sizeof *pv);
    for (size_t i = 0; i < np; i++)
        pv[f.npids++] = (int)json_integer_value(json_array_get(pids, i));
    if (!np && json_is_integer(json_object_get(o, "pid"))) /* long_held entries of the first version */
        pv[f.npids++] = (int)json_integer_value(json_object_get(o, "pid"));
    f.pids = pv;
    json_t *sql = json_object_get(o, "unfinalized");
    for (size_t i = 0; json_is_array(sql) && i < json_array_size(sql) && f.nunfinalized < 4; i++) {
        json_t *e = json_array_get(sql, i); /* {"sql": "..."}; a bare string read too */
        const char *text = json_is_object(e) ? istr(e, "sql") : json_is_string(e) ? json_string_value(e) : NULL;
        if (text)
            f.unfinalized[f.nunfinalized++] = clk_intern(text);
    }
    int rc = 0;
    if (read_stack(json_object_get(o, "opened_at"), &f.opened_at, path) ||
        read_stack(json_object_get(o, "closed_at"), &f.closed_at, path) ||
        read_stack(json_object_get(o, "first_closed_at"), &f.first_closed_at, path) ||
        read_stack(json_object_get(o, "thread_created_at"), &f.thread_created_at, path))
        rc = -1;
    if (!rc) {
        clk_finding_fingerprint(&f);
        if (dest == TO_FINALIZED) {
            clk_report_add_finalized(r, &f);
        } else if (dest == TO_LONG_HELD) {
            json_t *ms = json_object_get(o, "held_ms");
            uint64_t held = json_is_integer(ms) && json_integer_value(ms) > 0 ? (uint64_t)json_integer_value(ms) : 0;
            /* merged under a threshold of its own (report --held-longer-than), only those over it */
            if (held > r->held_threshold_ms)
                clk_long_held_add(r, &f, held, json_is_true(json_object_get(o, "closed")));
        } else {
            clk_report_add(r, &f);
        }
    }
    free(pv);
    free(f.opened_at.f);
    free(f.closed_at.f);
    free(f.first_closed_at.f);
    free(f.thread_created_at.f);
    return rc;
}

static uint64_t summary_field(json_t *s, const char *key)
{
    json_t *v = json_object_get(s, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

int clk_load_json(struct clk_report *r, const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) {
        clk_err("%s: not a connleak report: %s (line %d)", path, err.text, err.line);
        return -1;
    }
    json_t *ver = json_object_get(root, "version");
    if (!json_is_object(root) || !json_is_integer(ver) || json_integer_value(ver) != 1) {
        clk_err("%s: not a connleak JSON report of version 1", path);
        json_decref(root);
        return -1;
    }
    /* the same report given twice (same bytes) counts once */
    char *text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    uint64_t h = clk_fnv1a(CLK_FNV_INIT, text, strlen(text));
    free(text);
    void **seen = clk_map_slot(&r->sources, h, 1);
    if (*seen) {
        clk_report_note(r, CLK_NOTE_INFO, "%s is the same report as %s: merged once", path, (const char *)*seen);
        json_decref(root);
        return 0;
    }
    *seen = clk_xstrdup(path);
    if (!r->ncommand) {
        json_t *cmd = json_object_get(root, "command");
        for (size_t i = 0; json_is_array(cmd) && i < json_array_size(cmd); i++) {
            json_t *c = json_array_get(cmd, i);
            if (!json_is_string(c))
                continue;
            r->command = clk_xrealloc(r->command, (size_t)(r->ncommand + 1) * sizeof *r->command);
            r->command[r->ncommand++] = clk_xstrdup(json_string_value(c));
        }
    }
    json_t *s = json_object_get(root, "summary");
    r->summary.processes += summary_field(s, "processes");
    r->summary.connects += summary_field(s, "connects");
    r->summary.closes += summary_field(s, "closes");
    /* a peak is one process's: merged reports keep the largest */
    uint64_t peak = summary_field(s, "peak_open");
    if (peak > r->summary.peak_open[0])
        r->summary.peak_open[0] = peak;
    json_t *by = json_object_get(s, "peak_open_by_backend");
    for (int b = CONNLEAK_RAW_SQLITE; b <= CONNLEAK_RAW_POSTGRES; b++) {
        uint64_t v = summary_field(by, b == CONNLEAK_RAW_SQLITE ? "sqlite" : "postgres");
        if (v > r->summary.peak_open[b])
            r->summary.peak_open[b] = v;
    }
    int rc = 0;
    const char *lists[] = {"leaks", "left_field_closes", "suppressed"};
    for (int l = 0; l < 3 && !rc; l++) {
        json_t *a = json_object_get(root, lists[l]);
        if (!a)
            continue;
        if (!json_is_array(a)) {
            clk_err("%s: \"%s\" is not an array", path, lists[l]);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < json_array_size(a) && !rc; i++)
            rc = read_finding(r, json_array_get(a, i), l == 0, l == 2, path);
    }
    /* the garbage collector's closes and the long-held connections, merged as the findings are */
    const char *extra[] = {"closed_by_finalizer", "long_held"};
    for (int l = 0; l < 2 && !rc; l++) {
        json_t *a = json_object_get(root, extra[l]);
        for (size_t i = 0; json_is_array(a) && i < json_array_size(a) && !rc; i++)
            rc = read_finding_to(r, json_array_get(a, i), 1, 0, path, l == 0 ? TO_FINALIZED : TO_LONG_HELD);
    }
    /* note_details carries each note's kind; a report without it (older, or written by hand) has
     * notes of no known kind, read as info */
    json_t *notes = json_object_get(root, "notes"), *details = json_object_get(root, "note_details");
    if (json_is_array(details) && json_array_size(details) == json_array_size(notes)) {
        for (size_t i = 0; i < json_array_size(details); i++) {
            json_t *d = json_array_get(details, i);
            json_t *text = json_object_get(d, "text"), *kind = json_object_get(d, "kind");
            if (json_is_string(text))
                clk_report_note(r, clk_note_kind_from_name(json_string_value(kind)), "%s", json_string_value(text));
        }
    } else {
        for (size_t i = 0; json_is_array(notes) && i < json_array_size(notes); i++)
            if (json_is_string(json_array_get(notes, i)))
                clk_report_note(r, CLK_NOTE_INFO, "%s", json_string_value(json_array_get(notes, i)));
    }
    json_decref(root);
    return rc;
}
