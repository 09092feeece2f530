/* render_sarif.c — the sarif report (placeholder until its renderer lands). */
#include "harness.h"

int clk_render_sarif(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    clk_err("--format sarif is not implemented yet");
    return -1;
}
