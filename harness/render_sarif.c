/* render_sarif.c — SARIF 2.1.0 for code scanning: one result per unsuppressed finding, its stacks as a code flow. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "connleak.h"
#include "harness.h"

#ifndef CONNLEAK_HOMEPAGE
#define CONNLEAK_HOMEPAGE "https://github.com/connleak/connleak"
#endif

#define SARIF_SCHEMA "https://json.schemastore.org/sarif-2.1.0.json"
/* GitHub code scanning rejects runs with more results than this. */
#define SARIF_MAX_RESULTS 25000
#define SRCROOT "%SRCROOT%"

static const struct rule {
    const char *id, *name, *level, *short_text, *full_text, *help;
} rules[] = {
    [CLK_LEAK] = {"connleak/leak", "ConnectionLeak", "error", "Database connection never closed",
                  "A database connection (SQLite, PostgreSQL, or a pool checkout) was still open when its process "
                  "ended: the program opened it and never closed it.",
                  "Close the connection on every path that opens it (sqlite3_close, PQfinish, or return it to its "
                  "pool), for example in the function's cleanup or the test's teardown. The location is where it "
                  "was opened; the code flow is the call stack that opened it."},
    [CLK_DOUBLE_CLOSE] = {"connleak/double-close", "ConnectionDoubleClose", "error",
                          "Database connection closed twice",
                          "A database connection was closed after it had already been closed. The second close "
                          "reaches freed memory in the database library (a use after free); connleak did not pass "
                          "it on.",
                          "Close each connection exactly once, and forget the handle (set it to NULL) when it is "
                          "closed. The location is the second close; the code flow shows where the connection was "
                          "opened, first closed and closed again."},
    [CLK_UNKNOWN_CLOSE] = {"connleak/unknown-close", "ConnectionUnknownClose", "warning",
                           "Close of a connection never seen open",
                           "A close was called on a database connection handle that connleak never saw opened: "
                           "a handle from code it does not track, or a pointer that is not a connection.",
                           "Check that the handle comes from a tracked open call (sqlite3_open*, PQconnect*) and "
                           "is not stale or corrupted. The location is the close."},
};

/* Length of the well-formed UTF-8 sequence at p, 0 when it is not one. */
static int utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    int len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    unsigned cp = p[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    return len && cp >= min[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? len : 0;
}

/* jansson takes UTF-8 only: invalid bytes (a target's raw path, say) become U+FFFD rather than a lost field. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    struct clk_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int len = utf8_len(p);
        clk_buf_add(&b, len ? (const char *)p : "\xef\xbf\xbd", len ? (size_t)len : 3);
        p += len ? len : 1;
    }
    j = json_stringn(b.p, b.n);
    free(b.p);
    return j;
}

static json_t *text_obj(const char *s)
{
    return json_pack("{s:o}", "text", jstr(s));
}

/* A buffer with room for a typical message up front: growing one with realloc next to a large free block
 * costs a memset of that whole block per call under MALLOC_PERTURB_ (which meson test sets), and a report
 * renders thousands of these. */
static struct clk_buf buf_new(void)
{
    struct clk_buf b = {clk_xmalloc(512), 0, 512};
    b.p[0] = 0;
    return b;
}

/* A path as a URI reference: every byte but unreserved ones and '/' percent-encoded. */
static void uri_encode(struct clk_buf *b, const char *path)
{
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
            clk_buf_add(b, (const char *)p, 1);
        else
            clk_buf_printf(b, "%%%02X", *p);
    }
}

/* In-root files are relative to %SRCROOT% (what code scanning maps to the repository); other absolute files
 * are file: URIs; build-relative leftovers (libc's "./csu/...") cannot be located and get no artifact. */
static json_t *artifact_location(const struct clk_render_opts *o, const char *path)
{
    const char *rel = clk_relative_path(o, path);
    struct clk_buf b = buf_new();
    json_t *a = NULL;
    if (rel != path) {
        uri_encode(&b, rel);
        a = json_pack("{s:s%, s:s}", "uri", b.p, b.n, "uriBaseId", SRCROOT);
    } else if (path[0] == '/') {
        clk_buf_add(&b, "file://", 7);
        uri_encode(&b, path);
        a = json_pack("{s:s%}", "uri", b.p, b.n);
    }
    free(b.p);
    return a;
}

/* Where a frame is: its source line when the file can be located, else its module (code scanning rejects
 * locations without an artifact, so every step of a code flow gets one when anything is known). */
static json_t *physical_location(const struct clk_render_opts *o, const struct clk_frame *f, int *source)
{
    json_t *art = f->file ? artifact_location(o, f->file) : NULL;
    *source = art != NULL;
    if (!art && f->module)
        art = artifact_location(o, f->module);
    if (!art)
        return NULL;
    json_t *p = json_pack("{s:o}", "artifactLocation", art);
    if (*source && f->line > 0)
        json_object_set_new(p, "region", json_pack("{s:i}", "startLine", f->line));
    return p;
}

/* The frame a result points at: the first with a source file in the repository, else the first with
 * any locatable source file, else the first with a locatable module. */
static const struct clk_frame *located_frame(const struct clk_render_opts *o, const struct clk_stack *s)
{
    const struct clk_frame *elsewhere = NULL, *binary = NULL;
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        if (f->file && clk_relative_path(o, f->file) != f->file)
            return f;
        if (!elsewhere && f->file && f->file[0] == '/')
            elsewhere = f;
        if (!binary && f->module && (f->module[0] == '/' || clk_relative_path(o, f->module) != f->module))
            binary = f;
    }
    return elsewhere ? elsewhere : binary;
}

/* The stack a finding is about: where a leak was opened, where a bad close happened. */
static const struct clk_stack *primary_stack(const struct clk_finding *f)
{
    return f->kind == CLK_LEAK ? &f->opened_at : &f->closed_at;
}

/* One sentence about the finding, phrased for its location ("opened here"). */
static char *message(const struct clk_finding *f)
{
    struct clk_buf b = buf_new();
    struct clk_buf first = buf_new();
    clk_buf_printf(&b, "%s connection", f->backend);
    if (f->target)
        clk_buf_printf(&b, " to %s", f->target);
    switch (f->kind) {
    case CLK_LEAK:
        clk_buf_printf(&b, f->checkout ? " checked out here is never returned to its pool"
                                       : " opened here is never closed");
        break;
    case CLK_DOUBLE_CLOSE:
        clk_buf_printf(&b, " closed here was already closed");
        if (clk_first_function(&f->opened_at))
            clk_buf_printf(&first, "opened by %s", clk_first_function(&f->opened_at));
        if (clk_first_function(&f->first_closed_at))
            clk_buf_printf(&first, "%sfirst closed by %s", first.n ? ", " : "", clk_first_function(&f->first_closed_at));
        break;
    case CLK_UNKNOWN_CLOSE:
        clk_buf_printf(&b, " closed here was never seen open");
        break;
    }
    clk_render_details(&b, f, first.n ? first.p : NULL, 1);
    free(first.p);
    return b.p;
}

static json_t *frame_location(const struct clk_render_opts *o, const struct clk_frame *f, const char *note)
{
    struct clk_buf b = buf_new();
    int source;
    json_t *phys = physical_location(o, f, &source);
    clk_buf_printf(&b, "%s", f->function ? f->function : "??");
    if (f->file && !source) /* not linkable: keep what is known in the text */
        clk_buf_printf(&b, " %s:%d", f->file, f->line);
    if (!source && f->module)
        clk_buf_printf(&b, " (%s+0x%llx)", clk_basename(f->module), (unsigned long long)f->offset);
    if (note)
        clk_buf_printf(&b, ": %s", note);
    json_t *loc = json_object();
    if (phys)
        json_object_set_new(loc, "physicalLocation", phys);
    if (f->function)
        json_object_set_new(loc, "logicalLocations",
                            json_pack("[{s:o, s:s}]", "name", jstr(f->function), "kind", "function"));
    json_object_set_new(loc, "message", text_obj(b.p));
    free(b.p);
    return loc;
}

/* One stack as code-flow steps in execution order: outermost caller first, the database call's caller last. */
static void add_steps(json_t *steps, const struct clk_render_opts *o, const struct clk_stack *s, const char *what,
                      const char *kind)
{
    for (int i = s->n - 1; i >= 0; i--) {
        json_t *step = json_object();
        json_object_set_new(step, "location", frame_location(o, &s->f[i], i == 0 ? what : NULL));
        json_object_set_new(step, "kinds", json_pack("[s]", i == 0 ? kind : "call"));
        json_object_set_new(step, "nestingLevel", json_integer(s->n - 1 - i));
        json_array_append_new(steps, step);
    }
}

static json_t *code_flows(const struct clk_render_opts *o, const struct clk_finding *f)
{
    json_t *steps = json_array();
    char opened[64];
    snprintf(opened, sizeof opened, "%s the %s connection", f->checkout ? "checks out" : "opens", f->backend);
    switch (f->kind) {
    case CLK_LEAK:
        add_steps(steps, o, &f->opened_at, opened, "acquire");
        break;
    case CLK_DOUBLE_CLOSE:
        add_steps(steps, o, &f->opened_at, opened, "acquire");
        add_steps(steps, o, &f->first_closed_at, "closes it", "release");
        add_steps(steps, o, &f->closed_at, "closes it again", "release");
        break;
    case CLK_UNKNOWN_CLOSE:
        add_steps(steps, o, &f->closed_at, "closes a connection never seen open", "release");
        break;
    }
    if (!json_array_size(steps)) {
        json_decref(steps);
        return NULL;
    }
    return json_pack("[{s:[{s:o}]}]", "threadFlows", "locations", steps);
}

/* A double close also points at the open and the first close, so viewers can jump there. */
static json_t *related_locations(const struct clk_render_opts *o, const struct clk_finding *f)
{
    if (f->kind != CLK_DOUBLE_CLOSE)
        return NULL;
    json_t *a = json_array();
    const struct {
        const struct clk_stack *s;
        const char *what;
    } rel[] = {{&f->opened_at, "opened here"}, {&f->first_closed_at, "first closed here"}};
    for (int i = 0; i < 2; i++) {
        const struct clk_frame *fr = located_frame(o, rel[i].s);
        int source;
        if (!fr)
            continue;
        json_array_append_new(a, json_pack("{s:i, s:o, s:o}", "id", (int)json_array_size(a) + 1, "physicalLocation",
                                           physical_location(o, fr, &source), "message", text_obj(rel[i].what)));
    }
    if (!json_array_size(a)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *result_json(const struct clk_render_opts *o, const struct clk_finding *f, int with_baseline)
{
    json_t *res = json_object();
    char *msg = message(f);
    json_object_set_new(res, "ruleId", json_string(rules[f->kind].id));
    json_object_set_new(res, "ruleIndex", json_integer(f->kind));
    json_object_set_new(res, "level", json_string(rules[f->kind].level));
    json_object_set_new(res, "message", text_obj(msg));
    free(msg);
    json_t *locs = json_array();
    const struct clk_frame *fr = located_frame(o, primary_stack(f));
    int source;
    if (fr) /* none only when no frame has a file or module at all */
        json_array_append_new(locs, json_pack("{s:o}", "physicalLocation", physical_location(o, fr, &source)));
    json_object_set_new(res, "locations", locs);
    json_t *rel = related_locations(o, f);
    if (rel)
        json_object_set_new(res, "relatedLocations", rel);
    json_t *flows = code_flows(o, f);
    if (flows)
        json_object_set_new(res, "codeFlows", flows);
    json_object_set_new(res, "partialFingerprints", json_pack("{s:s}", "connleak/v1", f->fingerprint));
    /* SARIF wants baselineState on all results of a run or none */
    if (with_baseline)
        json_object_set_new(res, "baselineState", json_string(f->baselined ? "unchanged" : "new"));
    json_t *props = json_pack("{s:s, s:o, s:I}", "backend", f->backend, "target",
                              f->target ? jstr(f->target) : json_null(), "count", (json_int_t)f->count);
    if (f->test)
        json_object_set_new(props, "test", jstr(f->test));
    if (f->checkout)
        json_object_set_new(props, "checkout", json_true());
    json_object_set_new(res, "properties", props);
    return res;
}

static json_t *driver_json(void)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        const struct rule *r = &rules[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:[s, s]}}", "id", r->id, "name",
                         r->name, "shortDescription", "text", r->short_text, "fullDescription", "text", r->full_text,
                         "help", "text", r->help, "defaultConfiguration", "level", r->level, "properties", "tags",
                         "reliability", "resource-leak"));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", "connleak", "version", CONNLEAK_VERSION, "semanticVersion",
                     CONNLEAK_VERSION, "informationUri", CONNLEAK_HOMEPAGE, "rules", a);
}

int clk_render_sarif(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    int with_baseline = 0;
    size_t total = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        if (!r->findings[i]->suppressed) {
            total++;
            with_baseline |= r->findings[i]->baselined;
        }
    json_t *results = json_array();
    for (size_t i = 0; i < r->nfindings && json_array_size(results) < SARIF_MAX_RESULTS; i++)
        if (!r->findings[i]->suppressed)
            json_array_append_new(results, result_json(o, r->findings[i], with_baseline));

    json_t *run = json_object();
    json_object_set_new(run, "tool", json_pack("{s:o}", "driver", driver_json()));
    if (o->source_root && o->source_root[0] == '/') {
        struct clk_buf b = buf_new();
        clk_buf_add(&b, "file://", 7);
        uri_encode(&b, o->source_root);
        if (b.p[b.n - 1] != '/')
            clk_buf_add(&b, "/", 1);
        json_object_set_new(run, "originalUriBaseIds",
                            json_pack("{s:{s:s%}}", SRCROOT, "uri", b.p, b.n));
        free(b.p);
    }
    json_t *notes = json_array();
    for (size_t i = 0; i < r->nnotes; i++)
        json_array_append_new(notes, json_pack("{s:s, s:o}", "level", "warning", "message", text_obj(r->notes[i])));
    json_object_set_new(run, "invocations",
                        json_pack("[{s:b, s:o}]", "executionSuccessful", 1, "toolExecutionNotifications", notes));
    json_object_set_new(run, "results", results);
    json_t *props = json_object();
    json_object_set_new(
        props, "summary",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "processes", (json_int_t)r->summary.processes,
                  "connects", (json_int_t)r->summary.connects, "closes", (json_int_t)r->summary.closes, "leaks",
                  (json_int_t)r->summary.leaks, "double_closes", (json_int_t)r->summary.double_closes,
                  "unknown_closes", (json_int_t)r->summary.unknown_closes, "suppressed",
                  (json_int_t)r->summary.suppressed, "baselined", (json_int_t)r->summary.baselined));
    if (total > SARIF_MAX_RESULTS) {
        json_object_set_new(props, "resultsTruncated", json_true());
        json_object_set_new(props, "resultsTotal", json_integer((json_int_t)total));
    }
    json_object_set_new(run, "properties", props);

    json_t *root = json_pack("{s:s, s:s, s:[o]}", "$schema", SARIF_SCHEMA, "version", "2.1.0", "runs", run);
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc || ferror(out) ? -1 : 0;
}
