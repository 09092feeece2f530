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
