/* render_github.c — the github report (placeholder until its renderer lands). */
#include "harness.h"

int clk_render_github(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    clk_err("--format github is not implemented yet");
    return -1;
}
