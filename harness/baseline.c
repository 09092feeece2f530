/* baseline.c — known fingerprints that do not fail the run (placeholder until it lands). */
#include "harness.h"

int clk_baseline_write(const struct clk_report *r, const char *path)
{
    clk_err("%s: baselines are not implemented yet", path);
    return -1;
}

int clk_baseline_apply(struct clk_report *r, const char *path)
{
    clk_err("%s: baselines are not implemented yet", path);
    return -1;
}
