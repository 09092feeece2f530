/* fuzz_common.h — shared by the fuzz targets and suites/fuzz_regress: the bodies, a scratch file, the sanity check. */
#ifndef CONNLEAK_FUZZ_COMMON_H
#define CONNLEAK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* One body per parser: parses `data` and checks that what came back is sane
 * (FUZZ_CHECK). Returns the parser's own status (0 accepted, -1 refused). The
 * libFuzzer entry points (built with -DCLK_LIBFUZZER) call these; so does the
 * regression suite, over every file in fuzz/corpus/<target> and fuzz/regressions/<target>. */
int clk_fuzz_options(const uint8_t *data, size_t size);
int clk_fuzz_suppressions(const uint8_t *data, size_t size);
int clk_fuzz_json_report(const uint8_t *data, size_t size);
int clk_fuzz_journal(const uint8_t *data, size_t size);

/* Called when a sanity check fails: aborts under libFuzzer (a crash it keeps),
 * fails the test in the regression suite. Each driver defines it. */
void clk_fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));
#define FUZZ_CHECK(cond)                                       \
    do {                                                       \
        if (!(cond))                                           \
            clk_fuzz_fail(#cond, __FILE__, __LINE__);          \
    } while (0)

/* The parsers take paths: writes data to this process's scratch file for `tag`
 * (created once, removed at exit) and returns its path. */
const char *clk_fuzz_scratch(const char *tag, const uint8_t *data, size_t size);
/* Removes the scratch files now (for drivers that leave by _exit, as Criterion's workers do). */
void clk_fuzz_scratch_remove(void);

#endif
