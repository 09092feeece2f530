/* fuzz_json_report.c — fuzz target for the JSON report reader (harness/load_json.c, clk_load_json). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_report.h"

int clk_fuzz_json_report(const uint8_t *data, size_t size)
{
    const char *path = clk_fuzz_scratch("json_report", data, size);
    struct clk_report r;
    clk_report_init(&r);
    int rc = clk_load_json(&r, path);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        /* the same bytes again are recognised and merged once */
        size_t nfindings = r.nfindings, nnotes = r.nnotes;
        uint64_t processes = r.summary.processes;
        FUZZ_CHECK(clk_load_json(&r, path) == 0);
        FUZZ_CHECK(r.nfindings == nfindings && r.summary.processes == processes);
        FUZZ_CHECK(r.nnotes == nnotes + 1 && strstr(r.notes[nnotes], "merged once"));
    }
    fuzz_check_report(&r);
    fuzz_report_free(&r);
    return rc;
}

#ifdef CLK_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clk_fuzz_json_report(data, size);
    return 0;
}
#endif
