/* render_junit.c — the junit report (placeholder until its renderer lands). */
#include "harness.h"

int clk_render_junit(const struct clk_report *r, FILE *out, const struct clk_render_opts *o)
{
    clk_err("--format junit is not implemented yet");
    return -1;
}
