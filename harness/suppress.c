/* suppress.c — LeakSanitizer-style suppressions (placeholder until the parser lands). */
#include "harness.h"

struct clk_suppressions {
    int unused;
};

struct clk_suppressions *clk_suppressions_load(const char *path)
{
    clk_err("%s: suppressions are not implemented yet", path);
    return NULL;
}

void clk_suppressions_apply(struct clk_report *r, const struct clk_suppressions *s) {}
void clk_suppressions_free(struct clk_suppressions *s) {}
