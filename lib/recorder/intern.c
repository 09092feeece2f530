/* intern.c — stacks and strings stored once, given ids, and written to the journal once per journal (with their modules). */
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "recorder.h"

/* One interned blob (a string or a stack), in the arena; never freed. */
struct blob {
    uint32_t id;
    uint32_t len;
    uint32_t gen;  /* atomic: journal generation it was last written to */
    uint8_t type;  /* CONNLEAK_REC_STRING or CONNLEAK_REC_STACK */
    _Alignas(8) char data[]; /* stacks are uint64 words; strings end with a NUL after len bytes */
};

static struct clk_table blobs;
static uint32_t next_id; /* atomic; ids start at 1 */

/* id -> blob, two levels of arena pages so lookups never take a lock */
#define PAGE_IDS 4096u
#define MAX_PAGES 4096u
static struct blob **pages[MAX_PAGES];

static void index_put(uint32_t id, struct blob *b)
{
    uint32_t p = id / PAGE_IDS;
    if (p >= MAX_PAGES)
        return;
    struct blob **page = __atomic_load_n(&pages[p], __ATOMIC_ACQUIRE);
    if (!page) {
        struct blob **fresh = clk_arena_alloc(PAGE_IDS * sizeof *fresh);
        if (!fresh)
            return;
        struct blob **expected = NULL;
        if (!__atomic_compare_exchange_n(&pages[p], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            fresh = expected; /* another thread's page won; ours stays unused in the arena */
        page = fresh;
    }
    __atomic_store_n(&page[id % PAGE_IDS], b, __ATOMIC_RELEASE);
}

static struct blob *index_get(uint32_t id)
{
    uint32_t p = id / PAGE_IDS;
    if (!id || p >= MAX_PAGES)
        return NULL;
    struct blob **page = __atomic_load_n(&pages[p], __ATOMIC_ACQUIRE);
    return page ? __atomic_load_n(&page[id % PAGE_IDS], __ATOMIC_ACQUIRE) : NULL;
}

/* ---- modules ---- */

struct module {
    uint64_t start, end, bias;
    uint32_t path;
    uint32_t gen;
};
#define MAX_MODULES 1024
static struct module modules[MAX_MODULES];
static int nmodules;
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;
/* Serializes rescans; taken before (never after) the table, arena and module locks. */
static pthread_mutex_t scan_mu = PTHREAD_MUTEX_INITIALIZER;

struct scan {
    struct {
        uint64_t start, end, bias;
        const char *name;
    } found[MAX_MODULES];
    int n;
};

static int scan_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct scan *s = data;
    if (s->n >= MAX_MODULES)
        return 1;
    uint64_t lo, hi;
    clk_phdr_bounds(info, &lo, &hi);
    if (hi <= lo)
        return 0;
    s->found[s->n].start = lo;
    s->found[s->n].end = hi;
    s->found[s->n].bias = info->dlpi_addr;
    s->found[s->n].name = info->dlpi_name;
    s->n++;
    return 0;
}

static int module_index(uint64_t ip)
{
    for (int i = 0; i < nmodules; i++)
        if (ip >= modules[i].start && ip < modules[i].end)
            return i;
    return -1;
}

static uint32_t intern(uint8_t type, const void *data, size_t len, int emit);

/* Re-reads the loaded objects (after a dlopen, say): a rare path, serialized so
 * one static buffer serves (32 KiB is too much for some threads' stacks). */
static void refresh_modules(void)
{
    static struct scan s;
    int cs = clk_walk_begin();
    pthread_mutex_lock(&scan_mu);
    s.n = 0;
    dl_iterate_phdr(scan_cb, &s);
    for (int i = 0; i < s.n; i++) {
        pthread_mutex_lock(&modules_mu);
        int known = 0;
        for (int j = 0; j < nmodules; j++)
            if (modules[j].start == s.found[i].start && modules[j].bias == s.found[i].bias) {
                known = 1;
                break;
            }
        pthread_mutex_unlock(&modules_mu);
        if (known)
            continue;
        /* a new object may be an interpreter (libpython dlopen()ed by an embedding program) */
        if (__atomic_load_n(&clk_py_active, __ATOMIC_ACQUIRE) == -2)
            __atomic_store_n(&clk_py_active, 0, __ATOMIC_RELEASE);
        const char *name = s.found[i].name;
        if (!name || !name[0])
            name = clk_exe_path();
        /* written with the module's record, if a stack ever lies in it */
        uint32_t path = intern(CONNLEAK_REC_STRING, name, strlen(name), 0);
        pthread_mutex_lock(&modules_mu);
        /* a module unloaded since may overlap: the newest mapping wins */
        for (int j = 0; j < nmodules; j++)
            if (modules[j].start < s.found[i].end && s.found[i].start < modules[j].end) {
                modules[j] = modules[--nmodules];
                j--;
            }
        if (nmodules < MAX_MODULES) {
            struct module *m = &modules[nmodules++];
            m->start = s.found[i].start;
            m->end = s.found[i].end;
            m->bias = s.found[i].bias;
            m->path = path;
            m->gen = 0;
        }
        pthread_mutex_unlock(&modules_mu);
    }
    pthread_mutex_unlock(&scan_mu);
    clk_walk_end(cs);
}

static void ensure_blob(struct blob *b);

/* Makes sure every module an address of this stack lies in is in the journal. */
static void ensure_modules(const uint64_t *ips, int n)
{
    uint32_t gen = __atomic_load_n(&clk_journal_generation, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        if ((ips[i] & CONNLEAK_RAW_TAG_MASK) == CONNLEAK_RAW_PY_TAG) {
            ensure_blob(index_get((uint32_t)ips[i])); /* a Python frame's location string */
            continue;
        }
        pthread_mutex_lock(&modules_mu);
        int m = module_index(ips[i]);
        pthread_mutex_unlock(&modules_mu);
        if (m < 0) {
            refresh_modules();
            pthread_mutex_lock(&modules_mu);
            m = module_index(ips[i]);
            pthread_mutex_unlock(&modules_mu);
            if (m < 0)
                continue;
        }
        pthread_mutex_lock(&modules_mu);
        struct module copy = modules[m];
        int write = copy.gen != gen;
        modules[m].gen = gen;
        pthread_mutex_unlock(&modules_mu);
        if (!write)
            continue;
        ensure_blob(index_get(copy.path));
        struct connleak_raw_record rec = {0};
        rec.u.module.start = copy.start;
        rec.u.module.end = copy.end;
        rec.u.module.bias = copy.bias;
        rec.u.module.path = copy.path;
        clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_MODULE);
    }
}

/* Writes the blob to the current journal unless it is there already. */
static void ensure_blob(struct blob *b)
{
    if (!b)
        return;
    if (!clk_journal_active()) {
        /* to be written once one is (stored once: every thread passes here without a journal) */
        if (!__atomic_load_n(&clk_intern_behind, __ATOMIC_RELAXED))
            __atomic_store_n(&clk_intern_behind, 1, __ATOMIC_RELEASE);
        return;
    }
    uint32_t gen = __atomic_load_n(&clk_journal_generation, __ATOMIC_ACQUIRE);
    uint32_t seen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (seen == gen || !__atomic_compare_exchange_n(&b->gen, &seen, gen, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    if (b->type == CONNLEAK_REC_STACK)
        ensure_modules((const uint64_t *)b->data, (int)(b->len / 8));
    clk_journal_blob(b->type, b->id, b->data, b->len);
}

/* emit: write the blob into the journal now (0: when something names it, as a module's path) */
static uint32_t intern(uint8_t type, const void *data, size_t len, int emit)
{
    if (len > 65536)
        len = 65536;
    uint64_t key = clk_hash_bytes(data, len) ^ type;
    for (int probe = 0; probe < 8; probe++, key = key * 31 + 7) {
        if (!key)
            key = 1;
        struct clk_shard *held;
        struct clk_slot *s = clk_table_lock(&blobs, key, 0, &held);
        if (s) {
            struct blob *b = (struct blob *)(uintptr_t)s->v[0];
            int same = b->type == type && b->len == len && memcmp(b->data, data, len) == 0;
            clk_table_unlock(held);
            if (!same)
                continue; /* a different blob with the same hash: try the next key */
            if (emit)
                ensure_blob(b);
            return b->id;
        }
        /* new: copy outside any lock, then publish */
        struct blob *b = clk_arena_alloc(sizeof *b + len + 1);
        if (!b)
            return 0;
        b->type = type;
        b->len = (uint32_t)len;
        memcpy(b->data, data, len);
        b->data[len] = 0;
        b->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
        index_put(b->id, b);
        s = clk_table_lock(&blobs, key, 1, &held);
        if (!s)
            return 0;
        if (s->v[0]) {
            /* another thread published the same key first: use its blob if equal */
            struct blob *other = (struct blob *)(uintptr_t)s->v[0];
            int same = other->type == type && other->len == len && memcmp(other->data, data, len) == 0;
            clk_table_unlock(held);
            if (!same)
                continue;
            if (emit)
                ensure_blob(other);
            return other->id;
        }
        s->v[0] = (uint64_t)(uintptr_t)b;
        clk_table_unlock(held);
        if (emit)
            ensure_blob(b);
        return b->id;
    }
    return 0;
}

/* A loop opening and closing connections repeats a few stacks and targets:
 * a few entries per thread remember the last ones, so the common case takes
 * no lock. */
#define LAST_N (4 / CLK_TLS_SCALE)
struct last {
    uint32_t id, len;
    _Alignas(8) char data[256 / CLK_TLS_SCALE];
};
struct last_set {
    struct last e[LAST_N];
    unsigned next;
};
static __thread struct last_set last_stacks __attribute__((tls_model("initial-exec")));
static __thread struct last_set last_strings __attribute__((tls_model("initial-exec")));

static uint32_t intern_cached(struct last_set *c, uint8_t type, const void *data, size_t len)
{
    for (int i = 0; i < LAST_N; i++) {
        struct last *e = &c->e[i];
        if (e->id && e->len == len && memcmp(e->data, data, len) == 0) {
            clk_intern_ensure(e->id); /* after a fork, the child's journal needs it too */
            return e->id;
        }
    }
    uint32_t id = intern(type, data, len, 1);
    if (id && len <= sizeof c->e[0].data) {
        struct last *e = &c->e[c->next++ % LAST_N];
        memcpy(e->data, data, len);
        e->len = (uint32_t)len;
        e->id = id;
    }
    return id;
}

uint32_t clk_intern_stack(const uint64_t *ips, int n)
{
    return n > 0 ? intern_cached(&last_stacks, CONNLEAK_REC_STACK, ips, (size_t)n * sizeof *ips) : 0;
}

uint32_t clk_intern_string(const char *s, size_t len)
{
    return s ? intern_cached(&last_strings, CONNLEAK_REC_STRING, s, len) : 0;
}

int clk_intern_behind;

void clk_intern_ensure_slow(uint32_t id)
{
    ensure_blob(index_get(id));
}

void clk_intern_new_journal(void)
{
    if (__atomic_load_n(&next_id, __ATOMIC_ACQUIRE))
        __atomic_store_n(&clk_intern_behind, 1, __ATOMIC_RELEASE);
}

void clk_intern_scan_modules(void)
{
    refresh_modules();
}

/* At exit: every loaded object into the journal, so the CLI can tell a
 * process that carries its own (static) copy of SQLite or libpq. */
void clk_intern_all_modules(void)
{
    refresh_modules();
    uint64_t starts[MAX_MODULES];
    pthread_mutex_lock(&modules_mu);
    int n = nmodules;
    for (int i = 0; i < n; i++)
        starts[i] = modules[i].start;
    pthread_mutex_unlock(&modules_mu);
    ensure_modules(starts, n);
}

/* Copies of the database libraries that dlmopen() put in a namespace of their
 * own: the wrappers, in the base namespace, are never called for them, and
 * dl_iterate_phdr shows only the caller's namespace. The loader's
 * r_debug_extended chain (glibc 2.35+, r_version 2) lists every namespace. */
void clk_intern_note_namespaces(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
    if (_r_debug.r_version < 2)
        return;
    /* _r_debug is declared as the base struct; the loader's object is the extended one
     * (what r_version 2 promises): the address goes through a register so the
     * compiler does not bound the access by the declaration */
    uintptr_t first = (uintptr_t)&_r_debug;
    __asm__("" : "+r"(first));
    int ns = 0;
    for (struct r_debug_extended *d = ((struct r_debug_extended *)first)->r_next; d && ns < 64; d = d->r_next) {
        ns++;
        int maps = 0;
        for (struct link_map *m = d->base.r_map; m && maps < 4096; m = m->l_next, maps++) {
            const char *name = m->l_name ? m->l_name : "";
            const char *base = strrchr(name, '/');
            base = base ? base + 1 : name;
            const char *what = !strncmp(base, "libsqlite3", 10) ? "SQLite" : !strncmp(base, "libpq.", 6) ? "libpq" : NULL;
            if (!what)
                continue;
            char text[1024];
            int n = snprintf(text, sizeof text,
                             "a copy of %s (%s) loaded with dlmopen() into link-map namespace %d: connections "
                             "opened through it are not seen",
                             what, name, ns);
            struct connleak_raw_record rec = {0};
            rec.u.ev.target = clk_intern_string(text, n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
            clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_NOTE);
        }
    }
#endif
}

const uint64_t *clk_stack_frames(uint32_t id, int *n)
{
    struct blob *b = index_get(id);
    if (!b || b->type != CONNLEAK_REC_STACK) {
        *n = 0;
        return NULL;
    }
    *n = (int)(b->len / 8);
    return (const uint64_t *)b->data;
}

const char *clk_string(uint32_t id)
{
    struct blob *b = index_get(id);
    return b && b->type == CONNLEAK_REC_STRING ? b->data : NULL;
}

void clk_intern_prepare_fork(void)
{
    pthread_mutex_lock(&scan_mu);
    clk_table_lock_all(&blobs);
    pthread_mutex_lock(&modules_mu);
}

/* The forking thread took every lock, so parent and child alike release them. */
void clk_intern_after_fork(void)
{
    pthread_mutex_unlock(&modules_mu);
    clk_table_unlock_all(&blobs);
    pthread_mutex_unlock(&scan_mu);
}
