/* tracker.c — the connection state machine (open, closed, double and unknown closes) and the public tracker API. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* Handles live in separate namespaces so a pool's bookkeeping never collides
 * with the wrappers' view of the same pointer. */
#define NS_WRAP 0ull
#define NS_POOL (1ull << 62)
#define NS_CHECKOUT (2ull << 62)

enum { ST_OPEN = 1, ST_CLOSED = 2 };
#define F_INHERITED 0x1u
#define F_PYSQLITE CLK_OPEN_PYSQLITE /* opened by Python's _sqlite3: kept as the open passed it */

/* slot layout: v[0] = state | backend<<8 | flags<<16 | target<<32
 *              v[1] = open stack | close stack<<32
 *              v[2] = test id */
#define V0(state, backend, flags, target) \
    ((uint64_t)(state) | (uint64_t)(backend) << 8 | (uint64_t)(flags) << 16 | (uint64_t)(target) << 32)
#define ST(v0) ((unsigned)((v0)&0xff))
#define BACKEND(v0) ((uint8_t)(((v0) >> 8) & 0xff))
#define FLAGS(v0) ((unsigned)(((v0) >> 16) & 0xffff))
#define TARGET(v0) ((uint32_t)((v0) >> 32))

static struct clk_table handles;
static struct clk_table left_field;

static struct {
    uint64_t connects, closes, open, doubles, unknowns, checkouts, checkins, checked_out;
} counts; /* atomics */

#define INC(f) __atomic_add_fetch(&counts.f, 1, __ATOMIC_RELAXED)
#define DEC(f) __atomic_sub_fetch(&counts.f, 1, __ATOMIC_RELAXED)

/* ---- the running Criterion test, if any ----
 * Criterion 2.4.1 runs each test in a worker process of its own. There,
 * libcriterion's exported criterion_current_test points at the test from
 * before its fixtures run until the worker exits, and it is the same test
 * during the suite's and the test's .init, the body and the .fini. It points
 * into the worker's stack, so it dangles once the test has returned. The
 * Test() macro, compiled into the test binary, calls the fixtures and the
 * body through three exported functions: criterion_internal_test_setup
 * (suite .init, then test .init), _main (the body) and _teardown (test
 * .fini, then suite .fini). The preloaded library interposes them to learn
 * the phase, and copies the test's name while it is valid. An open is
 * attributed to "suite::name" in the body, "suite::name (init)" in a fixture's
 * .init and "suite::name (fini)" from the .fini on (exit handlers included).
 * The linkable library does not interpose: there it is "suite::name"
 * whenever criterion_current_test is set. */

struct criterion_test_view {
    const char *name;
    const char *category;
};
static const struct criterion_test_view *const *cr_current;
static const void *cached_test;
static uint32_t cached_test_id;

enum { CR_UNSEEN = 0, CR_INIT = 1, CR_BODY = 2, CR_FINI = 3 };
static int cr_phase;                 /* set by the interposed functions; CR_UNSEEN without them */
static char cr_name[512];            /* "suite::name", copied when the test starts */
static uint32_t cr_phase_id[4];      /* interned "suite::name[ (init|fini)]" per phase */

/* ---- the running pytest test, if any ----
 * pytest sets PYTEST_CURRENT_TEST to "path::name (phase)" for each phase of a
 * test (setup, call, teardown) and removes it between tests. A finding's test
 * is that value with the body's " (call)" dropped: "tests/test_db.py::test_leaky";
 * a fixture's open keeps its phase, "... (setup)" or "... (teardown)" (as
 * Criterion's "(init)" and "(fini)"). A getenv is not free (a walk of the
 * environment), so it is looked up only where it can be set: in a Python
 * interpreter (the program exports the C API: python3 itself, or a program
 * linked with libpython), and in a process started with it set (a program a
 * test runs: its connections are that test's). Other programs pay one load. */
#define PYTEST_VAR "PYTEST_CURRENT_TEST"
static int pt_look;
/* The last value this thread met and its interned name: glibc's setenv never
 * frees or rewrites a "name=value" string it made (a value set again is the same
 * string), so the same pointer is the same text. Per thread: no lock. */
static __thread struct {
    const char *value;
    uint32_t id;
} pt_last __attribute__((tls_model("initial-exec")));

static uint32_t pytest_test(void)
{
    /* (libpq's connect calls getenv too: no new hazard from a thread racing setenv) */
    const char *v = getenv(PYTEST_VAR);
    if (!v || !v[0])
        return 0;
    if (v == pt_last.value)
        return pt_last.id; /* write_event puts it in this journal if it is not there yet */
    static const char call[] = " (call)";
    size_t n = strlen(v), nc = sizeof call - 1;
    if (n > nc && memcmp(v + n - nc, call, nc) == 0)
        n -= nc;
    uint32_t id = clk_intern_string(v, n);
    pt_last.value = v;
    pt_last.id = id;
    return id;
}

void clk_tracker_init(void)
{
    cr_current = dlsym(RTLD_DEFAULT, "criterion_current_test");
    pt_look = getenv(PYTEST_VAR) || dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    dlerror(); /* absent outside Criterion and Python: not the program's dlerror() to see */
}

/* "category::name" + suffix into out (truncated, not NUL-terminated); returns the length. */
static size_t cr_format(const struct criterion_test_view *t, const char *suffix, char *out, size_t cap)
{
    size_t n = 0;
    const char *parts[4] = {t->category ? t->category : "", "::", t->name ? t->name : "", suffix};
    for (int i = 0; i < 4; i++)
        for (const char *p = parts[i]; *p && n < cap - 1; p++)
            out[n++] = *p;
    return n;
}

uint32_t clk_current_test(void)
{
    int phase = __atomic_load_n(&cr_phase, __ATOMIC_ACQUIRE);
    if (phase != CR_UNSEEN) {
        uint32_t id = __atomic_load_n(&cr_phase_id[phase], __ATOMIC_ACQUIRE);
        if (id || !cr_name[0])
            return id;
        static const char *const suffix[4] = {"", " (init)", "", " (fini)"};
        char name[sizeof cr_name + 8];
        size_t n = strlen(cr_name);
        memcpy(name, cr_name, n);
        for (const char *p = suffix[phase]; *p; p++)
            name[n++] = *p;
        id = clk_intern_string(name, n);
        __atomic_store_n(&cr_phase_id[phase], id, __ATOMIC_RELEASE);
        return id;
    }
    if (!cr_current)
        return __builtin_expect(pt_look, 0) ? pytest_test() : 0;
    const struct criterion_test_view *t = __atomic_load_n(cr_current, __ATOMIC_ACQUIRE);
    if (!t)
        return 0;
    if (t == __atomic_load_n(&cached_test, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&cached_test_id, __ATOMIC_ACQUIRE);
    char name[512];
    uint32_t id = clk_intern_string(name, cr_format(t, "", name, sizeof name));
    __atomic_store_n(&cached_test_id, id, __ATOMIC_RELEASE);
    __atomic_store_n(&cached_test, (const void *)t, __ATOMIC_RELEASE);
    return id;
}

#ifndef CLK_LINKABLE
/* The interposers only set the phase and jump to libcriterion's function:
 * compiled as tail calls (also in -O0 builds) so that no frame of ours sits
 * in the middle of the stacks we record. */
#if defined(__GNUC__) && !defined(__clang__)
#define CR_TAIL __attribute__((visibility("default"), optimize("O2")))
#else
#define CR_TAIL __attribute__((visibility("default")))
#endif
static const char *const criterion_libs[] = {"libcriterion.so.3", "libcriterion.so", NULL};
void criterion_internal_test_setup(void);
void criterion_internal_test_main(void (*fn)(void));
void criterion_internal_test_teardown(void);

static void *cr_real(const char *name)
{
    void *f = clk_real(name, criterion_libs);
    if (!f) {
        clk_warn("connleak: %s: libcriterion's own function not found", name);
        __builtin_abort();
    }
    return f;
}

CR_TAIL void criterion_internal_test_setup(void)
{
    static void (*real)(void);
    if (!real)
        real = (void (*)(void))cr_real("criterion_internal_test_setup");
    clk_ensure_init();
    /* a new test: copy its name now, while criterion_current_test is valid */
    const struct criterion_test_view *t = cr_current ? *cr_current : NULL;
    memset(cr_phase_id, 0, sizeof cr_phase_id);
    cr_name[t ? cr_format(t, "", cr_name, sizeof cr_name) : 0] = 0;
    __atomic_store_n(&cr_phase, CR_INIT, __ATOMIC_RELEASE);
    real();
}

CR_TAIL void criterion_internal_test_main(void (*fn)(void))
{
    static void (*real)(void (*)(void));
    if (!real)
        real = (void (*)(void (*)(void)))cr_real("criterion_internal_test_main");
    __atomic_store_n(&cr_phase, CR_BODY, __ATOMIC_RELEASE);
    real(fn);
}

CR_TAIL void criterion_internal_test_teardown(void)
{
    static void (*real)(void);
    if (!real)
        real = (void (*)(void))cr_real("criterion_internal_test_teardown");
    __atomic_store_n(&cr_phase, CR_FINI, __ATOMIC_RELEASE);
    real();
}
#endif

/* ---- journal records ---- */

/* The stack that created this thread (threads.c sets it as the thread starts;
 * 0 on the main thread, and always in the linkable library). Initial-exec: no
 * allocation on first use. */
CLK_HIDDEN __thread uint32_t clk_thread_stack __attribute__((tls_model("initial-exec")));

/* inlined: twelve arguments through a call cost more than the record's stores */
static inline __attribute__((always_inline)) void write_event(uint64_t slot, uint8_t type, uint8_t backend,
                                                              uint16_t flags, uint64_t handle, uint32_t stack,
                                                              uint32_t target, uint32_t open_stack,
                                                              uint32_t first_close, uint32_t test, int result,
                                                              uint32_t thread_stack)
{
    if (!slot)
        return;
    /* blobs an event names must be in this journal (after a fork they may not be yet; in direct
     * mode the journal is made at the first event, after its stack was interned) */
    if (stack)
        clk_intern_ensure(stack);
    if (open_stack)
        clk_intern_ensure(open_stack);
    if (first_close)
        clk_intern_ensure(first_close);
    if (target)
        clk_intern_ensure(target);
    if (test)
        clk_intern_ensure(test);
    if (thread_stack)
        clk_intern_ensure(thread_stack);
    /* filled in place: no copy of a record built on the stack */
    struct connleak_raw_record *rec = clk_journal_slot(slot);
    if (rec) {
        rec->backend = backend;
        rec->flags = flags;
        rec->tid = clk_tid();
        rec->u.ev.handle = handle;
        rec->u.ev.stack = stack;
        rec->u.ev.target = target;
        rec->u.ev.open_stack = open_stack;
        rec->u.ev.first_close_stack = first_close;
        rec->u.ev.test = test;
        rec->u.ev.result = result;
        rec->u.ev.thread_stack = thread_stack;
        /* the CLI orders by slot: a clock read per event only when asked for (held_longer_than) */
        if (__builtin_expect(clk_opts.held_longer_than_ms != 0, 0))
            rec->u.ev.time_ns = clk_now_ns(0);
    }
    clk_journal_publish(slot, rec, type);
}

/* ---- opens ---- */

static void track_open_ns(uint64_t ns, uint8_t backend, uint64_t handle, uint32_t target, uint16_t flags,
                          int result, uint32_t stack)
{
    uint32_t test = clk_current_test();
    struct clk_shard *held;
    struct clk_slot *s = clk_table_lock(&handles, handle ^ ns, 1, &held);
    if (s) {
        /* an open entry at a reused address was freed by a path we did not see;
         * a closed one may still be finishing its close in another thread (which counts it) */
        int was_open = ST(s->v[0]) == ST_OPEN;
        s->v[0] = V0(ST_OPEN, backend, flags & F_PYSQLITE, target);
        s->v[1] = stack;
        s->v[2] = test;
        clk_table_unlock(held);
        if (!was_open) {
            if (ns == NS_CHECKOUT)
                INC(checked_out);
            else
                INC(open);
        }
    }
    if (ns == NS_CHECKOUT)
        INC(checkouts);
    else
        INC(connects);
    write_event(clk_journal_reserve(0), ns == NS_CHECKOUT ? CONNLEAK_REC_CHECKOUT : CONNLEAK_REC_OPEN, backend,
                (uint16_t)(flags & ~CLK_OPEN_PYSQLITE), handle, stack, target, 0, 0, test, result, clk_thread_stack);
}

/* The redacted target of the last raw target this thread opened: loops reopen the same one. */
static __thread struct {
    uint32_t id, len;
    char raw[192 / CLK_TLS_SCALE];
} last_target __attribute__((tls_model("initial-exec")));

static uint32_t target_id(const char *target)
{
    if (!target)
        return 0;
    size_t len = strlen(target);
    if (last_target.id && last_target.len == len && memcmp(last_target.raw, target, len) == 0)
        return last_target.id; /* write_event puts it in this journal if it is not there yet */
    char clean[1024];
    size_t clen = clk_redact(target, clean, sizeof clean);
    uint32_t id = clk_intern_string(clean, clen);
    if (len <= sizeof last_target.raw) {
        memcpy(last_target.raw, target, len);
        last_target.len = (uint32_t)len;
        last_target.id = id;
    }
    return id;
}

void clk_track_open(uint8_t backend, uint64_t handle, const char *target, int failed, int result, uint32_t stack)
{
    uint16_t flags = (failed & ~CLK_OPEN_PYSQLITE) ? CONNLEAK_RAWF_FAILED : 0;
    track_open_ns(NS_WRAP, backend, handle, target_id(target), (uint16_t)(flags | (failed & CLK_OPEN_PYSQLITE)), result,
                  stack);
}

void clk_track_note_sql(uint8_t backend, uint64_t handle, const char *sql)
{
    size_t len = strnlen(sql, 1024); /* the start of a long statement says which it is */
    write_event(clk_journal_reserve(0), CONNLEAK_REC_UNFINALIZED, backend, 0, handle, 0, clk_intern_string(sql, len), 0,
                0, 0, 0, 0);
}

void clk_track_open_flags(uint8_t backend, uint64_t handle, const char *target, uint16_t flags, uint32_t stack)
{
    track_open_ns(NS_WRAP, backend, handle, target_id(target), flags, 0, stack);
}

/* ---- closes ---- */

/* left_field's slots: v[0] = backend | is_double<<8 | target<<32, v[1] = close stack | open stack<<32,
 * v[2] = first close stack (the direct printer shows a double close's three stacks) */
static void remember_left_field(uint64_t key, uint8_t backend, uint32_t stack, int is_double, uint32_t open_stack,
                                uint32_t first_close, uint32_t target)
{
    struct clk_shard *held;
    struct clk_slot *s = clk_table_lock(&left_field, key, 1, &held);
    if (!s)
        return;
    s->v[0] = (uint64_t)backend | (uint64_t)is_double << 8 | (uint64_t)target << 32;
    s->v[1] = stack | (uint64_t)open_stack << 32;
    s->v[2] = first_close;
    clk_table_unlock(held);
}

/* The connection is marked closed before the real call (a concurrent second
 * close is then a double close, and a reuse of the address an open); the rare
 * close that fails (SQLITE_BUSY) marks it open again. */
static enum clk_close_verdict close_begin_ns(uint64_t ns, uint8_t backend, uint64_t handle, uint32_t stack,
                                             struct clk_pending *p)
{
    memset(p, 0, sizeof *p);
    p->handle = handle;
    p->stack = stack;
    p->backend = backend;
    /* reserved now, before the real close frees the address for reuse, so the
     * journal orders this close before any later open at the same address */
    p->slot = clk_journal_reserve(0);
    struct clk_shard *held;
    struct clk_slot *s = clk_table_lock(&handles, handle ^ ns, 0, &held);
    unsigned st = s ? ST(s->v[0]) : 0;
    if (st == ST_OPEN) {
        p->kind = CONNLEAK_REC_CLOSE;
        p->open_stack = (uint32_t)s->v[1];
        p->flags = (uint16_t)((FLAGS(s->v[0]) & F_INHERITED ? CONNLEAK_RAWF_INHERITED : 0) |
                              (FLAGS(s->v[0]) & F_PYSQLITE));
        if (!backend)
            p->backend = BACKEND(s->v[0]);
        s->v[0] = (s->v[0] & ~0xffull) | ST_CLOSED;
        s->v[1] = (s->v[1] & 0xffffffffull) | (uint64_t)stack << 32;
        clk_table_unlock(held);
        return CLK_CLOSE_PASS;
    }
    if (st == ST_CLOSED) {
        p->kind = CONNLEAK_REC_DOUBLE_CLOSE;
        p->open_stack = (uint32_t)s->v[1];
        p->first_close_stack = (uint32_t)(s->v[1] >> 32);
        if (!backend)
            p->backend = BACKEND(s->v[0]);
        uint32_t target = TARGET(s->v[0]), test = (uint32_t)s->v[2];
        clk_table_unlock(held);
        INC(doubles);
        remember_left_field(handle ^ ns, p->backend, stack, 1, p->open_stack, p->first_close_stack, target);
        write_event(p->slot, CONNLEAK_REC_DOUBLE_CLOSE, p->backend, 0, handle, stack, target, p->open_stack,
                    p->first_close_stack, test, 0, 0);
        p->slot = 0;
        return CLK_CLOSE_SKIP;
    }
    clk_table_unlock(held);
    p->kind = CONNLEAK_REC_UNKNOWN_CLOSE;
    return CLK_CLOSE_PASS;
}

static void close_done_ns(uint64_t ns, struct clk_pending *p, int gone, int result)
{
    if (p->kind == CONNLEAK_REC_UNKNOWN_CLOSE) {
        INC(unknowns);
        remember_left_field(p->handle ^ ns, p->backend, p->stack, 0, 0, 0, 0);
        write_event(p->slot, CONNLEAK_REC_UNKNOWN_CLOSE, p->backend, 0, p->handle, p->stack, 0, 0, 0, 0, result, 0);
        return;
    }
    if (!gone) {
        /* the handle was not freed, so no open can have taken its address meanwhile */
        struct clk_shard *held;
        struct clk_slot *s = clk_table_lock(&handles, p->handle ^ ns, 0, &held);
        if (s && ST(s->v[0]) == ST_CLOSED)
            s->v[0] = (s->v[0] & ~0xffull) | ST_OPEN;
        clk_table_unlock(held);
        /* SQLITE_BUSY: the connection stays open */
        write_event(p->slot, CONNLEAK_REC_CLOSE_BUSY, p->backend, 0, p->handle, p->stack, 0, 0, 0, 0, result, 0);
        return;
    }
    DEC(open);
    INC(closes);
    write_event(p->slot, CONNLEAK_REC_CLOSE, p->backend, p->flags, p->handle, p->stack, 0, p->open_stack, 0, 0,
                result, 0);
}

enum clk_close_verdict clk_track_close_begin(uint8_t backend, uint64_t handle, uint32_t stack,
                                             struct clk_pending *p)
{
    return close_begin_ns(NS_WRAP, backend, handle, stack, p);
}

void clk_track_close_done(struct clk_pending *p, int gone, int result)
{
    close_done_ns(NS_WRAP, p, gone, result);
}

/* ---- fork ---- */

static void mark_inherited(struct clk_slot *s, void *ctx)
{
    if (ST(s->v[0]) == ST_OPEN)
        s->v[0] |= (uint64_t)F_INHERITED << 16;
}

void clk_track_mark_inherited(void)
{
    clk_table_each(&handles, mark_inherited, NULL);
    /* the parent's figures are not the child's */
    memset(&counts, 0, sizeof counts);
    cached_test = NULL;
}

void clk_track_prepare_fork(void)
{
    clk_table_lock_all(&handles);
    clk_table_lock_all(&left_field);
}

void clk_track_after_fork(int child)
{
    clk_table_unlock_all(&left_field);
    clk_table_unlock_all(&handles);
}

/* ---- views ---- */

struct each_ctx {
    void (*fn)(const struct clk_leak_view *, void *);
    void *ctx;
};

static void each_open(struct clk_slot *s, void *c)
{
    struct each_ctx *e = c;
    if (ST(s->v[0]) != ST_OPEN || (FLAGS(s->v[0]) & F_INHERITED))
        return;
    uint64_t ns = s->key & (3ull << 62);
    if (ns == NS_POOL)
        return; /* a pool's connection is also a wrapper's: report it once */
    struct clk_leak_view v = {BACKEND(s->v[0]), s->key & ~(3ull << 62), (uint32_t)s->v[1], TARGET(s->v[0]),
                              ns == NS_CHECKOUT};
    e->fn(&v, e->ctx);
}

void clk_track_each_open(void (*fn)(const struct clk_leak_view *, void *), void *ctx)
{
    struct each_ctx e = {fn, ctx};
    clk_table_each(&handles, each_open, &e);
}

struct each_left_ctx {
    void (*fn)(const struct clk_left_view *, void *);
    void *ctx;
};

static void each_left(struct clk_slot *s, void *c)
{
    struct each_left_ctx *e = c;
    struct clk_left_view v = {(uint8_t)s->v[0], (int)((s->v[0] >> 8) & 1), s->key & ~(3ull << 62),
                              (uint32_t)s->v[1], (uint32_t)(s->v[1] >> 32), (uint32_t)s->v[2], TARGET(s->v[0])};
    e->fn(&v, e->ctx);
}

void clk_track_each_left_field(void (*fn)(const struct clk_left_view *, void *), void *ctx)
{
    struct each_left_ctx e = {fn, ctx};
    clk_table_each(&left_field, each_left, &e);
}

/* ---- public API ---- */

static uint8_t raw_backend(connleak_backend b)
{
    return b == CONNLEAK_BACKEND_SQLITE ? CONNLEAK_RAW_SQLITE : b == CONNLEAK_BACKEND_POSTGRES ? CONNLEAK_RAW_POSTGRES : 0;
}

__attribute__((visibility("default"))) int connleak_record(connleak_event event, connleak_backend backend,
                                                           const void *conn, const char *target)
{
    if (!conn)
        return -1;
    clk_ensure_init();
    /* no report shows where a checkout came back: a checkin needs no stack */
    uint32_t stack = event == CONNLEAK_EVENT_CHECKIN ? 0 : clk_stack_here(clk_opts.stack_depth, 1);
    uint64_t h = (uint64_t)(uintptr_t)conn;
    uint8_t b = raw_backend(backend);
    struct clk_pending p;
    switch (event) {
    case CONNLEAK_EVENT_CONNECT:
        track_open_ns(NS_POOL, b, h, target_id(target), CONNLEAK_RAWF_POOL, 0, stack);
        return 0;
    case CONNLEAK_EVENT_CHECKOUT:
        track_open_ns(NS_CHECKOUT, b, h, target_id(target), CONNLEAK_RAWF_POOL, 0, stack);
        return 0;
    case CONNLEAK_EVENT_CHECKIN: {
        struct clk_shard *held;
        struct clk_slot *s = clk_table_lock(&handles, h ^ NS_CHECKOUT, 0, &held);
        int was_out = s && ST(s->v[0]) == ST_OPEN;
        if (was_out)
            s->v[0] = (s->v[0] & ~0xffull) | ST_CLOSED;
        clk_table_unlock(held);
        INC(checkins);
        if (was_out)
            DEC(checked_out);
        write_event(clk_journal_reserve(0), CONNLEAK_REC_CHECKIN, b, CONNLEAK_RAWF_POOL, h,
                    stack, 0, 0, 0, 0, 0, 0);
        return 0;
    }
    case CONNLEAK_EVENT_CLOSE:
    case CONNLEAK_EVENT_CLOSE_DETACHED:
        if (close_begin_ns(NS_POOL, b, h, stack, &p) == CLK_CLOSE_PASS) {
            p.flags |= CONNLEAK_RAWF_POOL;
            close_done_ns(NS_POOL, &p, 1, 0);
        }
        return 0;
    }
    return -1;
}

__attribute__((visibility("default"))) void connleak_get_counts(connleak_counts *out)
{
    memset(out, 0, sizeof *out);
    out->connects = __atomic_load_n(&counts.connects, __ATOMIC_RELAXED);
    out->closes = __atomic_load_n(&counts.closes, __ATOMIC_RELAXED);
    out->open = __atomic_load_n(&counts.open, __ATOMIC_RELAXED);
    out->double_closes = __atomic_load_n(&counts.doubles, __ATOMIC_RELAXED);
    out->unknown_closes = __atomic_load_n(&counts.unknowns, __ATOMIC_RELAXED);
    out->left_field_closes = out->double_closes + out->unknown_closes;
    out->checkouts = __atomic_load_n(&counts.checkouts, __ATOMIC_RELAXED);
    out->checkins = __atomic_load_n(&counts.checkins, __ATOMIC_RELAXED);
    out->checked_out = __atomic_load_n(&counts.checked_out, __ATOMIC_RELAXED);
}

struct fill_ctx {
    connleak_conn *out;
    size_t max, n;
    int left_field;
};

static void fill_conn(connleak_conn *c, uint64_t key, uint8_t backend, uint32_t stack, uint32_t target)
{
    int n = 0;
    c->conn = (const void *)(uintptr_t)(key & ~(3ull << 62));
    c->backend = backend == CONNLEAK_RAW_SQLITE     ? CONNLEAK_BACKEND_SQLITE
                 : backend == CONNLEAK_RAW_POSTGRES ? CONNLEAK_BACKEND_POSTGRES
                                                    : CONNLEAK_BACKEND_UNKNOWN;
    c->checked_out = (key & (3ull << 62)) == NS_CHECKOUT;
    c->target = clk_string(target);
    c->frames = (const void *const *)clk_stack_frames(stack, &n);
    c->nframes = n;
}

static void fill_open(struct clk_slot *s, void *p)
{
    struct fill_ctx *f = p;
    if (ST(s->v[0]) != ST_OPEN || (FLAGS(s->v[0]) & F_INHERITED))
        return;
    if (f->n < f->max)
        fill_conn(&f->out[f->n], s->key, BACKEND(s->v[0]), (uint32_t)s->v[1], TARGET(s->v[0]));
    f->n++;
}

static void fill_left(struct clk_slot *s, void *p)
{
    struct fill_ctx *f = p;
    if (f->n < f->max)
        fill_conn(&f->out[f->n], s->key, (uint8_t)s->v[0], (uint32_t)s->v[1], 0);
    f->n++;
}

__attribute__((visibility("default"))) size_t connleak_open_connections(connleak_conn *out, size_t max)
{
    struct fill_ctx f = {out, max, 0, 0};
    clk_table_each(&handles, fill_open, &f);
    return f.n;
}

__attribute__((visibility("default"))) size_t connleak_left_field_closes(connleak_conn *out, size_t max)
{
    struct fill_ctx f = {out, max, 0, 1};
    clk_table_each(&left_field, fill_left, &f);
    return f.n;
}

__attribute__((visibility("default"))) void connleak_clear(void)
{
    clk_table_clear(&handles);
    clk_table_clear(&left_field);
    memset(&counts, 0, sizeof counts);
}

__attribute__((visibility("default"))) const char *connleak_frame_function(const void *frame)
{
    Dl_info info;
    /* a return address points after the call: look up the call itself */
    if (frame && dladdr((const char *)frame - 1, &info) && info.dli_sname)
        return info.dli_sname;
    return "?";
}
