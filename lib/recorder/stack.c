/* stack.c — the stack of an event as an interned id: libunwind walks, the recorder's own frames dropped, repeats taken from a checked per-thread cache. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* ---- walks ---- */

/* fork does not reset the loader's dl_iterate_phdr lock nor libunwind's own
 * state: a child forked while one of our threads walked could hang at its
 * first walk. Walks hold this for reading; fork's prepare handler takes it
 * for writing, so the fork waits for walks in flight. Taken before any other
 * lock of ours and never while holding one (the prepare handler takes it
 * first); glibc's default favours readers, so a walk re-entered from a signal
 * handler cannot deadlock on a waiting fork. */
static pthread_rwlock_t walk_lock = PTHREAD_RWLOCK_INITIALIZER;

/* Cancellation is held off meanwhile: libunwind may write() (its memory
 * check), a cancellation point, and a thread cancelled there would keep the
 * lock and stop every later fork. */
int clk_walk_begin(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    pthread_rwlock_rdlock(&walk_lock);
    return old;
}

void clk_walk_end(int cancel_state)
{
    pthread_rwlock_unlock(&walk_lock);
    pthread_setcancelstate(cancel_state, NULL);
}

/* unw_backtrace keeps a per-thread cache of 16384 frames (256 KiB, initialized on
 * a thread's first call: 64 page faults, ~100 us). A thread's first events walk
 * with unw_step instead (no per-thread cache; the register-state cache is
 * process-wide): a thread that opens a few connections never pays for it. */
#define STEP_EVENTS 32
static __thread unsigned thread_events __attribute__((tls_model("initial-exec")));
#define RAW_MAX (CLK_MAX_DEPTH + 16)

/* A walk's frames: return addresses, the stack pointer of each frame, and the
 * first frame the event keeps. */
struct walk {
    void *raw[RAW_MAX];
    uint64_t sp[RAW_MAX];
    int n, first;
};

/* unw_step, noting each frame's stack pointer as well: on x86-64 the return
 * address that is frame i's ip was pushed just below it, at sp[i] - 8. About
 * six times the cost of unw_backtrace a frame. */
__attribute__((noinline)) static int step_walk(void **raw, uint64_t *sp, int want)
{
    unw_context_t uc;
    unw_cursor_t c;
    if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
        return 0;
    int n = 0;
    do {
        unw_word_t ip, s = 0;
        if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || !ip)
            break;
        unw_get_reg(&c, UNW_REG_SP, &s);
        sp[n] = s;
        raw[n++] = (void *)(uintptr_t)ip;
    } while (n < want && unw_step(&c) > 0);
    return n;
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
    int cs = clk_walk_begin();
    int found = dl_iterate_phdr(find_range_cb, &f);
    clk_walk_end(cs);
    if (!found)
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

/* Which raw frames the event keeps: the recorder's own frames go; for the API
 * (connleak_record), a pool library (dbconf, say) calls us from deep in its own
 * code and the report should start where the user called the pool, so that
 * library's leading frames go too. A pool compiled into the main program keeps
 * its frames: there is no telling them apart. Returns the first kept index. */
static int first_kept(void *const *raw, int n, int api)
{
    int skip = 0;
    while (skip < n && clk_addr_is_ours((uint64_t)(uintptr_t)raw[skip]))
        skip++;
    uint64_t start, end;
    if (api && n - skip > 1 && lib_range((uint64_t)(uintptr_t)raw[skip], &start, &end))
        while (skip < n - 1 && (uint64_t)(uintptr_t)raw[skip] >= start && (uint64_t)(uintptr_t)raw[skip] < end)
            skip++;
    return skip;
}

/* ---- the checked stack cache ----
 * A loop that opens and closes connections repeats a few stacks, and walking
 * one again costs ~100 instructions a frame plus the interning. So each thread
 * remembers the stacks it met twice from one call site (key: the capturing
 * frame's address and return address) together with where each of their
 * return addresses lives on the stack, and reuses one when every remembered
 * return address is still in place there: a load and a compare a frame. With
 * the frame address equal, a frame's return-address slot can only move if a
 * frame below it changed size (alloca, realignment), and reusing then needs
 * the old slots to still hold the old addresses all the way up: a stale copy
 * of the same call chain, which is the same stack. x86-64 only (where the
 * return address sits at the caller's stack pointer - 8); other targets always
 * walk. */
#if defined(__x86_64__)
#define SC_SETS 8
#define SC_WAYS 4
#define SC_FRAMES (CLK_DEFAULT_DEPTH + 16) /* default depth, plus a pool library's frames */
#define SC_NEVER 0xffff                    /* nchk of a stack that does not fit: never placed */

struct sc_entry {
    uint64_t sp, ra;  /* key */
    uint32_t id;      /* interned stack, 0 = empty */
    uint32_t gen;     /* journal generation the stack is known to be written to */
    uint16_t req;     /* max | api << 15: the request it answers */
    uint16_t nchk;    /* slots to check; 0 = seen once, not yet placed; SC_NEVER */
    uint32_t off[SC_FRAMES]; /* slot address - sp */
    uint64_t val[SC_FRAMES]; /* the return address found there */
};

struct sc_thread {
    struct sc_entry e[SC_SETS][SC_WAYS];
    uint8_t victim[SC_SETS];
    uint64_t lo, hi; /* the thread's own stack: the cache serves nothing else */
    struct sc_thread *next_free;
};

static __thread struct sc_thread *sc_mine __attribute__((tls_model("initial-exec")));
static __thread uint8_t sc_state __attribute__((tls_model("initial-exec"))); /* 0 none yet, 1 in use, 2 never */
static __thread uint8_t sc_busy __attribute__((tls_model("initial-exec")));
static pthread_key_t sc_key;
static int sc_key_ok;
static struct sc_thread *sc_free;
static pthread_mutex_t sc_free_mu = PTHREAD_MUTEX_INITIALIZER;
extern void *__libc_stack_end;

/* At thread exit: the cache goes back for the next thread. */
static void sc_release(void *p)
{
    struct sc_thread *t = p;
    sc_mine = NULL;
    sc_state = 2;
    pthread_mutex_lock(&sc_free_mu);
    t->next_free = sc_free;
    sc_free = t;
    pthread_mutex_unlock(&sc_free_mu);
}

static int stack_bounds(uint64_t *lo, uint64_t *hi)
{
    if (clk_tid() == (uint32_t)getpid()) {
        /* the main thread: pthread_getattr_np would read /proc/self/maps */
        struct rlimit rl;
        uint64_t size = getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1ull << 30;
        *hi = (uint64_t)(uintptr_t)__libc_stack_end;
        *lo = *hi > size ? *hi - size : 0;
        return *hi != 0;
    }
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    int ok = pthread_attr_getstack(&attr, &addr, &size) == 0;
    pthread_attr_destroy(&attr);
    *lo = (uint64_t)(uintptr_t)addr;
    *hi = *lo + size;
    return ok && size;
}

/* This thread's cache, set up at its fourth event: setting it up (the stack's
 * bounds, ~19 KiB to touch) costs more than a few walks, so a thread that
 * opens a connection or two never pays for it. */
#define SC_AFTER 3
static struct sc_thread *sc_get(void)
{
    if (sc_state == 1)
        return sc_mine;
    if (sc_state == 2 || !sc_key_ok || thread_events < SC_AFTER)
        return NULL;
    sc_state = 2;
    uint64_t lo, hi;
    if (!stack_bounds(&lo, &hi))
        return NULL;
    pthread_mutex_lock(&sc_free_mu);
    struct sc_thread *t = sc_free;
    if (t)
        sc_free = t->next_free;
    pthread_mutex_unlock(&sc_free_mu);
    if (t) /* an entry with no id is empty: no need to clear the rest */
        for (int s = 0; s < SC_SETS; s++)
            for (int w = 0; w < SC_WAYS; w++)
                t->e[s][w].id = 0;
    else if (!(t = clk_arena_alloc(sizeof *t)))
        return NULL;
    t->lo = lo;
    t->hi = hi;
    if (pthread_setspecific(sc_key, t) != 0) {
        sc_release(t);
        return NULL;
    }
    sc_mine = t;
    sc_state = 1;
    return t;
}

static int sc_check(const struct sc_entry *e)
{
    for (int i = 0; i < e->nchk; i++)
        if (*(const volatile uint64_t *)(uintptr_t)(e->sp + e->off[i]) != e->val[i])
            return 0;
    return 1;
}

/* Places a walked stack in `e`: the frames from the one after the capturing
 * frame's caller (index at) to the last kept one, each slot checked to hold
 * its frame's ip now. Returns 0 (entry left empty) when they do not fit. */
static int sc_place(struct sc_thread *t, struct sc_entry *e, void *const *raw, const uint64_t *sp, int at, int last)
{
    int k = 0;
    for (int i = at; i <= last; i++) {
        uint64_t slot = sp[i] - 8;
        if (k == SC_FRAMES || slot < e->sp || slot + 8 > t->hi || slot - e->sp > UINT32_MAX ||
            *(const uint64_t *)(uintptr_t)slot != (uint64_t)(uintptr_t)raw[i])
            return 0;
        e->off[k] = (uint32_t)(slot - e->sp);
        e->val[k++] = (uint64_t)(uintptr_t)raw[i];
    }
    e->nchk = (uint16_t)k;
    return 1;
}
/* The key of a cache entry: the capturing frame, its return address, and the
 * request (depth, API or not); set is the index its hash picks. */
struct sc_key {
    uint64_t sp, ra;
    uint16_t req;
    unsigned set;
};

/* After a walk that missed: the stack goes into its set as seen once; met the
 * second time, or walked with unw_step anyway (w->sp filled: stepped), it is
 * placed with where its frames live. ips/out are the frames kept; w may be
 * walked again. */
static void sc_remember(struct sc_thread *t, const struct sc_key *k, struct sc_entry *seen, uint32_t id,
                        const uint64_t *ips, int out, struct walk *w, int stepped, int want, int api)
{
    struct sc_entry *e = seen && seen->id == id ? seen : NULL;
    if (e && e->nchk == SC_NEVER)
        return;
    if (e && !stepped) {
        /* met twice: worth one slower walk to learn where its frames live */
        int cs = clk_walk_begin();
        w->n = step_walk(w->raw, w->sp, want);
        clk_walk_end(cs);
        w->first = first_kept(w->raw, w->n, api);
        for (int i = 0; e && i < out; i++)
            if (w->first + i >= w->n || (uint64_t)(uintptr_t)w->raw[w->first + i] != ips[i])
                e = NULL; /* not the same chain after all: remembered as seen once */
        stepped = e != NULL;
    }
    if (!e)
        e = &t->e[k->set][t->victim[k->set]++ % SC_WAYS];
    e->sp = k->sp;
    e->ra = k->ra;
    e->req = k->req;
    e->id = id;
    e->gen = __atomic_load_n(&clk_journal_generation, __ATOMIC_ACQUIRE);
    e->nchk = 0;
    if (!stepped)
        return;
    int at = -1; /* the capturing frame's caller: its ip is the key's return address */
    for (int i = 1; i < w->n && at < 0; i++)
        if ((uint64_t)(uintptr_t)w->raw[i] == k->ra)
            at = i + 1;
    int last = w->first + out - 1;
    if (at < 0 || at > last)
        e->id = 0;
    else if (!sc_place(t, e, w->raw, w->sp, at, last))
        e->nchk = SC_NEVER;
}
#endif


/* The interned stack of the calling wrapper's caller, up to max frames (0: none).
 * In a Python program the thread's Python frames come first: they are read
 * before the C stack, which is not walked at all when they fill the depth (a
 * test suite's calls are 30 Python frames deep: the C frames would be dropped). */
__attribute__((noinline)) uint32_t clk_stack_here(int max, int api)
{
    uint64_t py[CLK_MAX_DEPTH];
    int npy = clk_py_frames(py, max);
    if (npy >= max)
        return clk_intern_stack(py, npy);
    struct walk w;
    uint64_t ips[RAW_MAX];
    int want = max + 16 > RAW_MAX ? RAW_MAX : max + 16;
    int stepping = thread_events < STEP_EVENTS;
#if defined(__x86_64__)
    struct sc_key k = {(uint64_t)(uintptr_t)__builtin_frame_address(0),
                       (uint64_t)(uintptr_t)__builtin_return_address(0), (uint16_t)(max | api << 15), 0};
    k.set = (unsigned)((k.sp ^ k.sp >> 12 ^ k.ra ^ k.ra >> 7) % SC_SETS);
    struct sc_thread *t = sc_busy || max > CLK_DEFAULT_DEPTH ? NULL : sc_get();
    struct sc_entry *seen = NULL;
    if (t && (k.sp < t->lo || k.sp >= t->hi))
        t = NULL; /* another stack (a coroutine's, sigaltstack): walk */
    if (t) {
        sc_busy = 1;
        for (int i = 0; i < SC_WAYS; i++) {
            struct sc_entry *e = &t->e[k.set][i];
            if (e->sp != k.sp || e->ra != k.ra || e->req != k.req || !e->id)
                continue;
            if (!e->nchk || e->nchk == SC_NEVER) {
                seen = e;
            } else if (sc_check(e)) {
                uint32_t id = e->id, gen = __atomic_load_n(&clk_journal_generation, __ATOMIC_ACQUIRE);
                if (e->gen != gen) { /* a fork child's new journal needs it too */
                    clk_intern_ensure(id);
                    e->gen = gen;
                }
                sc_busy = 0;
                return clk_py_join(py, npy, id, max);
            }
        }
    }
#endif
    int cs = clk_walk_begin();
    if (stepping) {
        thread_events++;
        w.n = step_walk(w.raw, w.sp, want);
    } else {
        w.n = unw_backtrace(w.raw, want);
    }
    clk_walk_end(cs);
    w.first = first_kept(w.raw, w.n, api);
    int out = 0;
    for (int i = w.first; i < w.n && out < max; i++)
        ips[out++] = (uint64_t)(uintptr_t)w.raw[i];
    uint32_t id = clk_intern_stack(ips, out);
#if defined(__x86_64__)
    if (t) {
        if (id)
            sc_remember(t, &k, seen, id, ips, out, &w, stepping, want, api);
        sc_busy = 0;
    }
#endif
    return clk_py_join(py, npy, id, max);
}

void clk_stack_init(void)
{
    struct find_range f = {(uint64_t)(uintptr_t)&clk_stack_init, 0, 0, 0};
    if (dl_iterate_phdr(find_range_cb, &f)) {
        self_start = f.start;
        self_end = f.end;
    }
#if defined(__x86_64__)
    sc_key_ok = pthread_key_create(&sc_key, sc_release) == 0;
#endif
    /* libunwind's first walk in a process costs ~150 µs: pay it here, not in the first event */
    void *raw[8];
    uint64_t sp[8];
    step_walk(raw, sp, 8);
}

void clk_stack_prepare_fork(void)
{
    pthread_rwlock_wrlock(&walk_lock);
#if defined(__x86_64__)
    pthread_mutex_lock(&sc_free_mu);
#endif
    pthread_mutex_lock(&libs_mu);
}

void clk_stack_after_fork(int child)
{
    pthread_mutex_unlock(&libs_mu);
#if defined(__x86_64__)
    pthread_mutex_unlock(&sc_free_mu);
#endif
    if (child) {
        /* glibc's unlock tells a writer by its thread id, which the child's
         * thread no longer has: start the child with a fresh lock */
        pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
        walk_lock = fresh;
    } else {
        pthread_rwlock_unlock(&walk_lock);
    }
}
