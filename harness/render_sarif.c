/* render_sarif.c — SARIF 2.1.0 for code scanning: one result per unsuppressed finding, its stacks as a code flow. */
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

/* JSON is UTF-8: bytes that are not (a target's raw path, say) become U+FFFD rather than a lost field. */
#define BAD_BYTE "\xef\xbf\xbd"

/* A buffer with room for a typical message up front: growing one with realloc next to a large free block
 * costs a memset of that whole block per call under MALLOC_PERTURB_ (which meson test sets), and a report
 * renders thousands of these. */
static struct clk_buf buf_new(void)
{
    struct clk_buf b = {clk_xmalloc(512), 0, 512};
    b.p[0] = 0;
    return b;
}

/* {"text": s} */
static void text_obj(struct clk_json *j, const char *s)
{
    clk_json_open(j, '{');
    clk_json_key_str(j, "text", s);
    clk_json_close(j, '}');
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
static int locatable(const struct clk_render_opts *o, const char *path)
{
    return clk_relative_path(o, path) != path || path[0] == '/';
}

static void artifact_location(struct clk_json *j, const struct clk_render_opts *o, const char *path)
{
    const char *rel = clk_relative_path(o, path);
    struct clk_buf b = buf_new();
    if (rel == path)
        clk_buf_add(&b, "file://", 7);
    uri_encode(&b, rel);
    clk_json_open(j, '{');
    clk_json_key_str(j, "uri", b.p);
    if (rel != path)
        clk_json_key_str(j, "uriBaseId", SRCROOT);
    clk_json_close(j, '}');
    free(b.p);
}

/* The file a frame's location names: its source file when that can be located, else its module (code
 * scanning rejects locations without an artifact, so every step of a code flow gets one when anything is
 * known); NULL when neither can be. *source: whether it is the source file. */
static const char *frame_path(const struct clk_render_opts *o, const struct clk_frame *f, int *source)
{
    *source = f->file && locatable(o, f->file);
    return *source ? f->file : f->module && locatable(o, f->module) ? f->module : NULL;
}

/* {"artifactLocation": ..., "region": {"startLine": N}} for frame_path's path. */
static void physical_location(struct clk_json *j, const struct clk_render_opts *o, const struct clk_frame *f)
{
    int source;
    const char *path = frame_path(o, f, &source);
    clk_json_open(j, '{');
    clk_json_key(j, "artifactLocation");
    artifact_location(j, o, path);
    if (source && f->line > 0) {
        clk_json_key(j, "region");
        clk_json_open(j, '{');
        clk_json_key_int(j, "startLine", f->line);
        clk_json_close(j, '}');
    }
    clk_json_close(j, '}');
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

static void frame_location(struct clk_json *j, const struct clk_render_opts *o, const struct clk_frame *f,
                           const char *note)
{
    struct clk_buf b = buf_new();
    int source;
    clk_json_open(j, '{');
    if (frame_path(o, f, &source)) {
        clk_json_key(j, "physicalLocation");
        physical_location(j, o, f);
    }
    clk_buf_printf(&b, "%s", f->function ? f->function : "??");
    if (f->file && !source) /* not linkable: keep what is known in the text */
        clk_buf_printf(&b, " %s:%d", f->file, f->line);
    if (!source && f->module)
        clk_buf_printf(&b, " (%s+0x%llx)", clk_basename(f->module), (unsigned long long)f->offset);
    if (note)
        clk_buf_printf(&b, ": %s", note);
    if (f->function) {
        clk_json_key(j, "logicalLocations");
        clk_json_open(j, '[');
        clk_json_open(j, '{');
        clk_json_key_str(j, "name", f->function);
        clk_json_key_str(j, "kind", "function");
        clk_json_close(j, '}');
        clk_json_close(j, ']');
    }
    clk_json_key(j, "message");
    text_obj(j, b.p);
    clk_json_close(j, '}');
    free(b.p);
}

/* One stack as code-flow steps in execution order: outermost caller first, the database call's caller last.
 * A frame's location is the same wherever it recurs (steps all stand at one depth): each distinct one is
 * written once and copied after that; the first frame's carries a note and is not. */
static void add_steps(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                      const struct clk_stack *s, const char *what, const char *kind)
{
    for (int i = s->n - 1; i >= 0; i--) {
        const struct clk_frame *f = &s->f[i];
        clk_json_open(j, '{');
        clk_json_key(j, "location");
        size_t len;
        const char *text = i ? clk_frame_memo_get(memo, f, &len) : NULL;
        if (text) {
            clk_json_value_text(j, text, len);
        } else {
            size_t start = clk_json_value_start(j);
            frame_location(j, o, f, i == 0 ? what : NULL);
            if (i)
                clk_frame_memo_put(memo, f, j->b.p + start, j->b.n - start);
        }
        clk_json_key(j, "kinds");
        clk_json_open(j, '[');
        clk_json_str(j, i == 0 ? kind : "call");
        clk_json_close(j, ']');
        clk_json_key_int(j, "nestingLevel", s->n - 1 - i);
        clk_json_close(j, '}');
    }
}

static void code_flows(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                       const struct clk_finding *f)
{
    int steps = f->kind == CLK_LEAK ? f->opened_at.n
              : f->kind == CLK_DOUBLE_CLOSE ? f->opened_at.n + f->first_closed_at.n + f->closed_at.n
                                            : f->closed_at.n;
    if (!steps)
        return;
    char opened[64];
    snprintf(opened, sizeof opened, "%s the %s connection", f->checkout ? "checks out" : "opens", f->backend);
    clk_json_key(j, "codeFlows");
    clk_json_open(j, '[');
    clk_json_open(j, '{');
    clk_json_key(j, "threadFlows");
    clk_json_open(j, '[');
    clk_json_open(j, '{');
    clk_json_key(j, "locations");
    clk_json_open(j, '[');
    switch (f->kind) {
    case CLK_LEAK:
        add_steps(j, memo, o, &f->opened_at, opened, "acquire");
        break;
    case CLK_DOUBLE_CLOSE:
        add_steps(j, memo, o, &f->opened_at, opened, "acquire");
        add_steps(j, memo, o, &f->first_closed_at, "closes it", "release");
        add_steps(j, memo, o, &f->closed_at, "closes it again", "release");
        break;
    case CLK_UNKNOWN_CLOSE:
        add_steps(j, memo, o, &f->closed_at, "closes a connection never seen open", "release");
        break;
    }
    clk_json_close(j, ']');
    clk_json_close(j, '}');
    clk_json_close(j, ']');
    clk_json_close(j, '}');
    clk_json_close(j, ']');
}

/* A double close also points at the open and the first close, so viewers can jump there. */
static void related_locations(struct clk_json *j, const struct clk_render_opts *o, const struct clk_finding *f)
{
    if (f->kind != CLK_DOUBLE_CLOSE)
        return;
    const struct {
        const struct clk_frame *at;
        const char *what;
    } rel[] = {{located_frame(o, &f->opened_at), "opened here"},
               {located_frame(o, &f->first_closed_at), "first closed here"}};
    int id = 0;
    for (int i = 0; i < 2; i++) {
        if (!rel[i].at)
            continue;
        if (!id) {
            clk_json_key(j, "relatedLocations");
            clk_json_open(j, '[');
        }
        clk_json_open(j, '{');
        clk_json_key_int(j, "id", ++id);
        clk_json_key(j, "physicalLocation");
        physical_location(j, o, rel[i].at);
        clk_json_key(j, "message");
        text_obj(j, rel[i].what);
        clk_json_close(j, '}');
    }
    if (id)
        clk_json_close(j, ']');
}

static void result_json(struct clk_json *j, struct clk_frame_memo *memo, const struct clk_render_opts *o,
                        const struct clk_finding *f, int with_baseline)
{
    clk_json_open(j, '{');
    clk_json_key_str(j, "ruleId", rules[f->kind].id);
    clk_json_key_int(j, "ruleIndex", f->kind);
    clk_json_key_str(j, "level", rules[f->kind].level);
    char *msg = message(f);
    clk_json_key(j, "message");
    text_obj(j, msg);
    free(msg);
    clk_json_key(j, "locations");
    clk_json_open(j, '[');
    const struct clk_frame *fr = located_frame(o, primary_stack(f));
    if (fr) { /* none only when no frame has a file or module at all */
        clk_json_open(j, '{');
        clk_json_key(j, "physicalLocation");
        physical_location(j, o, fr);
        clk_json_close(j, '}');
    }
    clk_json_close(j, ']');
    related_locations(j, o, f);
    code_flows(j, memo, o, f);
    clk_json_key(j, "partialFingerprints");
    clk_json_open(j, '{');
    clk_json_key_str(j, "connleak/v1", f->fingerprint);
    clk_json_close(j, '}');
    /* SARIF wants baselineState on all results of a run or none */
    if (with_baseline) {
        clk_json_key_str(j, "baselineState", f->baselined ? "unchanged" : "new");
    }
    clk_json_key(j, "properties");
    clk_json_open(j, '{');
    clk_json_key_str(j, "backend", f->backend);
    clk_json_key_str(j, "target", f->target);
    clk_json_key_int(j, "count", (long long)f->count);
    if (f->test) {
        clk_json_key_str(j, "test", f->test);
    }
    if (f->checkout) {
        clk_json_key(j, "checkout");
        clk_json_bool(j, 1);
    }
    clk_json_close(j, '}');
    clk_json_close(j, '}');
}

static void text_member(struct clk_json *j, const char *key, const char *text)
{
    clk_json_key(j, key);
    text_obj(j, text);
}

static void driver_json(struct clk_json *j)
{
    clk_json_open(j, '{');
    clk_json_key_str(j, "name", "connleak");
    clk_json_key_str(j, "version", CONNLEAK_VERSION);
    clk_json_key_str(j, "semanticVersion", CONNLEAK_VERSION);
    clk_json_key_str(j, "informationUri", CONNLEAK_HOMEPAGE);
    clk_json_key(j, "rules");
    clk_json_open(j, '[');
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        const struct rule *r = &rules[i];
        clk_json_open(j, '{');
        clk_json_key_str(j, "id", r->id);
        clk_json_key_str(j, "name", r->name);
        text_member(j, "shortDescription", r->short_text);
        text_member(j, "fullDescription", r->full_text);
        text_member(j, "help", r->help);
        clk_json_key(j, "defaultConfiguration");
        clk_json_open(j, '{');
        clk_json_key_str(j, "level", r->level);
        clk_json_close(j, '}');
        clk_json_key(j, "properties");
        clk_json_open(j, '{');
        clk_json_key(j, "tags");
        clk_json_open(j, '[');
        clk_json_str(j, "reliability");
        clk_json_str(j, "resource-leak");
        clk_json_close(j, ']');
        clk_json_close(j, '}');
        clk_json_close(j, '}');
    }
    clk_json_close(j, ']');
    clk_json_close(j, '}');
}

/* Written as it goes, laid out as jansson's JSON_INDENT(2) was: a run of 25,000 results with deep
 * stacks would be tens of millions of objects if built whole. */
int clk_render_sarif(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    int with_baseline = 0;
    size_t total = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        if (!r->findings[i]->suppressed) {
            total++;
            with_baseline |= r->findings[i]->baselined;
        }
    struct clk_json j;
    clk_json_init(&j, out, 2, BAD_BYTE);
    clk_json_open(&j, '{');
    clk_json_key_str(&j, "$schema", SARIF_SCHEMA);
    clk_json_key_str(&j, "version", "2.1.0");
    clk_json_key(&j, "runs");
    clk_json_open(&j, '[');
    clk_json_open(&j, '{');
    clk_json_key(&j, "tool");
    clk_json_open(&j, '{');
    clk_json_key(&j, "driver");
    driver_json(&j);
    clk_json_close(&j, '}');
    if (o->source_root && o->source_root[0] == '/') {
        struct clk_buf b = buf_new();
        clk_buf_add(&b, "file://", 7);
        uri_encode(&b, o->source_root);
        if (b.p[b.n - 1] != '/')
            clk_buf_add(&b, "/", 1);
        clk_json_key(&j, "originalUriBaseIds");
        clk_json_open(&j, '{');
        clk_json_key(&j, SRCROOT);
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "uri", b.p);
        clk_json_close(&j, '}');
        clk_json_close(&j, '}');
        free(b.p);
    }
    clk_json_key(&j, "invocations");
    clk_json_open(&j, '[');
    clk_json_open(&j, '{');
    clk_json_key(&j, "executionSuccessful");
    clk_json_bool(&j, 1);
    clk_json_key(&j, "toolExecutionNotifications");
    clk_json_open(&j, '[');
    /* a note that fails the run (--fail-on) is an error, one about what could not be seen or read a
     * warning, the rest notes; the kind is the JSON report's note_details kind */
    for (size_t i = 0; i < r->nnotes; i++) {
        enum clk_note_kind kind = clk_note_kind(r->notes[i]);
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "level", clk_note_fails(r, i) ? "error" : kind == CLK_NOTE_INFO ? "note" : "warning");
        text_member(&j, "message", r->notes[i]);
        clk_json_key(&j, "properties");
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "kind", clk_note_kind_name(kind));
        clk_json_close(&j, '}');
        clk_json_close(&j, '}');
    }
    /* connections held longer than --held-longer-than: warnings, never results (they fail nothing) */
    for (size_t i = 0; i < r->nlong_held; i++) {
        const struct clk_long_held *h = &r->long_held[i];
        const char *fn = clk_first_function(&h->f.opened_at);
        char text[1024];
        snprintf(text, sizeof text, "a %s connection to %s opened by %s was held %llu ms (longer than %llu ms)%s",
                 h->f.backend, h->f.target ? h->f.target : "(unknown target)", fn ? fn : "??",
                 (unsigned long long)h->held_ms, (unsigned long long)r->held_threshold_ms,
                 h->closed ? "" : ", still open when its process ended");
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "level", "warning");
        text_member(&j, "message", text);
        clk_json_key(&j, "properties");
        clk_json_open(&j, '{');
        clk_json_key_str(&j, "kind", "long_held");
        clk_json_key_int(&j, "held_ms", (long long)h->held_ms);
        clk_json_close(&j, '}');
        clk_json_close(&j, '}');
    }
    clk_json_close(&j, ']');
    clk_json_close(&j, '}');
    clk_json_close(&j, ']');

    clk_json_key(&j, "results");
    clk_json_open(&j, '[');
    struct clk_frame_memo memo = {0};
    size_t written = 0;
    for (size_t i = 0; i < r->nfindings && written < SARIF_MAX_RESULTS; i++)
        if (!r->findings[i]->suppressed) {
            result_json(&j, &memo, o, r->findings[i], with_baseline);
            clk_json_flush(&j);
            written++;
        }
    clk_frame_memo_free(&memo);
    clk_json_close(&j, ']');

    clk_json_key(&j, "properties");
    clk_json_open(&j, '{');
    clk_json_key(&j, "summary");
    clk_render_summary_json(&j, r, 0);
    if (total > SARIF_MAX_RESULTS) {
        clk_json_key(&j, "resultsTruncated");
        clk_json_bool(&j, 1);
        clk_json_key_int(&j, "resultsTotal", (long long)total);
    }
    clk_json_close(&j, '}');
    clk_json_close(&j, '}');
    clk_json_close(&j, ']');
    clk_json_close(&j, '}');
    clk_json_raw(&j, "\n");
    return clk_json_end(&j);
}
