/* render.c — the table of output formats, and path display shared by the renderers. */
#include <string.h>

#include "harness.h"

static const struct {
    const char *name;
    clk_renderer fn;
} formats[] = {
    {"text", clk_render_text}, {"json", clk_render_json}, {"junit", clk_render_junit},
    {"sarif", clk_render_sarif}, {"github", clk_render_github},
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
    if (f->npids) {
        clk_buf_printf(b, "%spid%s ", sep, f->npids == 1 ? "" : "s");
        for (size_t i = 0; i < f->npids && i < 8; i++)
            clk_buf_printf(b, "%s%d", i ? ", " : "", f->pids[i]);
        if (f->npids > 8)
            clk_buf_printf(b, ", ... (%zu in all)", f->npids);
        sep = ", ";
    }
    if (sep[0] == ',')
        clk_buf_add(b, ")", 1);
}
