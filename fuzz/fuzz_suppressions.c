/* fuzz_suppressions.c — fuzz target for the suppressions parser (harness/suppress.c): load, then apply to a report. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_report.h"

/* Frame names the rules are matched against: fixed ones, plus the text of the
 * input's first comment lines ("#name"), so the globs meet fuzzed subjects too. */
static const char *const fixed_names[] = {
    "open_cache", "/src/app/cache.c", "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0", "f[abi:cxx11]",
    "sqlite3_open_v2", "^$*", "a*b*c", "",
};
#define NFIXED (sizeof fixed_names / sizeof *fixed_names)
#define MAX_COMMENTS 4

static size_t comment_names(const uint8_t *data, size_t size, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < size && n < MAX_COMMENTS;) {
        const uint8_t *eol = memchr(data + i, '\n', size - i);
        size_t len = eol ? (size_t)(eol - (data + i)) : size - i;
        if (len > 1 && data[i] == '#') {
            char *s = clk_xstrndup((const char *)data + i + 1, len - 1);
            out[n++] = clk_intern(s);
            free(s);
        }
        i += len + 1;
    }
    return n;
}

int clk_fuzz_suppressions(const uint8_t *data, size_t size)
{
    const char *path = clk_fuzz_scratch("suppressions", data, size);
    struct clk_suppressions *s = clk_suppressions_load(path);
    if (!s)
        return -1;

    const char *names[NFIXED + MAX_COMMENTS];
    memcpy(names, fixed_names, sizeof fixed_names);
    size_t nnames = NFIXED + comment_names(data, size, names + NFIXED);

    /* one finding of each kind per name, each stack a single frame naming it
     * as function, file and module at once */
    struct clk_report r;
    clk_report_init(&r);
    for (size_t i = 0; i < nnames; i++) {
        for (int k = CLK_LEAK; k <= CLK_UNKNOWN_CLOSE; k++) {
            struct clk_frame fr = {.function = names[i], .file = names[i], .module = names[i]};
            struct clk_finding f = {0};
            int pid = 1;
            f.kind = (enum clk_kind)k;
            f.backend = "sqlite";
            f.count = i + 1;
            f.pids = &pid;
            f.npids = 1;
            f.closed_at.f = f.opened_at.f = f.first_closed_at.f = &fr;
            f.closed_at.n = f.opened_at.n = f.first_closed_at.n = 1;
            clk_finding_fingerprint(&f);
            clk_report_add(&r, &f);
        }
    }
    clk_suppressions_apply(&r, s);
    clk_suppressions_apply(&r, s); /* twice: the notes are not repeated */
    for (size_t i = 0; i < r.nfindings; i++)
        FUZZ_CHECK(r.findings[i]->suppressed == 0 || r.findings[i]->suppressed == 1);
    for (size_t i = 0; i < r.nnotes; i++)
        for (size_t j = i + 1; j < r.nnotes; j++)
            FUZZ_CHECK(strcmp(r.notes[i], r.notes[j]) != 0);
    fuzz_check_report(&r);
    fuzz_report_free(&r);
    clk_suppressions_free(s);
    return 0;
}

#ifdef CLK_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clk_fuzz_suppressions(data, size);
    return 0;
}
#endif
