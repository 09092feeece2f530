/* fuzz_options.c — fuzz target for the CONNLEAK_OPTIONS parser (lib/recorder/options.c, clk_options_parse). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "recorder.h"

static int terminated(const char *s, size_t cap)
{
    return memchr(s, 0, cap) != NULL;
}

int clk_fuzz_options(const uint8_t *data, size_t size)
{
    /* the environment gives a C string: the input up to its first NUL */
    char *spec = malloc(size + 1);
    memcpy(spec, data, size);
    spec[size] = 0;

    static const struct clk_options defaults = {
        .stack_depth = CLK_DEFAULT_DEPTH, .report = 1, .follow_children = 1};
    clk_opts = defaults;
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = clk_options_parse(spec, err, sizeof err);

    FUZZ_CHECK(rc == 0 || rc == -1 || rc == 1); /* 1: help=1, the keys in err */
    if (rc == 0)
        FUZZ_CHECK(err[0] == 'x'); /* nothing written on success */
    else
        FUZZ_CHECK(terminated(err, sizeof err) && !strncmp(err, "connleak: CONNLEAK_OPTIONS: ", 28));
    /* whatever was accepted before an error stays within its range */
    FUZZ_CHECK(clk_opts.exitcode >= 0 && clk_opts.exitcode <= 255);
    FUZZ_CHECK(clk_opts.stack_depth >= 1 && clk_opts.stack_depth <= CLK_MAX_DEPTH);
    FUZZ_CHECK(clk_opts.report == 0 || clk_opts.report == 1);
    FUZZ_CHECK(clk_opts.follow_children == 0 || clk_opts.follow_children == 1);
    FUZZ_CHECK(clk_opts.verbosity >= 0 && clk_opts.verbosity <= 2);
    FUZZ_CHECK(terminated(clk_opts.output, sizeof clk_opts.output));
    FUZZ_CHECK(terminated(clk_opts.suppressions, sizeof clk_opts.suppressions));
    FUZZ_CHECK(clk_opts.run_dir[0] == 0); /* set by the CLI's environment, never by options */

    /* a tiny error buffer must be enough for a bounded write */
    char tiny[4];
    clk_opts = defaults;
    int rc2 = clk_options_parse(spec, tiny, sizeof tiny);
    FUZZ_CHECK(rc2 == rc);
    if (rc2)
        FUZZ_CHECK(terminated(tiny, sizeof tiny));
    free(spec);
    return rc;
}

#ifdef CLK_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clk_fuzz_options(data, size);
    return 0;
}
#endif
