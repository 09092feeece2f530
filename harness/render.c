/* render.c — the table of output formats, and what the renderers share: path display, details, a memo of rendered frames. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rawfmt.h"

static const struct {
    const char *name;
    clk_renderer fn;
} formats[] = {
    {"text", clk_render_text}, {"json", clk_render_json}, {"junit", clk_render_junit},
    {"sarif", clk_render_sarif}, {"github", clk_render_github}, {"html", clk_render_html},
};

clk_renderer clk_renderer_for(const char *format)
{
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (!strcmp(formats[i].name, format))
            return formats[i].fn;
    return NULL;
}

const char *clk_relative_path(const struct clk_render_opts *o, const char *path)
{
    if (!path || !o->source_root || !o->source_root[0])
        return path;
    size_t n = strlen(o->source_root);
    while (n > 1 && o->source_root[n - 1] == '/')
        n--;
    if (strncmp(path, o->source_root, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

const char *clk_first_function(const struct clk_stack *s)
{
    return s->n && s->f[0].function ? s->f[0].function : NULL;
}

/* No pids here: SARIF, JUnit and GitHub messages stay the same from run to run (the JSON keeps them). */
void clk_render_details(struct clk_buf *b, const struct clk_finding *f, const char *first, int with_test)
{
    const char *sep = " (";
    if (first && first[0]) {
        clk_buf_printf(b, "%s%s", sep, first);
        sep = ", ";
    }
    if (f->count > 1) {
        clk_buf_printf(b, "%s%llu times", sep, (unsigned long long)f->count);
        sep = ", ";
    }
    if (with_test && f->test) {
        clk_buf_printf(b, "%stest %s", sep, f->test);
        sep = ", ";
    }
    if (sep[0] == ',')
        clk_buf_add(b, ")", 1);
}

void clk_render_summary_json(struct clk_json *j, const struct clk_report *r, int with_peak)
{
    clk_json_open(j, '{');
    clk_json_key_int(j, "processes", (long long)r->summary.processes);
    clk_json_key_int(j, "connects", (long long)r->summary.connects);
    clk_json_key_int(j, "closes", (long long)r->summary.closes);
    clk_json_key_int(j, "leaks", (long long)r->summary.leaks);
    clk_json_key_int(j, "double_closes", (long long)r->summary.double_closes);
    clk_json_key_int(j, "unknown_closes", (long long)r->summary.unknown_closes);
    clk_json_key_int(j, "suppressed", (long long)r->summary.suppressed);
    clk_json_key_int(j, "baselined", (long long)r->summary.baselined);
    /* what fails the run: leaks and double closes neither suppressed nor baselined */
    clk_json_key_int(j, "new", (long long)clk_report_failing(r));
    if (with_peak) {
        clk_json_key_int(j, "closed_by_finalizer", (long long)r->summary.closed_by_finalizer);
        clk_json_key_int(j, "long_held", (long long)r->nlong_held);
        clk_json_key_int(j, "peak_open", (long long)r->summary.peak_open[0]);
        clk_json_key(j, "peak_open_by_backend");
        clk_json_open(j, '{');
        clk_json_key_int(j, "sqlite", (long long)r->summary.peak_open[CONNLEAK_RAW_SQLITE]);
        clk_json_key_int(j, "postgres", (long long)r->summary.peak_open[CONNLEAK_RAW_POSTGRES]);
        clk_json_close(j, '}');
    }
    clk_json_close(j, '}');
}

/* ---- frame memo ---- */

#define MEMO_SLOTS 4096 /* a power of two; a report's distinct frames are usually far fewer */

struct clk_memo_entry {
    const char *function, *file, *module, *language;
    uint64_t offset;
    int line, has_offset, used;
    char *text;
    size_t len, cap;
};

static int same_frame(const struct clk_memo_entry *e, const struct clk_frame *f)
{
    return e->used && e->function == f->function && e->file == f->file && e->module == f->module && e->language == f->language &&
           e->offset == f->offset && e->line == f->line && e->has_offset == f->has_offset;
}

static struct clk_memo_entry *memo_slot(struct clk_frame_memo *m, const struct clk_frame *f)
{
    if (!m->e)
        m->e = clk_xcalloc(MEMO_SLOTS, sizeof *m->e);
    uint64_t h = (uint64_t)(uintptr_t)f->function * 0x9e3779b97f4a7c15ull;
    h = (h ^ (uint64_t)(uintptr_t)f->file) * 0xff51afd7ed558ccdull;
    h = (h ^ (uint64_t)(uintptr_t)f->module) * 0xc4ceb9fe1a85ec53ull;
    h = (h ^ f->offset ^ (uint64_t)(unsigned)f->line << 40) * 0x9e3779b97f4a7c15ull;
    return &m->e[(h >> 40) & (MEMO_SLOTS - 1)];
}

const char *clk_frame_memo_get(struct clk_frame_memo *m, const struct clk_frame *f, size_t *len)
{
    struct clk_memo_entry *e = memo_slot(m, f);
    if (!same_frame(e, f))
        return NULL;
    *len = e->len;
    return e->text;
}

void clk_frame_memo_put(struct clk_frame_memo *m, const struct clk_frame *f, const char *text, size_t len)
{
    struct clk_memo_entry *e = memo_slot(m, f);
    if (e->cap < len) {
        e->cap = len < 256 ? 256 : len;
        free(e->text);
        e->text = clk_xmalloc(e->cap);
    }
    memcpy(e->text, text, len);
    e->len = len;
    e->function = f->function;
    e->file = f->file;
    e->module = f->module;
    e->language = f->language;
    e->offset = f->offset;
    e->line = f->line;
    e->has_offset = f->has_offset;
    e->used = 1;
}

void clk_frame_memo_add(struct clk_frame_memo *m, struct clk_buf *out, const struct clk_frame *f,
                        void (*render)(struct clk_buf *out, const struct clk_frame *f, const void *ctx),
                        const void *ctx)
{
    size_t len, start = out->n;
    const char *text = clk_frame_memo_get(m, f, &len);
    if (text) {
        clk_buf_add(out, text, len);
        return;
    }
    render(out, f, ctx);
    clk_frame_memo_put(m, f, out->p + start, out->n - start);
}

void clk_frame_memo_free(struct clk_frame_memo *m)
{
    if (m->e)
        for (size_t i = 0; i < MEMO_SLOTS; i++)
            free(m->e[i].text);
    free(m->e);
    m->e = NULL;
}
