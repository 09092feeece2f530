/* recorder.h — private interfaces between the recorder's parts (one file per idea). */
#ifndef CONNLEAK_RECORDER_H
#define CONNLEAK_RECORDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "connleak.h"
#include "lock.h"
#include "rawfmt.h"

#define CLK_HIDDEN __attribute__((visibility("hidden")))
#define CLK_MAX_DEPTH 128
#define CLK_DEFAULT_DEPTH 32

/* ---- options.c: CONNLEAK_OPTIONS ---- */
struct clk_options {
    int stack_depth;        /* frames kept per stack */
    int exitcode;           /* direct mode: exit status when leaks remain; 0 keeps the program's */
    int report;             /* direct mode: print the text report at exit */
    int verbosity;
    int follow_children;    /* 0: the processes this one starts run without the detector */
    char output[512];       /* direct mode: report file instead of stderr ("" = stderr) */
    char suppressions[512]; /* passed to the CLI; the direct printer ignores it */
    char run_dir[512];      /* journal directory (set by the CLI) */
    uint64_t run_id;        /* the CLI's run, written in each journal's header */
    uint64_t held_longer_than_ms; /* nonzero: opens and closes carry their time (long-held connections) */
};
CLK_HIDDEN extern struct clk_options clk_opts;
/* Parses `spec` into clk_opts; on error writes one line into err and returns -1; with help=1
 * writes the keys and their values into err (one line) and returns 1. */
CLK_HIDDEN int clk_options_parse(const char *spec, char *err, size_t errlen);
/* The help=1 line: every key and the values it allows. */
CLK_HIDDEN void clk_options_help(char *out, size_t cap);
#define CLK_STR(x) CLK_STR_(x)
#define CLK_STR_(x) #x

/* Thread-locals are initial-exec (no allocation on first use, safe anywhere),
 * which puts the library's whole TLS block in glibc's static TLS. The linkable
 * library may be dlopen()ed (ctypes, plugins), where only ~1.6 KiB of static
 * TLS is left for all such libraries: its per-thread caches are kept small. */
#ifdef CLK_LINKABLE
#define CLK_TLS_SCALE 2
#else
#define CLK_TLS_SCALE 1
#endif

/* ---- guard: nonzero while this thread runs the recorder's own bookkeeping ----
 * (start-up, exit, and a wrapper's work before and after its real call, never
 * the real call itself). A wrapper entered meanwhile (a signal handler opening a
 * connection) passes its call straight on, unrecorded: our locks are not
 * re-entrant. Nothing else is kept across a wrapped call, so a longjmp out of
 * one leaves no state behind. Initial-exec TLS: no allocation on first use. */
CLK_HIDDEN extern __thread int clk_busy __attribute__((tls_model("initial-exec")));

/* ---- stack.c ---- */
/* The interned stack (0: none) of up to max return addresses above the
 * calling wrapper, the recorder's own frames removed; api (connleak_record)
 * also drops the calling pool library's own leading frames. Call it directly
 * from the wrapper (its frame and return address key a per-thread cache),
 * before taking any lock. */
CLK_HIDDEN uint32_t clk_stack_here(int max, int api);
CLK_HIDDEN void clk_stack_init(void);
/* Around anything that may call dl_iterate_phdr or libunwind (see stack.c). */
CLK_HIDDEN int clk_walk_begin(void); /* returns the cancel state to give clk_walk_end */
CLK_HIDDEN void clk_walk_end(int cancel_state);
/* Taken first by fork's prepare handler: no walk in flight at fork. */
CLK_HIDDEN void clk_stack_prepare_fork(void);
CLK_HIDDEN void clk_stack_after_fork(int child);
CLK_HIDDEN int clk_addr_is_ours(uint64_t ip);
/* The address range of a loaded object's PT_LOAD segments. */
struct dl_phdr_info;
CLK_HIDDEN void clk_phdr_bounds(const struct dl_phdr_info *info, uint64_t *lo, uint64_t *hi);

/* ---- pyframes.c: the calling thread's Python frames ---- */
#define CLK_PY_TAG CONNLEAK_RAW_PY_TAG
/* 1: an interpreter whose frames are read; 0: not looked for yet; -1: unsupported; -2: none (yet) */
CLK_HIDDEN extern int clk_py_active;
CLK_HIDDEN void clk_py_detect(void);
/* This thread's Python frames (innermost first) into out, up to max; 0: none. */
CLK_HIDDEN int clk_py_frames(uint64_t *out, int max);
/* The n Python frames in ips (room for CLK_MAX_DEPTH words) with the C stack
 * c_id after them, up to max words, interned; c_id when n is 0. */
CLK_HIDDEN uint32_t clk_py_join(uint64_t *ips, int n, uint32_t c_id, int max);

/* ---- table.c: sharded open-addressing map u64 -> 3×u64 ---- */
struct clk_slot {
    uint64_t key; /* 0 = free */
    uint64_t v[3];
};
struct clk_shard {
    clk_lock_t mu;
    struct clk_slot *slots;
    uint32_t cap, used;
};
#define CLK_SHARDS 16
struct clk_table {
    struct clk_shard shard[CLK_SHARDS];
};
/* Finds `key` and returns its slot with the shard locked (NULL and unlocked if
 * absent and !create). A created slot has v[] zeroed. Growth happens with the
 * lock released. Unlock with clk_table_unlock. */
CLK_HIDDEN struct clk_slot *clk_table_lock(struct clk_table *t, uint64_t key, int create,
                                           struct clk_shard **held);
static inline void clk_table_unlock(struct clk_shard *held)
{
    if (held)
        clk_unlock(&held->mu);
}
CLK_HIDDEN void clk_table_lock_all(struct clk_table *t);
CLK_HIDDEN void clk_table_unlock_all(struct clk_table *t);
/* Calls fn on every used slot, one shard locked at a time. */
CLK_HIDDEN void clk_table_each(struct clk_table *t, void (*fn)(struct clk_slot *, void *), void *ctx);
CLK_HIDDEN void clk_table_clear(struct clk_table *t);
CLK_HIDDEN uint64_t clk_hash_bytes(const void *p, size_t n);
/* Bump allocator over mmap'd chunks; never freed. Lock-free. */
CLK_HIDDEN void *clk_arena_alloc(size_t n);
CLK_HIDDEN void clk_arena_prepare_fork(void);
CLK_HIDDEN void clk_arena_after_fork(void);

/* ---- journal.c: the per-process mmap'd file ---- */
CLK_HIDDEN int clk_journal_start(int forked);   /* 0 ok; -1 (no run dir or cannot write) */
CLK_HIDDEN int clk_journal_active(void);
/* Reserves 1 + nextra slots and returns the head's index (0 = none). */
CLK_HIDDEN uint64_t clk_journal_reserve(uint32_t nextra);
/* A reserved slot, to be filled in place (it is all zeros: each slot is written
 * once) and then published; NULL when there is no room. */
CLK_HIDDEN struct connleak_raw_record *clk_journal_slot(uint64_t index);
/* Publishes a slot filled in place (dst from clk_journal_slot, NULL counts as
 * lost): its type written last, with release order. */
CLK_HIDDEN void clk_journal_publish(uint64_t index, struct connleak_raw_record *dst, uint8_t type);
/* Copies a record into its slot and publishes it. */
CLK_HIDDEN void clk_journal_commit(uint64_t index, struct connleak_raw_record *rec, uint8_t type);
/* Writes a blob (string or stack) with its continuation slots. */
CLK_HIDDEN void clk_journal_blob(uint8_t type, uint32_t id, const void *data, uint32_t len);
CLK_HIDDEN void clk_journal_prepare_fork(void);
CLK_HIDDEN void clk_journal_after_fork_parent(void);
CLK_HIDDEN void clk_journal_after_fork_child(void);
CLK_HIDDEN void clk_journal_exit(void);
CLK_HIDDEN extern uint32_t clk_journal_generation;
CLK_HIDDEN extern int clk_journal_forked;

/* ---- intern.c: stacks, strings and modules, each written once ---- */
CLK_HIDDEN uint32_t clk_intern_stack(const uint64_t *ips, int n);
CLK_HIDDEN uint32_t clk_intern_string(const char *s, size_t len);
/* The frames of a stack id (for the direct printer and the API). */
CLK_HIDDEN const uint64_t *clk_stack_frames(uint32_t id, int *n);
CLK_HIDDEN const char *clk_string(uint32_t id);
/* Writes the blob of an id into the current journal if it is not there yet.
 * Until a journal starts with blobs already interned (a fork child's) or a
 * blob is interned with no journal open, every blob is written when interned:
 * then an event's ensures cost one load. */
CLK_HIDDEN extern int clk_intern_behind;
CLK_HIDDEN void clk_intern_ensure_slow(uint32_t id);
static inline void clk_intern_ensure(uint32_t id)
{
    if (id && __atomic_load_n(&clk_intern_behind, __ATOMIC_ACQUIRE))
        clk_intern_ensure_slow(id);
}
/* A new journal has started: blobs interned before it are not in it. */
CLK_HIDDEN void clk_intern_new_journal(void);
CLK_HIDDEN void clk_intern_all_modules(void);
/* At exit: a note for each SQLite or libpq in another dlmopen() namespace. */
CLK_HIDDEN void clk_intern_note_namespaces(void);
/* Learns the loaded objects (at start, so that the first event need not). */
CLK_HIDDEN void clk_intern_scan_modules(void);
CLK_HIDDEN void clk_intern_prepare_fork(void);
CLK_HIDDEN void clk_intern_after_fork(void);

/* ---- tracker.c: the handle state machine ---- */
enum clk_close_verdict { CLK_CLOSE_PASS = 0, CLK_CLOSE_SKIP = 1 };
struct clk_pending {
    uint64_t handle;
    uint64_t slot;       /* journal index reserved before the real close */
    uint32_t stack;
    uint8_t backend;
    uint8_t kind;        /* record type decided */
    uint16_t flags;      /* the record's; a CLOSE's may carry CLK_OPEN_PYSQLITE, which its caller
                          * replaces by pysqlite.c's verdict before clk_track_close_done */
    uint32_t open_stack, first_close_stack;
};
/* failed: nonzero when the open failed; CLK_OPEN_PYSQLITE (below) ORed in when Python's _sqlite3 opened it */
CLK_HIDDEN void clk_track_open(uint8_t backend, uint64_t handle, const char *target, int failed,
                               int result, uint32_t stack);
/* An open's flags may carry this one, kept with the connection and not recorded: Python's _sqlite3
 * opened it (its close asks pysqlite.c who closed it). */
#define CLK_OPEN_PYSQLITE 0x8000u
/* An open with the event's CONNLEAK_RAWF_* flags (wire.c: CONNLEAK_RAWF_WIRE). */
/* After a refused close: the SQL of one statement that kept `handle` open (UNFINALIZED record). */
CLK_HIDDEN void clk_track_note_sql(uint8_t backend, uint64_t handle, const char *sql);
CLK_HIDDEN void clk_track_open_flags(uint8_t backend, uint64_t handle, const char *target, uint16_t flags,
                                     uint32_t stack);
/* Decides a close before the real call: CLK_CLOSE_SKIP for a double close
 * (already recorded). Otherwise the caller runs the real close and then calls
 * clk_track_close_done with whether the connection is gone. */
CLK_HIDDEN enum clk_close_verdict clk_track_close_begin(uint8_t backend, uint64_t handle,
                                                        uint32_t stack, struct clk_pending *p);
CLK_HIDDEN void clk_track_close_done(struct clk_pending *p, int gone, int result);
CLK_HIDDEN void clk_track_mark_inherited(void);
CLK_HIDDEN void clk_track_prepare_fork(void);
CLK_HIDDEN void clk_track_after_fork(int child);
/* For the direct printer: calls fn for each open (leaked) connection. */
struct clk_leak_view {
    uint8_t backend;
    uint64_t handle;
    uint32_t stack, target;
    int checked_out;
};
CLK_HIDDEN void clk_track_each_open(void (*fn)(const struct clk_leak_view *, void *), void *ctx);
CLK_HIDDEN uint32_t clk_current_test(void);

/* ---- pysqlite.c: Python's sqlite3 module ---- */
/* Is the caller at ra Python's _sqlite3 module (whose closes are told apart)? */
CLK_HIDDEN int clk_pysqlite_opener(void *ra);
/* Called from a close wrapper, ra its return address, for a connection _sqlite3 opened:
 * CONNLEAK_RAWF_FINALIZER, CONNLEAK_RAWF_EXPLICIT, or 0 when not known. */
CLK_HIDDEN uint16_t clk_pysqlite_verdict(void *ra);
/* pyframes.c: n bytes at addr into out through process_vm_readv (0; -1 when unreadable: never faults). */
CLK_HIDDEN int clk_peek(const void *addr, void *out, size_t n);

/* ---- real.c: the functions behind the wrappers ---- */
/* The real `name` for the recorder's own use (Criterion's functions): the next
 * definition after us, else the library `libs` names (soname, then stem). */
CLK_HIDDEN void *clk_real(const char *name, const char *const *libs);
/* *slot, or the real `name` from `libs` looked up into it on first use (the
 * library may be loaded after us). */
static inline void *clk_real_cached(void **slot, const char *name, const char *const *libs)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f && (f = clk_real(name, libs)))
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    return f;
}
/* The real `name` from `libs`, cached in a slot of the call site's own. */
#define CLK_REAL(type, name, libs)                                  \
    ({                                                              \
        static void *cached_;                                       \
        (type) clk_real_cached(&cached_, #name, libs);              \
    })

/* A family: the functions of one database library the wrappers need, the
 * wrapped ones first, then the unwrapped ones they call (sqlite3_db_filename,
 * PQstatus...), always taken from the same copy of the library as the call
 * they serve. A wrapper passes its call on to what the dynamic linker would
 * have bound its caller to without us (real.c says how that is found). */
#define CLK_NAMES_MAX 12
#define CLK_CALLERS 8
struct clk_real {
    void *fn;                    /* NULL: not in this copy */
    uintptr_t self_lo, self_len; /* a call from these addresses is the library calling itself */
};
/* The family's functions as one caller reaches them. */
struct clk_copy {
    struct clk_real r[CLK_NAMES_MAX];
    int note; /* the family's own note on this copy, 0 until it writes one (SQLite: a version test) */
};
/* real.c's cache of the copies callers outside the global scope reach, by calling object. */
struct clk_caller {
    uint32_t seq; /* odd while being written; 0: never written */
    uint64_t gen; /* the loader's load and unload count when resolved */
    uintptr_t lo, hi;
    struct clk_copy copy;
};
struct clk_family {
    const char *const *libs;  /* sonames, most likely first; libs[0] up to its first dot is the stem */
    const char *const *names; /* NULL-terminated, wrapped names first */
    int nwrapped;
    /* dlsym(RTLD_NEXT)'s answers: what every caller is bound to (the fast path:
     * one load), shared with dlsym.c */
    struct clk_copy global;
    uint64_t global_gen; /* loader count + 1 when global was looked up; 0: look again */
    clk_lock_t cache_mu; /* writers of callers[] (trylock only: readers never wait) */
    unsigned cache_next;
    struct clk_caller callers[CLK_CALLERS];
};
/* The copy of a call to wrapped function i from return address ra when it is
 * not the global one: copied into *own. Never fails: when nothing can be
 * found, the call ends as the dynamic linker ends an unbound call. */
CLK_HIDDEN void *clk_real_slow(struct clk_family *fam, int i, uintptr_t ra, struct clk_copy *own);
/* Wrapped function i's real function for a call from ra, and in *c its copy
 * (the global one, or *own). */
static inline void *clk_real_for(struct clk_family *fam, int i, void *ra, struct clk_copy *own,
                                 const struct clk_copy **c)
{
    void *f = __atomic_load_n(&fam->global.r[i].fn, __ATOMIC_ACQUIRE);
    if (__builtin_expect(f != NULL, 1)) {
        *c = &fam->global;
        return f;
    }
    *c = own;
    return clk_real_slow(fam, i, (uintptr_t)ra, own);
}
/* A helper function of c (NULL when absent). */
static inline void *clk_copy_fn(const struct clk_copy *c, int i)
{
    return __atomic_load_n(&c->r[i].fn, __ATOMIC_RELAXED);
}
/* Is a call of wrapped function i from ra the library calling itself (libpq's
 * PQconnectdb calling PQconnectStart through its PLT)? Then it is part of the
 * outer call, not an event of its own. */
static inline int clk_self_call(const struct clk_copy *c, int i, void *ra)
{
    return (uintptr_t)ra - c->r[i].self_lo < c->r[i].self_len;
}
/* For dlclose.c: the global copy is to be looked up again (a library may be unloaded). */
CLK_HIDDEN void clk_real_forget(struct clk_family *fam);
/* For dlsym.c: does the global scope or the scope of the object holding ra define wrapped function i? */
CLK_HIDDEN int clk_real_reachable(struct clk_family *fam, int i, uintptr_t ra);
/* For dlsym.c: does wrapped function i called from anywhere call f? */
CLK_HIDDEN int clk_real_everyones(struct clk_family *fam, int i, void *f);

/* ---- wrap_sqlite.c, wrap_libpq.c: what the preloaded library interposes (for dlsym.c) ---- */
struct clk_wrapped {
    const char *name;           /* NULL ends a table */
    void *wrapper;              /* ours, through a hidden alias: never another object's definition */
    struct clk_family *family;  /* where the wrapper finds its real function */
    int index;                  /* the name's index in the family */
};
CLK_HIDDEN extern const struct clk_wrapped clk_sqlite_wrapped[], clk_pq_wrapped[];
/* dlsym.c: the wrapped function named `name` (either table), NULL when none (x86-64 glibc preload only). */
CLK_HIDDEN const struct clk_wrapped *clk_find_wrapped(const char *name);
/* A hidden alias of the wrapper `fn` defined above it in the same file. */
#define CLK_OWN(fn) extern __typeof(fn) clk_own_##fn __attribute__((alias(#fn), visibility("hidden")))
#define CLK_WRAPPED(fn, family, index) {#fn, (void *)clk_own_##fn, family, index}
/* real.c: nonzero on a thread while the recorder looks functions up (dlsym.c passes those through). */
CLK_HIDDEN extern __thread int clk_real_depth __attribute__((tls_model("initial-exec")));

/* ---- redact.c (shared with harness/) ---- */
#include "redact.h"

/* ---- printer.c: direct-mode report at exit ---- */
CLK_HIDDEN void clk_print_report(void);

/* ---- process.c ---- */
/* Inline where every event passes (one load once started); the rest in process.c. */
CLK_HIDDEN extern int clk_ready; /* atomic: 0 not started, 1 starting, 2 ready */
CLK_HIDDEN void clk_ensure_init_slow(void);
static inline void clk_ensure_init(void)
{
    if (__atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) != 2)
        clk_ensure_init_slow();
}
CLK_HIDDEN void clk_tracker_init(void);

/* ---- util ---- */
CLK_HIDDEN uint64_t clk_now_ns(int realtime);
/* This thread's kernel id, cached (reset in a fork child). */
CLK_HIDDEN extern __thread uint32_t clk_cached_tid __attribute__((tls_model("initial-exec")));
CLK_HIDDEN uint32_t clk_tid_slow(void);
static inline uint32_t clk_tid(void)
{
    return clk_cached_tid ? clk_cached_tid : clk_tid_slow();
}
/* The main program's file, read once ("" when unknown); the same after a fork. */
CLK_HIDDEN const char *clk_exe_path(void);
/* Writes a whole line to fd 2 (no stdio: safe anywhere). */
CLK_HIDDEN void clk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
