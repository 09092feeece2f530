/* fuzz_journal.c — fuzz target for the per-process journal reader (harness/load_raw.c, clk_load_raw; lib/rawfmt.h). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_report.h"
#include "rawfmt.h"

int clk_fuzz_journal(const uint8_t *data, size_t size)
{
    const char *path = clk_fuzz_scratch("journal", data, size);
    struct connleak_raw_header h = {0};
    int valid_header = 0;
    if (size >= sizeof h) {
        memcpy(&h, data, sizeof h);
        valid_header = !memcmp(h.magic, CONNLEAK_RAW_MAGIC, sizeof h.magic) && h.version == CONNLEAK_RAW_VERSION &&
                       h.slot_size == CONNLEAK_RAW_SLOT;
    }
    struct clk_report r;
    clk_report_init(&r);
    int rc = clk_load_raw(&r, path);
    /* anything after a good header is read; a part of a slot is refused */
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (valid_header)
        FUZZ_CHECK(rc == 0);
    if (size > 0 && size < CONNLEAK_RAW_SLOT)
        FUZZ_CHECK(rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(r.summary.processes == 1);
        for (size_t i = 0; i < r.nfindings; i++) {
            const struct clk_finding *f = r.findings[i];
            FUZZ_CHECK(f->npids == 1 && f->pids[0] == h.pid);
            FUZZ_CHECK(!strcmp(f->backend, "sqlite") || !strcmp(f->backend, "postgres") ||
                       !strcmp(f->backend, "unknown"));
            /* a stack has at most as many frames as fit in the file */
            FUZZ_CHECK((size_t)f->opened_at.n <= size / 8 && (size_t)f->closed_at.n <= size / 8 &&
                       (size_t)f->first_closed_at.n <= size / 8);
        }
    } else {
        FUZZ_CHECK(r.nfindings == 0 && r.summary.processes == 0);
    }
    fuzz_check_report(&r);
    fuzz_report_free(&r);
    return rc;
}

#ifdef CLK_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clk_fuzz_journal(data, size);
    return 0;
}
#endif
