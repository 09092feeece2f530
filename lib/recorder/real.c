/* real.c — finds the function a wrapper passes its call on to: the one the dynamic linker would have bound the caller to without us.
 *
 * A caller's reference to sqlite3_open_v2 is bound by the loader to the first
 * definition in the global scope (the program, the preloaded libraries, what
 * they need, what was dlopen()ed RTLD_GLOBAL), and when there is none, to the
 * first in the caller's own local scope (the caller and what it needs). The
 * preloaded wrapper comes first in the global scope, so a wrapper looks in
 * that order:
 *
 *  1. dlsym(RTLD_NEXT): the global scope after us. Its answer is every
 *     caller's, so it is kept in the family's global copy, which the wrappers
 *     read with one load (the fast path: a program linked with libsqlite3).
 *  2. The calling object's local scope: the object holding the wrapper's
 *     return address, dlopen(its path, RTLD_NOLOAD) and dlsym on that handle,
 *     which searches that object and what it needs. This is a copy of SQLite
 *     inside a node addon loaded RTLD_LOCAL, or the libsqlite3 Python's
 *     _sqlite3 pulls in RTLD_LOCAL. Cached by calling object.
 *  3. Callers whose scope has none (the program calling through a pointer it
 *     got from dlsym on a handle, code outside any object): the library by
 *     soname, then any loaded object whose file name starts with its stem,
 *     then the one copy that some loaded object's scope reaches, when there
 *     is exactly one.
 *  4. Nothing: the call ends the program as the dynamic linker ends a call it
 *     cannot bind (lazy binding: "symbol lookup error: ...: undefined symbol:
 *     NAME" on stderr, exit status 127); with immediate binding the program
 *     would not have started at all. A wrapper never answers for a library
 *     that is not there.
 *
 * The helpers a wrapper calls (sqlite3_db_filename, PQstatus...) come from the
 * same place as its real function. Never one of ours.
 *
 * The library calling itself (libpq's PQconnectdb calls PQconnectStart through
 * its PLT) is recognised by the wrapper's return address lying in the real
 * function's "self" range, kept with it: the whole object for the library
 * itself (a file named like libsqlite3.so.0, libpq.so.5), and for a copy
 * inside another object (the node addon, whose own code calls it too) the
 * span of that object's copies of the family's wrapped functions, from the
 * first to the end of the last, as its dynamic symbol table sizes them.
 *
 * The caller cache and the global copy are stamped with the loader's count of
 * loads and unloads (dl_iterate_phdr's dlpi_adds + dlpi_subs), read on the slow
 * path only: a new load or an unload makes them be looked up again. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "recorder.h"

/* Nonzero on a thread while the recorder looks functions up: the preloaded
 * library's dlsym (dlsym.c) then passes every lookup straight to glibc's, so
 * the dlsym(handle, name) calls below find the library's own function, never
 * our wrapper, and never come back here. */
CLK_HIDDEN __thread int clk_real_depth __attribute__((tls_model("initial-exec")));

/* ---- loaded objects ---- */

/* One loaded object, found by an address in it, by the stem its file name
 * starts with, or by its place in the loader's list. */
struct object {
    uintptr_t addr;   /* in: an address in it (0: by stem or index) */
    const char *stem; /* in: "libsqlite3" (NULL: by index) */
    int index;        /* in: the index-th object */
    uintptr_t lo, hi; /* out: hi is 0 when none was found */
    int is_main;
    char path[4096];
};

static int stem_matches(const char *name, const char *stem)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(stem);
    return strncmp(base, stem, n) == 0 && (base[n] == '.' || base[n] == '-');
}

/* A family's stem: its first soname up to the first dot ("libsqlite3"). */
static void stem_of(const char *const *libs, char *stem, size_t cap)
{
    size_t n = strcspn(libs[0], ".");
    if (n >= cap)
        n = cap - 1;
    memcpy(stem, libs[0], n);
    stem[n] = 0;
}

static int object_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object *o = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    uint64_t lo, hi;
    clk_phdr_bounds(info, &lo, &hi);
    if (o->addr ? o->addr < lo || o->addr >= hi
                : o->stem ? !name[0] || !stem_matches(name, o->stem) : o->index--)
        return 0;
    size_t n = strlen(name);
    if (n >= sizeof o->path)
        return 0; /* no dlopen() could name it */
    memcpy(o->path, name, n + 1);
    o->lo = (uintptr_t)lo;
    o->hi = (uintptr_t)hi;
    o->is_main = !name[0];
    return 1;
}

/* dl_iterate_phdr holds the loader's list lock: nothing but copying is done
 * inside (a dlopen there could deadlock against a loading thread). */
static void find_object(struct object *o)
{
    o->hi = 0;
    o->path[0] = 0;
    int cs = clk_walk_begin(); /* a fork waits for it (stack.c) */
    dl_iterate_phdr(object_cb, o);
    clk_walk_end(cs);
}

/* Our own object's range, found from an address in it (clk_addr_is_ours only
 * knows it once the constructor ran; lookups may come before, from another
 * preloaded library's constructor). */
static uintptr_t us_lo, us_hi;

static int is_ours(uintptr_t a)
{
    if (!__atomic_load_n(&us_hi, __ATOMIC_ACQUIRE)) {
        struct object o = {.addr = (uintptr_t)&is_ours};
        find_object(&o);
        __atomic_store_n(&us_lo, o.lo, __ATOMIC_RELAXED);
        __atomic_store_n(&us_hi, o.hi, __ATOMIC_RELEASE);
    }
    return a >= __atomic_load_n(&us_lo, __ATOMIC_RELAXED) && a < us_hi;
}

static void *not_ours(void *fn)
{
    return fn && !is_ours((uintptr_t)fn) ? fn : NULL;
}

/* The loader's count of loads and unloads (+1, never 0); 1 when glibc does not say. */
static int count_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *(uint64_t *)data = info->dlpi_adds + info->dlpi_subs + 1;
    return 1;
}

static uint64_t loader_count(void)
{
    uint64_t n = 1;
    int cs = clk_walk_begin();
    dl_iterate_phdr(count_cb, &n);
    clk_walk_end(cs);
    return n;
}

/* ---- one copy of a family ---- */

/* Where a call of the family's functions from inside the object holding f is
 * the library calling itself (see the top of the file). */
static void self_range(const struct clk_family *fam, void *f, uintptr_t *lo, uintptr_t *len)
{
    struct object o = {.addr = (uintptr_t)f};
    find_object(&o);
    *lo = *len = 0;
    if (!o.hi)
        return;
    char stem[64];
    stem_of(fam->libs, stem, sizeof stem);
    if (!o.is_main && stem_matches(o.path, stem)) {
        *lo = o.lo;
        *len = o.hi - o.lo;
        return;
    }
    /* a copy inside another object: the span of its wrapped functions */
    void *h = o.is_main ? NULL : dlopen(o.path, RTLD_NOLOAD | RTLD_LAZY);
    uintptr_t a = UINTPTR_MAX, b = 0;
    for (int k = 0; k < fam->nwrapped; k++) {
        void *g = h ? dlsym(h, fam->names[k]) : k ? NULL : f;
        Dl_info di;
        const ElfW(Sym) *sym = NULL;
        if (!g || (uintptr_t)g < o.lo || (uintptr_t)g >= o.hi ||
            !dladdr1(g, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym)
            continue;
        uintptr_t start = (uintptr_t)g, end = start + (sym->st_size ? sym->st_size : 1);
        a = start < a ? start : a;
        b = end > b ? end : b;
    }
    if (h)
        dlclose(h);
    if (b > a) {
        *lo = a;
        *len = b - a;
    }
}

static void set_real(const struct clk_family *fam, struct clk_copy *c, int j, void *f)
{
    uintptr_t lo = 0, len = 0;
    if (f && j < fam->nwrapped)
        self_range(fam, f, &lo, &len);
    __atomic_store_n(&c->r[j].self_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&c->r[j].self_len, len, __ATOMIC_RELAXED);
    __atomic_store_n(&c->r[j].fn, f, __ATOMIC_RELEASE);
}

/* The family as the scope of the object `path` holds it; 0 when it is not loaded. */
static int from_object(const struct clk_family *fam, const char *path, struct clk_copy *out)
{
    void *h = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return 0;
    for (int j = 0; fam->names[j]; j++)
        set_real(fam, out, j, not_ours(dlsym(h, fam->names[j])));
    dlclose(h);
    return 1;
}

/* 1. dlsym(RTLD_NEXT), into the global copy. */
static void refresh_global(struct clk_family *fam, uint64_t count)
{
    if (__atomic_load_n(&fam->global_gen, __ATOMIC_ACQUIRE) == count)
        return;
    for (int j = 0; fam->names[j]; j++)
        set_real(fam, &fam->global, j, not_ours(dlsym(RTLD_NEXT, fam->names[j])));
    __atomic_store_n(&fam->global.note, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fam->global_gen, count, __ATOMIC_RELEASE);
}

void clk_real_forget(struct clk_family *fam)
{
    __atomic_store_n(&fam->global_gen, 0, __ATOMIC_RELEASE);
    for (int j = 0; fam->names[j]; j++)
        __atomic_store_n(&fam->global.r[j].fn, NULL, __ATOMIC_RELEASE);
}

/* The distinct definitions of names[i] that loaded objects' scopes reach (0, 1
 * or 2 for "several"), the first one's object path into first_path. */
static int count_copies(const struct clk_family *fam, int i, void **first, char *first_path, size_t cap)
{
    int n = 0;
    *first = NULL;
    struct object o = {.index = 0};
    for (int k = 0; k < 65536 && n < 2; k++) {
        o.addr = 0;
        o.stem = NULL;
        o.index = k;
        find_object(&o);
        if (!o.hi)
            break;
        if (o.is_main || is_ours(o.lo))
            continue; /* the program's scope is the global one, searched first */
        void *h = dlopen(o.path, RTLD_NOLOAD | RTLD_LAZY);
        if (!h)
            continue; /* another namespace's (dlmopen): its callers never reach us */
        void *f = not_ours(dlsym(h, fam->names[i]));
        dlclose(h);
        if (!f || f == *first)
            continue;
        if (!n++) {
            *first = f;
            if (strlen(o.path) < cap)
                strcpy(first_path, o.path);
            else
                first_path[0] = 0;
        }
    }
    return n;
}

/* 3. A caller whose own scope has none: the library by soname, by stem, or the only copy. */
static void fallback(const struct clk_family *fam, int i, struct clk_copy *out)
{
    for (int k = 0; fam->libs[k]; k++) {
        memset(out, 0, sizeof *out);
        if (from_object(fam, fam->libs[k], out) && out->r[i].fn)
            return;
    }
    char stem[64];
    stem_of(fam->libs, stem, sizeof stem);
    struct object o = {.stem = stem};
    find_object(&o);
    memset(out, 0, sizeof *out);
    if (o.hi && from_object(fam, o.path, out) && out->r[i].fn)
        return;
    void *f;
    memset(out, 0, sizeof *out);
    if (count_copies(fam, i, &f, o.path, sizeof o.path) == 1 && o.path[0] && from_object(fam, o.path, out) &&
        out->r[i].fn == f)
        return;
    memset(out, 0, sizeof *out);
}

/* ---- the cache of callers' copies (seqlock: readers never wait) ---- */

static int cache_get(struct clk_family *fam, uintptr_t ra, uint64_t count, struct clk_copy *out)
{
    for (int k = 0; k < CLK_CALLERS; k++) {
        struct clk_caller *e = &fam->callers[k];
        uint32_t s = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
        if (!s || (s & 1))
            continue;
        uintptr_t lo = __atomic_load_n(&e->lo, __ATOMIC_RELAXED), hi = __atomic_load_n(&e->hi, __ATOMIC_RELAXED);
        if (ra < lo || ra >= hi || __atomic_load_n(&e->gen, __ATOMIC_RELAXED) != count)
            continue;
        memcpy(out, &e->copy, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) == s)
            return 1;
    }
    return 0;
}

/* Only when nobody else writes (a signal handler interrupting a writer, or a
 * racing thread, just does not cache): no lock to wait for. */
static void cache_put(struct clk_family *fam, uintptr_t lo, uintptr_t hi, uint64_t count, const struct clk_copy *c)
{
    int free_word = 0;
    if (!__atomic_compare_exchange_n(&fam->cache_mu.word, &free_word, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    int k = 0;
    while (k < CLK_CALLERS && fam->callers[k].seq && fam->callers[k].gen == count && fam->callers[k].lo != lo)
        k++;
    if (k == CLK_CALLERS)
        k = (int)(fam->cache_next++ % CLK_CALLERS);
    struct clk_caller *e = &fam->callers[k];
    uint32_t s = e->seq;
    __atomic_store_n(&e->seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&e->lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&e->hi, hi, __ATOMIC_RELAXED);
    __atomic_store_n(&e->gen, count, __ATOMIC_RELAXED);
    memcpy(&e->copy, c, sizeof *c);
    __atomic_store_n(&e->seq, s + 2, __ATOMIC_RELEASE);
    __atomic_store_n(&fam->cache_mu.word, 0, __ATOMIC_RELEASE);
}

/* ---- lookups ---- */

/* fallback_too: also step 3 (a call), or the loader's own steps only (dlsym.c's
 * question: what would dlsym(RTLD_DEFAULT) find from there without us). */
static void *lookup(struct clk_family *fam, int i, uintptr_t ra, struct clk_copy *own, int fallback_too)
{
    uint64_t count = loader_count();
    refresh_global(fam, count);
    void *f = __atomic_load_n(&fam->global.r[i].fn, __ATOMIC_ACQUIRE);
    if (f) {
        memcpy(own, &fam->global, sizeof *own);
        own->r[i].fn = f;
        return f;
    }
    if (fallback_too && cache_get(fam, ra, count, own) && own->r[i].fn)
        return own->r[i].fn;
    /* 2. the calling object's own scope */
    memset(own, 0, sizeof *own);
    struct object o = {.addr = ra};
    find_object(&o);
    uintptr_t lo = o.hi ? o.lo : 0, hi = o.hi;
    if (!(o.hi && !o.is_main && !is_ours(o.lo) && from_object(fam, o.path, own) && own->r[i].fn)) {
        memset(own, 0, sizeof *own);
        if (!fallback_too)
            return NULL;
        fallback(fam, i, own);
    }
    if (own->r[i].fn && hi && fallback_too)
        cache_put(fam, lo, hi, count, own);
    return own->r[i].fn;
}

/* 4. What the dynamic linker does with a call it cannot bind. */
static __attribute__((noreturn)) void unbound(const char *name, uintptr_t ra)
{
    Dl_info di;
    const char *prog = program_invocation_name && program_invocation_name[0] ? program_invocation_name
                                                                             : "<program name unknown>";
    const char *obj = dladdr((void *)ra, &di) && di.dli_fname && di.dli_fname[0] ? di.dli_fname : prog;
    clk_warn("%s: symbol lookup error: %s: undefined symbol: %s", prog, obj, name);
    _exit(127);
}

void *clk_real_slow(struct clk_family *fam, int i, uintptr_t ra, struct clk_copy *own)
{
    int saved = errno;
    clk_real_depth++;
    void *f = lookup(fam, i, ra, own, 1);
    clk_real_depth--;
    /* a failed lookup of ours (RTLD_NEXT, a RTLD_NOLOAD probe) must not be what
     * the program's next dlerror() reports */
    dlerror();
    errno = saved;
    if (!f)
        unbound(fam->names[i], ra);
    return f;
}

int clk_real_reachable(struct clk_family *fam, int i, uintptr_t ra)
{
    int saved = errno;
    struct clk_copy own;
    clk_real_depth++;
    void *f = lookup(fam, i, ra, &own, 0);
    clk_real_depth--;
    errno = saved;
    return f != NULL;
}

/* The global answer when there is one; else f must be the only copy, which
 * every caller's scope and the fallback then reach. */
int clk_real_everyones(struct clk_family *fam, int i, void *f)
{
    if (!f)
        return 0;
    int saved = errno, yes;
    clk_real_depth++;
    refresh_global(fam, loader_count());
    void *g = __atomic_load_n(&fam->global.r[i].fn, __ATOMIC_ACQUIRE), *first;
    if (g) {
        yes = g == f;
    } else {
        char path[1];
        yes = count_copies(fam, i, &first, path, 0) == 1 && first == f;
    }
    clk_real_depth--;
    errno = saved;
    return yes;
}

/* ---- the recorder's own lookups (Criterion's functions) ---- */

static void *lookup_by_name(const char *name, const char *const *libs)
{
    void *fn = not_ours(dlsym(RTLD_NEXT, name));
    for (int i = 0; !fn && libs[i]; i++) {
        void *h = dlopen(libs[i], RTLD_NOLOAD | RTLD_LAZY);
        if (h) {
            fn = not_ours(dlsym(h, name));
            dlclose(h);
        }
    }
    if (!fn) {
        char stem[64];
        stem_of(libs, stem, sizeof stem);
        struct object o = {.stem = stem};
        find_object(&o);
        void *h = o.hi ? dlopen(o.path, RTLD_NOLOAD | RTLD_LAZY) : NULL;
        if (h) {
            fn = not_ours(dlsym(h, name));
            dlclose(h);
        }
    }
    return fn;
}

void *clk_real(const char *name, const char *const *libs)
{
    int saved = errno;
    clk_real_depth++;
    void *fn = lookup_by_name(name, libs);
    clk_real_depth--;
    dlerror();
    errno = saved;
    return fn;
}
