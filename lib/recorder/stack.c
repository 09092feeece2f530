/* stack.c — raw return addresses through libunwind, with the recorder's own frames dropped. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>

#include "recorder.h"

static uint64_t self_start, self_end;

struct find_self {
    uint64_t addr;
};

static int find_self_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct find_self *f = data;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    if (f->addr >= lo && f->addr < hi) {
        self_start = lo;
        self_end = hi;
        return 1;
    }
    return 0;
}

int clk_addr_is_ours(uint64_t ip)
{
    return ip >= self_start && ip < self_end;
}

void clk_stack_init(void)
{
    struct find_self f = {(uint64_t)(uintptr_t)&clk_stack_init};
    dl_iterate_phdr(find_self_cb, &f);
    /* libunwind's first walk in a process costs ~150 µs: pay it here, not in the first event */
    uint64_t warm[8];
    clk_stack_capture(warm, 8);
}

int clk_stack_capture(uint64_t *ips, int max)
{
    void *raw[CLK_MAX_DEPTH + 16];
    int want = max + 16;
    if (want > (int)(sizeof raw / sizeof raw[0]))
        want = (int)(sizeof raw / sizeof raw[0]);
    int n = unw_backtrace(raw, want);
    int skip = 0;
    while (skip < n && clk_addr_is_ours((uint64_t)(uintptr_t)raw[skip]))
        skip++;
    int out = 0;
    for (int i = skip; i < n && out < max; i++)
        ips[out++] = (uint64_t)(uintptr_t)raw[i];
    return out;
}
