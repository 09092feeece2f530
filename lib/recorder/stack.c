/* stack.c — raw return addresses through libunwind, with the recorder's own frames dropped. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>

#include "recorder.h"

static uint64_t self_start, self_end;

void clk_phdr_bounds(const struct dl_phdr_info *info, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < *lo)
            *lo = a;
        if (a + ph->p_memsz > *hi)
            *hi = a + ph->p_memsz;
    }
}

/* The loaded object an address lies in. */
struct find_range {
    uint64_t addr, start, end;
    int is_main;
};

static int find_range_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct find_range *f = data;
    uint64_t lo, hi;
    clk_phdr_bounds(info, &lo, &hi);
    if (f->addr >= lo && f->addr < hi) {
        f->start = lo;
        f->end = hi;
        f->is_main = !info->dlpi_name || !info->dlpi_name[0];
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
    struct find_range f = {(uint64_t)(uintptr_t)&clk_stack_init, 0, 0, 0};
    if (dl_iterate_phdr(find_range_cb, &f)) {
        self_start = f.start;
        self_end = f.end;
    }
    /* libunwind's first walk in a process costs ~150 µs: pay it here, not in the first event */
    uint64_t warm[8];
    clk_stack_capture(warm, 8);
}

/* unw_backtrace keeps a per-thread cache of 16384 frames (256 KiB, initialized on
 * a thread's first call: 64 page faults, ~100 us). A thread's first events walk
 * with unw_step instead (no per-thread cache; the register-state cache is
 * process-wide): a thread that opens a few connections never pays for it. */
#define STEP_EVENTS 32
static __thread unsigned thread_events __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) static int step_backtrace(void **raw, int want)
{
    unw_context_t uc;
    unw_cursor_t c;
    if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
        return 0;
    int n = 0;
    do {
        unw_word_t ip;
        if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || !ip)
            break;
        raw[n++] = (void *)(uintptr_t)ip;
    } while (n < want && unw_step(&c) > 0);
    return n;
}

int clk_stack_capture(uint64_t *ips, int max)
{
    void *raw[CLK_MAX_DEPTH + 16];
    int want = max + 16;
    if (want > (int)(sizeof raw / sizeof raw[0]))
        want = (int)(sizeof raw / sizeof raw[0]);
    int n = thread_events < STEP_EVENTS ? (thread_events++, step_backtrace(raw, want)) : unw_backtrace(raw, want);
    int skip = 0;
    while (skip < n && clk_addr_is_ours((uint64_t)(uintptr_t)raw[skip]))
        skip++;
    int out = 0;
    for (int i = skip; i < n && out < max; i++)
        ips[out++] = (uint64_t)(uintptr_t)raw[i];
    return out;
}

/* ---- the pool library's own frames ---- */

/* Loaded objects other than the main program whose frames lead a pool event's
 * stack: found once each, then a compare. */
#define MAX_LIBS 8
static struct {
    uint64_t start, end;
} libs[MAX_LIBS];
static int nlibs; /* atomic */
static pthread_mutex_t libs_mu = PTHREAD_MUTEX_INITIALIZER;
/* The main program's range, once found (atomics; end is published last, so
 * end != 0 means start is set): a pool compiled into the program must not
 * cost a dl_iterate_phdr per event. That call holds the loader's lock, which
 * fork does not reset: a child forked while another thread was in it hangs at
 * its first stack walk or at exit (suites/stress/tsan_stress.c found it). */
static uint64_t main_start, main_end;

static int lib_range(uint64_t ip, uint64_t *start, uint64_t *end)
{
    int n = __atomic_load_n(&nlibs, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (ip >= libs[i].start && ip < libs[i].end) {
            *start = libs[i].start;
            *end = libs[i].end;
            return 1;
        }
    uint64_t mend = __atomic_load_n(&main_end, __ATOMIC_ACQUIRE);
    if (mend && ip >= __atomic_load_n(&main_start, __ATOMIC_RELAXED) && ip < mend)
        return 0;
    struct find_range f = {ip, 0, 0, 0};
    if (!dl_iterate_phdr(find_range_cb, &f))
        return 0;
    if (f.is_main) {
        __atomic_store_n(&main_start, f.start, __ATOMIC_RELAXED);
        __atomic_store_n(&main_end, f.end, __ATOMIC_RELEASE);
        return 0;
    }
    pthread_mutex_lock(&libs_mu);
    if (nlibs < MAX_LIBS) {
        libs[nlibs].start = f.start;
        libs[nlibs].end = f.end;
        __atomic_store_n(&nlibs, nlibs + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&libs_mu);
    *start = f.start;
    *end = f.end;
    return 1;
}

/* For connleak_record: a pool library (dbconf, say) calls us from deep in its
 * own code; the report should start where the user called the pool, so the
 * leading frames of the calling shared library go too. A pool compiled into
 * the main program keeps its frames: there is no telling them apart. */
int clk_stack_capture_api(uint64_t *ips, int max)
{
    uint64_t raw[CLK_MAX_DEPTH + 16];
    int n = clk_stack_capture(raw, max + 16 > CLK_MAX_DEPTH + 16 ? CLK_MAX_DEPTH + 16 : max + 16);
    int skip = 0;
    uint64_t start, end;
    if (n > 1 && lib_range(raw[0], &start, &end))
        while (skip < n - 1 && raw[skip] >= start && raw[skip] < end)
            skip++;
    int out = 0;
    for (int i = skip; i < n && out < max; i++)
        ips[out++] = raw[i];
    return out;
}
