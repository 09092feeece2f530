/* load_raw.c — reads per-process journals: blobs and modules first, then the events replayed in order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rawfmt.h"

struct module {
    uint64_t start, end, bias;
    const char *path;
};

struct blob {
    uint32_t len;
    unsigned char *data;
    const char *interned; /* strings, once interned */
    struct clk_stack stack; /* stacks, once resolved (stack.f non-NULL) */
    int frames_owned;       /* stack.f is ours to free, not a finding's (see adopt) */
};

struct open_conn {
    uint64_t open_ns; /* CLOCK_MONOTONIC at the open, when the journal has times (held_longer_than) */
    uint8_t backend;
    uint16_t flags;
    uint32_t stack, target, test;
    uint32_t thread_stack; /* what created the opening thread (0: the main thread) */
    uint32_t unfinalized[4]; /* after a refused close: its unfinalized statements' SQL (string ids) */
    uint8_t nunfinalized;
    struct open_conn *next_free;
};

/* Blobs and connections come by the hundred thousand: they are cut from chunks freed with the
 * journal, and connections closed go on a free list, rather than a malloc and free each. */
struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct proc {
    const char *path;
    int pid;
    uint32_t exe; /* the header's, kept: the journal is unmapped once its records are read */
    struct clk_map blobs; /* id -> struct blob */
    struct clk_map frames; /* return address -> struct resolved_ip */
    struct module *modules;
    size_t nmodules;
    struct clk_map open;       /* handle -> open_conn (wrappers) */
    struct clk_map pool_open;  /* handle -> open_conn (connleak_record connects) */
    struct clk_map checkouts;  /* handle -> open_conn */
    int wrapper_events, exited;
    uint64_t end_ns; /* the EXIT record's time, else the last event's: when open connections stopped being held */
    /* connections open at once: now and at most, overall ([0]) and per backend; wrappers' and a pool's */
    struct peak {
        uint64_t now[3], max[3];
    } peak, pool_peak;
    uint64_t pool_connects, pool_closes; /* counted where no wrapper saw the connections */
    uint64_t corrupt, lost;
    uint64_t dangling; /* references to stacks or strings the journal does not hold */
    struct chunk *chunks;
    struct open_conn *free_conns;
};

static void *take(struct proc *p, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct chunk *c = p->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (1u << 20) ? n : 1u << 20;
        c = clk_xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = p->chunks;
        p->chunks = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

int clk_is_raw_file(const char *path)
{
    char magic[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    if (n == (ssize_t)sizeof magic && memcmp(magic, CONNLEAK_RAW_MAGIC, sizeof magic) == 0)
        return 1;
    /* named as one: read as a (damaged) journal, which says what is wrong with it */
    size_t len = strlen(path), sl = strlen(CONNLEAK_RAW_SUFFIX);
    return len > sl && strcmp(path + len - sl, CONNLEAK_RAW_SUFFIX) == 0;
}

static const char *backend_name(uint8_t b)
{
    return clk_intern(b == CONNLEAK_RAW_SQLITE ? "sqlite" : b == CONNLEAK_RAW_POSTGRES ? "postgres" : "unknown");
}

/* Which route saw the connection: its open event's flags. */
static const char *via_name(uint8_t backend, uint16_t flags)
{
    if (flags & CONNLEAK_RAWF_WIRE)
        return clk_intern("wire");
    if (flags & CONNLEAK_RAWF_POOL)
        return clk_intern("api");
    return backend == CONNLEAK_RAW_SQLITE ? clk_intern("libsqlite3") : backend == CONNLEAK_RAW_POSTGRES ? clk_intern("libpq") : NULL;
}

static int by_start(const void *a, const void *b)
{
    const struct module *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static const struct module *module_of(const struct proc *p, uint64_t ip)
{
    size_t lo = 0, hi = p->nmodules;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ip < p->modules[mid].start)
            hi = mid;
        else if (ip >= p->modules[mid].end)
            lo = mid + 1;
        else
            return &p->modules[mid];
    }
    return NULL;
}

static const char *string_of(struct proc *p, uint32_t id)
{
    struct blob *b = id ? clk_map_get(&p->blobs, id) : NULL;
    p->dangling += id && !b;
    if (b && !b->interned)
        b->interned = clk_intern((const char *)b->data);
    return b ? b->interned : NULL;
}

/* Stacks share most of their return addresses: each is resolved once per journal. */
/* A Python frame: its location string is "FILE\0QUALNAME\0LINE" (pyframes.c). */
static void python_frame(struct proc *p, uint32_t id, struct clk_frame *f)
{
    struct blob *b = id ? clk_map_get(&p->blobs, id) : NULL;
    p->dangling += id && !b;
    f->language = clk_intern("python");
    if (!b)
        return;
    const char *s = (const char *)b->data, *end = s + b->len;
    const char *name = memchr(s, 0, b->len);
    const char *line = name ? memchr(name + 1, 0, (size_t)(end - name - 1)) : NULL;
    if (!name || !line)
        return;
    char *file = clk_xmalloc((size_t)(name - s) + 1);
    memcpy(file, s, (size_t)(name - s));
    file[name - s] = 0;
    f->file = clk_intern(file);
    free(file);
    f->function = clk_intern(name + 1);
    int n = 0;
    for (const char *c = line + 1; c < end && *c >= '0' && *c <= '9'; c++)
        n = n * 10 + (*c - '0');
    f->line = n;
}

struct resolved_ip {
    uint64_t ip;
    struct clk_frame f;
};

static struct clk_frame frame_at(struct proc *p, uint64_t ip)
{
    void **slot = clk_map_slot(&p->frames, ip, 1);
    struct resolved_ip *c = *slot;
    if (c && c->ip == ip)
        return c->f;
    struct clk_frame f = {0};
    const struct module *m = module_of(p, ip);
    if ((ip & CONNLEAK_RAW_TAG_MASK) == CONNLEAK_RAW_PY_TAG) {
        python_frame(p, (uint32_t)ip, &f);
        return f; /* a string lookup: nothing to resolve, nothing to cache */
    }
    f.has_offset = 1;
    f.offset = ip;
    if (m) {
        f.module = m->path;
        f.offset = ip - m->bias;
        clk_symbolize(&f);
    }
    if (!c) { /* (the map takes 0 for 1: those two share a slot, and the second is not kept) */
        c = take(p, sizeof *c);
        c->ip = ip;
        c->f = f;
        *slot = c;
    }
    return f;
}

static struct clk_stack stack_of(struct proc *p, uint32_t id)
{
    static struct clk_stack empty;
    struct blob *b = id ? clk_map_get(&p->blobs, id) : NULL;
    p->dangling += id && !b;
    if (!b)
        return empty;
    if (b->stack.f)
        return b->stack;
    struct clk_stack *s = &b->stack;
    s->n = (int)(b->len / 8);
    s->f = clk_xcalloc((size_t)s->n ? (size_t)s->n : 1, sizeof *s->f);
    b->frames_owned = 1;
    for (int i = 0; i < s->n; i++) {
        uint64_t ip;
        memcpy(&ip, b->data + 8 * i, 8);
        s->f[i] = frame_at(p, ip);
    }
    return *s;
}

/* A stack the report now holds a copy of: the blob uses that copy from here on and frees its
 * own, so a report's frames are in memory once, not twice, while journals load. Findings are
 * not freed while loading. */
static void adopt(struct proc *p, uint32_t id, const struct clk_stack *in_report)
{
    struct blob *b = id ? clk_map_get(&p->blobs, id) : NULL;
    if (!b || !b->frames_owned || b->stack.n != in_report->n || !b->stack.n ||
        memcmp(b->stack.f, in_report->f, (size_t)b->stack.n * sizeof *b->stack.f) != 0)
        return;
    free(b->stack.f);
    b->stack.f = in_report->f;
    b->frames_owned = 0;
}

/* Pass 1: strings, stacks and modules, wherever they stand in the file. */
static void read_blobs(struct proc *p, const struct connleak_raw_record *rec, uint64_t nslots)
{
    for (uint64_t i = 1; i < nslots; i++) {
        const struct connleak_raw_record *r = &rec[i];
        uint8_t type = __atomic_load_n(&r->type, __ATOMIC_ACQUIRE);
        if (type == CONNLEAK_REC_STRING || type == CONNLEAK_REC_STACK) {
            uint32_t slots = r->u.blob.slots, len = r->u.blob.len;
            /* in 64 bits: a corrupt len near 2^32 must not wrap to a small slot count */
            if (slots != ((uint64_t)len + CONNLEAK_RAW_CONT_PAYLOAD - 1) / CONNLEAK_RAW_CONT_PAYLOAD ||
                i + slots >= nslots || (type == CONNLEAK_REC_STACK && len % 8)) {
                p->corrupt++;
                continue;
            }
            void **slot = clk_map_slot(&p->blobs, r->u.blob.id, 1);
            if (!*slot) {
                struct blob *b = take(p, sizeof *b);
                memset(b, 0, sizeof *b);
                b->len = len;
                b->data = take(p, (size_t)len + 1);
                for (uint32_t k = 0; k < slots; k++) {
                    uint32_t off = k * CONNLEAK_RAW_CONT_PAYLOAD;
                    uint32_t n = len - off < CONNLEAK_RAW_CONT_PAYLOAD ? len - off : CONNLEAK_RAW_CONT_PAYLOAD;
                    memcpy(b->data + off, rec[i + 1 + k].u.bytes, n);
                }
                b->data[len] = 0;
                *slot = b;
            }
            i += slots;
        } else if (type == CONNLEAK_REC_MODULE) {
            p->modules = clk_xrealloc(p->modules, (p->nmodules + 1) * sizeof *p->modules);
            struct module *m = &p->modules[p->nmodules++];
            m->start = r->u.module.start;
            m->end = r->u.module.end;
            m->bias = r->u.module.bias;
            m->path = NULL;
            m->path = (const char *)(uintptr_t)r->u.module.path; /* resolved below, once all strings are read */
        } else if (type > CONNLEAK_REC_TYPE_MAX) {
            p->corrupt++;
        }
    }
    for (size_t i = 0; i < p->nmodules; i++)
        p->modules[i].path = string_of(p, (uint32_t)(uintptr_t)p->modules[i].path);
    if (p->nmodules > 1) /* modules is NULL when none was journaled (a process killed early): not for qsort */
        qsort(p->modules, p->nmodules, sizeof *p->modules, by_start);
}

static void add_finding(struct clk_report *r, struct proc *p, enum clk_kind kind, int checkout, uint8_t backend,
                        uint16_t flags, uint32_t target, uint32_t test, uint32_t opened, uint32_t first_closed, uint32_t closed,
                        uint32_t thread_created, const struct open_conn *c)
{
    struct clk_finding f = {0};
    for (int i = 0; c && i < c->nunfinalized; i++) {
        const char *sql = string_of(p, c->unfinalized[i]);
        if (sql)
            f.unfinalized[f.nunfinalized++] = sql;
    }
    int pid = p->pid;
    f.kind = kind;
    f.checkout = checkout;
    f.backend = backend_name(backend);
    f.via = via_name(backend, flags);
    f.target = string_of(p, target);
    f.test = string_of(p, test);
    f.count = 1;
    f.pids = &pid;
    f.npids = 1;
    f.opened_at = stack_of(p, opened);
    f.first_closed_at = stack_of(p, first_closed);
    f.closed_at = stack_of(p, closed);
    f.thread_created_at = stack_of(p, thread_created);
    const struct clk_finding *in = clk_report_add(r, &f);
    adopt(p, opened, &in->opened_at);
    adopt(p, first_closed, &in->first_closed_at);
    adopt(p, closed, &in->closed_at);
    adopt(p, thread_created, &in->thread_created_at);
}

static struct open_conn *remember(struct proc *p, struct clk_map *m, uint64_t handle,
                                  const struct connleak_raw_record *r)
{
    void **slot = clk_map_slot(m, handle, 1);
    if (!*slot) {
        if (p->free_conns) {
            *slot = p->free_conns;
            p->free_conns = p->free_conns->next_free;
        } else {
            *slot = take(p, sizeof(struct open_conn));
        }
    }
    struct open_conn *c = *slot;
    c->backend = r->backend;
    c->flags = r->flags;
    c->stack = r->u.ev.stack;
    c->target = r->u.ev.target;
    c->test = r->u.ev.test;
    c->thread_stack = r->u.ev.thread_stack; /* 0 in journals older than the field */
    c->nunfinalized = 0;
    c->open_ns = r->u.ev.time_ns;
    return c;
}

/* One more (up 1) or one fewer (-1) connection open, of backend b. */
static void count_open(struct peak *k, uint8_t b, int up)
{
    int i = b < 3 ? b : 0;
    if (up > 0) {
        if (++k->now[0] > k->max[0])
            k->max[0] = k->now[0];
        if (i && ++k->now[i] > k->max[i])
            k->max[i] = k->now[i];
    } else {
        k->now[0] -= k->now[0] > 0;
        if (i)
            k->now[i] -= k->now[i] > 0;
    }
}

static int forget(struct proc *p, struct clk_map *m, uint64_t handle)
{
    void **slot = clk_map_slot(m, handle, 0);
    if (!slot || !*slot)
        return 0;
    struct open_conn *c = *slot;
    c->next_free = p->free_conns;
    p->free_conns = c;
    *slot = NULL;
    return 1;
}

/* A leak-shaped finding of connection c in process p (no stacks yet); *pid outlives it. */
static struct clk_finding conn_finding(struct proc *p, const struct open_conn *c, int *pid)
{
    struct clk_finding f = {0};
    f.kind = CLK_LEAK;
    f.backend = backend_name(c->backend);
    f.via = via_name(c->backend, c->flags);
    f.target = string_of(p, c->target);
    f.test = string_of(p, c->test);
    f.count = 1;
    f.pids = pid;
    f.npids = 1;
    return f;
}

/* Connection c was held from its open until end_ns (a close's time, or its process's end):
 * a long_held entry when that is over the threshold. */
static void held(struct clk_report *r, struct proc *p, const struct open_conn *c, uint64_t end_ns, int closed)
{
    if (!r->held_threshold_ms || !c || !c->open_ns || end_ns < c->open_ns)
        return;
    uint64_t ms = (end_ns - c->open_ns) / 1000000u;
    if (ms <= r->held_threshold_ms)
        return;
    int pid = p->pid;
    struct clk_finding f = conn_finding(p, c, &pid);
    f.opened_at = stack_of(p, c->stack);
    clk_long_held_add(r, &f, ms, closed);
}

/* A recorded stack has a Python frame (no C frame symbolized to tell). */
static int has_python_frame(struct proc *p, uint32_t id)
{
    struct blob *b = clk_map_get(&p->blobs, id);
    for (uint32_t i = 0; b && i + 8 <= b->len; i += 8) {
        uint64_t ip;
        memcpy(&ip, b->data + i, 8);
        if ((ip & CONNLEAK_RAW_TAG_MASK) == CONNLEAK_RAW_PY_TAG)
            return 1;
    }
    return 0;
}

/* A close of connection c (still open here) that the garbage collector made, not the program. */
static void finalized_close(struct clk_report *r, struct proc *p, const struct open_conn *c,
                            const struct connleak_raw_record *e)
{
    /* decided without symbolizing either stack where it can be: most closes are the program's */
    if (!c || !c->stack || (e->flags & CONNLEAK_RAWF_EXPLICIT) ||
        (!(e->flags & CONNLEAK_RAWF_FINALIZER) && !has_python_frame(p, c->stack)))
        return;
    struct clk_stack opened = stack_of(p, c->stack), closed = stack_of(p, e->u.ev.stack);
    if (!clk_closed_by_finalizer(&opened, &closed, e->flags))
        return;
    int pid = p->pid;
    struct clk_finding f = conn_finding(p, c, &pid);
    f.opened_at = opened;
    f.closed_at = closed;
    clk_report_add_finalized(r, &f);
}

/* forget() of a connection that counted as open */
static int forget_counted(struct proc *p, struct clk_map *m, uint64_t handle, int pool)
{
    struct open_conn *c = clk_map_get(m, handle);
    if (!c || !forget(p, m, handle))
        return 0;
    count_open(pool ? &p->pool_peak : &p->peak, c->backend, -1);
    return 1;
}

/* Pass 2: the events, in the order their slots were reserved. */
static void replay(struct clk_report *r, struct proc *p, const struct connleak_raw_record *rec, uint64_t nslots)
{
    for (uint64_t i = 1; i < nslots; i++) {
        const struct connleak_raw_record *e = &rec[i];
        uint8_t type = __atomic_load_n(&e->type, __ATOMIC_ACQUIRE);
        uint64_t h = e->u.ev.handle;
        int pool = (e->flags & CONNLEAK_RAWF_POOL) != 0;
        struct clk_map *conns = pool ? &p->pool_open : &p->open;
        /* events carry CLOCK_MONOTONIC times when the run asked for them (held_longer_than) */
        if (type >= CONNLEAK_REC_OPEN && type <= CONNLEAK_REC_TYPE_MAX && type != CONNLEAK_REC_MODULE &&
            e->u.ev.time_ns > p->end_ns)
            p->end_ns = e->u.ev.time_ns;
        switch (type) {
        case CONNLEAK_REC_STRING:
        case CONNLEAK_REC_STACK:
            /* its continuation slots are CONT records, passed over below; a corrupt head's
             * slot count must not make the events after it disappear */
            break;
        case CONNLEAK_REC_OPEN:
            /* an address still open here was freed by a path we did not see: not a leak */
            if (!clk_map_get(conns, h))
                count_open(pool ? &p->pool_peak : &p->peak, e->backend, 1);
            remember(p, conns, h, e);
            if (!pool) {
                p->wrapper_events = 1;
                r->summary.connects++;
            } else {
                p->pool_connects++;
            }
            break;
        case CONNLEAK_REC_CLOSE:
            if (!pool) {
                finalized_close(r, p, clk_map_get(conns, h), e);
                held(r, p, clk_map_get(conns, h), e->u.ev.time_ns, 1);
            }
            if (forget_counted(p, conns, h, pool)) {
                if (!pool)
                    r->summary.closes++;
                else
                    p->pool_closes++;
            }
            break;
        case CONNLEAK_REC_UNKNOWN_CLOSE:
            /* open in the journal but not in the tracker: connleak_clear() came between */
            if (forget_counted(p, conns, h, pool)) {
                if (!pool)
                    r->summary.closes++;
                else
                    p->pool_closes++;
            } else if (!pool || !p->wrapper_events) {
                add_finding(r, p, CLK_UNKNOWN_CLOSE, 0, e->backend, e->flags, 0, 0, 0, 0, e->u.ev.stack, 0, NULL);
            }
            break;
        case CONNLEAK_REC_DOUBLE_CLOSE:
            if (!pool || !p->wrapper_events)
                add_finding(r, p, CLK_DOUBLE_CLOSE, 0, e->backend, e->flags, e->u.ev.target, e->u.ev.test, e->u.ev.open_stack,
                            e->u.ev.first_close_stack, e->u.ev.stack, 0, NULL);
            break;
        case CONNLEAK_REC_CHECKOUT:
            remember(p, &p->checkouts, h, e);
            break;
        case CONNLEAK_REC_CHECKIN:
            forget(p, &p->checkouts, h);
            break;
        case CONNLEAK_REC_CLOSE_BUSY: {
            /* refused, so still open: the statements listed next are this refusal's */
            struct open_conn *c = clk_map_get(conns, h);
            if (c)
                c->nunfinalized = 0;
            break;
        }
        case CONNLEAK_REC_UNFINALIZED: {
            struct open_conn *c = clk_map_get(&p->open, h);
            if (c && c->nunfinalized < 4)
                c->unfinalized[c->nunfinalized++] = e->u.ev.target;
            break;
        }
        case CONNLEAK_REC_EXIT:
            p->exited = 1;
            break;
        case CONNLEAK_REC_NOTE: {
            const char *text = string_of(p, e->u.ev.target);
            /* the journal carries no kind: a note of the recorder's on what it cannot see (a copy in a
             * dlmopen namespace, an object bound past the wrappers) says "...are not seen"; the others
             * (an environment put back, Python frames not read) are for information */
            if (text)
                clk_report_note(r, strstr(text, "not seen") ? CLK_NOTE_UNSEEN : CLK_NOTE_INFO, "process %d: %s",
                                p->pid, text);
            break;
        }
        case CONNLEAK_REC_LOST:
            p->lost += (uint64_t)e->u.ev.result;
            break;
        default:
            break;
        }
    }
}

/* When a connection still open at its process's end stopped being held: the EXIT record's time; a
 * process that left without one (_exit, a signal) under `run` ended before its journal is read, so
 * now (CLOCK_MONOTONIC is one clock for every process); read later by `report`, its last event. */
static uint64_t held_until(const struct clk_report *r, const struct proc *p)
{
    if (p->exited || !r->live || !r->held_threshold_ms)
        return p->end_ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void report_open(struct clk_report *r, struct proc *p, struct clk_map *m, int checkout)
{
    for (size_t i = 0; i < m->cap; i++) {
        struct open_conn *c = m->keys[i] ? m->vals[i] : NULL;
        if (!c)
            continue;
        if (!checkout && m == &p->open)
            held(r, p, c, held_until(r, p), 0);
        add_finding(r, p, CLK_LEAK, checkout, c->backend, c->flags, c->target, c->test, c->stack, 0, 0,
                    c->thread_stack, c);
    }
    clk_map_free(m);
}

/* A process whose program or libraries carry their own SQLite or libpq opens
 * connections the wrappers never see: say so rather than report it clean. */
static void note_own_copies(struct clk_report *r, struct proc *p)
{
    const char *exe = string_of(p, p->exe);
    const char *what = clk_own_copy_of(exe), *where = exe;
    for (size_t i = 0; !what && i < p->nmodules; i++) {
        what = clk_own_copy_of(p->modules[i].path);
        where = p->modules[i].path;
    }
    if (what)
        clk_report_note(r, CLK_NOTE_UNSEEN, "process %d (%s) has its own copy of %s in %s (statically linked): "
                        "connections it opens there are not seen", p->pid, exe ? exe : "?", what, where);
}

/* Go makes its system calls itself, not through libc: a Go program's own network connections
 * (pure-Go PostgreSQL drivers) never reach the wire route's wrappers. Said for the program and for
 * Go code loaded into another one (a -buildmode=c-shared library). */
static void note_go(struct clk_report *r, struct proc *p)
{
    const char *exe = string_of(p, p->exe), *where = NULL;
    if (clk_is_go_object(exe))
        where = exe;
    for (size_t i = 0; !where && i < p->nmodules; i++)
        if (clk_is_go_object(p->modules[i].path))
            where = p->modules[i].path;
    if (!where)
        return;
    if (where == exe)
        clk_report_note(r, CLK_NOTE_UNSEEN, "process %d (%s) is a Go program: its network connections (pure-Go "
                        "PostgreSQL drivers such as pgx and lib/pq) and any database client that does not go "
                        "through libc are not seen", p->pid, exe);
    else
        clk_report_note(r, CLK_NOTE_UNSEEN, "process %d (%s) runs Go code from %s: its network connections "
                        "(pure-Go PostgreSQL drivers such as pgx and lib/pq) and any database client that does "
                        "not go through libc are not seen", p->pid, exe ? exe : "?", where);
}

/* Why the last journal could not be read: said on stderr and kept for the report's note. */
static char load_error[1024];

__attribute__((format(printf, 1, 2))) static void load_failed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(load_error, sizeof load_error, fmt, ap);
    va_end(ap);
    clk_err("%s", load_error);
}

/* Where a journal's written slots end: past the last data its file system reports (SEEK_DATA and
 * SEEK_HOLE never report data as a hole), all is zero. A journal is a MiB of which a short run
 * uses a few KiB: reading the rest faulted in zero pages, the most of a small run's report. */
static off_t written_end(int fd, off_t size)
{
    off_t end = 0, at = 0;
    while (at < size) {
        off_t d = lseek(fd, at, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            break; /* no data past at */
        off_t h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            return size; /* not told (no SEEK_DATA here): read it all */
        end = at = h;
    }
    end = (end + CONNLEAK_RAW_SLOT - 1) / CONNLEAK_RAW_SLOT * CONNLEAK_RAW_SLOT;
    return end < (off_t)CONNLEAK_RAW_SLOT ? (off_t)CONNLEAK_RAW_SLOT : end > size ? size : end;
}

/* only_run: skip a journal of another `connleak run` (sharing a --keep-raw directory); 0 reads all. */
/* The run id in the header of the journal load_raw last read (clk_load_run_dir lists the runs it merged). */
static uint64_t loaded_run_id;
static int loaded_one;

static int load_raw(struct clk_report *r, const char *path, uint64_t only_run)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    /* a descriptor named (/dev/fd/3, /proc/self/fd/3: `connleak report /dev/fd/3 3<FILE`, and how a
     * preloaded library without the CLI hands its journal over) is the one link followed */
    if (fd < 0 && errno == ELOOP && (!strncmp(path, "/dev/fd/", 8) || !strncmp(path, "/proc/self/fd/", 14)))
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        load_failed("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char first[CONNLEAK_RAW_SLOT] = {0}, zero[CONNLEAK_RAW_SLOT] = {0};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (st.st_size == 0 || (pread(fd, first, sizeof first, 0) == (ssize_t)sizeof first &&
                             memcmp(first, zero, sizeof zero) == 0))) {
        /* created, then the process died before it wrote its header: nothing to tell but that */
        close(fd);
        r->summary.processes++;
        clk_report_note(r, CLK_NOTE_UNSEEN, "%s: a process ended before its journal was set up", path);
        return 0;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)CONNLEAK_RAW_SLOT) {
        close(fd);
        load_failed("%s: not a connleak journal (too short)", path);
        return -1;
    }
    off_t used = written_end(fd, st.st_size);
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        load_failed("cannot map %s: %s", path, strerror(errno));
        return -1;
    }
    const struct connleak_raw_header *h = map;
    if (memcmp(h->magic, CONNLEAK_RAW_MAGIC, sizeof h->magic) != 0 || h->version != CONNLEAK_RAW_VERSION ||
        h->slot_size != CONNLEAK_RAW_SLOT) {
        munmap(map, (size_t)st.st_size);
        load_failed("%s: not a connleak journal of version %u (bad header)", path, CONNLEAK_RAW_VERSION);
        return -1;
    }
    if (only_run && h->run_id != only_run) { /* another run's, or a journal made by hand or by an older connleak */
        munmap(map, (size_t)st.st_size);
        return 0;
    }
    loaded_run_id = h->run_id;
    loaded_one = 1;
    uint64_t nslots = (uint64_t)used / CONNLEAK_RAW_SLOT;
    if (st.st_size % CONNLEAK_RAW_CHUNK)
        clk_report_note(r, CLK_NOTE_INCOMPLETE, "%s: truncated at %lld bytes (journals grow by whole MiB): what the process did after "
                        "that is missing", path, (long long)st.st_size);
    struct proc p = {0};
    p.path = path;
    p.pid = (int)h->pid;
    p.exe = h->exe;
    const struct connleak_raw_record *rec = map;
    read_blobs(&p, rec, nslots);
    replay(r, &p, rec, nslots);
    /* lost events are counted in the header in place (older recorders wrote a LOST record at exit) */
    if (h->lost > p.lost)
        p.lost = h->lost;
    /* what is left needs only the blobs' copies: the journal's pages need not stay while findings are made */
    munmap(map, (size_t)st.st_size);
    report_open(r, &p, &p.open, 0);
    /* a pool's own connect records stand in only where no wrapper saw the connection */
    if (!p.wrapper_events) {
        report_open(r, &p, &p.pool_open, 0);
        r->summary.connects += p.pool_connects;
        r->summary.closes += p.pool_closes;
    } else {
        clk_map_free(&p.pool_open);
    }
    report_open(r, &p, &p.checkouts, 1);
    r->summary.processes++;
    note_own_copies(r, &p);
    note_go(r, &p);
    if (p.corrupt)
        clk_report_note(r, CLK_NOTE_INCOMPLETE, "%s: %llu corrupt record%s skipped", path, (unsigned long long)p.corrupt,
                        p.corrupt == 1 ? "" : "s");
    if (p.dangling)
        clk_report_note(r, CLK_NOTE_INCOMPLETE, "%s: %llu reference%s to stacks or strings it does not hold (damaged, or cut short by a "
                        "crash): findings show no stack or target there", path, (unsigned long long)p.dangling,
                        p.dangling == 1 ? "" : "s");
    if (r->live && !p.exited && (kill(p.pid, 0) == 0 || errno == EPERM)) {
        const char *exe = string_of(&p, p.exe);
        clk_report_note(r, CLK_NOTE_INCOMPLETE, "process %d (%s) was still running when the report was made: what it does from now on "
                        "is not in it", p.pid, exe ? exe : "?");
    }
    if (p.lost)
        clk_report_note(r, CLK_NOTE_INCOMPLETE, "process %d lost %llu event%s (journal full: no room on its disk, or the 16 GiB limit); "
                        "a leak it shows may have been closed after that", p.pid, (unsigned long long)p.lost,
                        p.lost == 1 ? "" : "s");
    for (size_t i = 0; i < p.blobs.cap; i++) {
        struct blob *b = p.blobs.keys[i] ? p.blobs.vals[i] : NULL;
        if (b && b->frames_owned)
            free(b->stack.f);
    }
    clk_map_free(&p.blobs);
    /* the most connections this process had open at once (a pool's where no wrapper saw them) */
    const struct peak *k = p.wrapper_events ? &p.peak : &p.pool_peak;
    for (int i = 0; i < 3; i++)
        if (k->max[i] > r->summary.peak_open[i])
            r->summary.peak_open[i] = k->max[i];
    clk_map_free(&p.frames);
    while (p.chunks) {
        struct chunk *c = p.chunks;
        p.chunks = c->next;
        free(c);
    }
    free(p.modules);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int clk_load_raw(struct clk_report *r, const char *path)
{
    return load_raw(r, path, 0);
}

int clk_load_run_dir(struct clk_report *r, const char *dir, uint64_t only_run)
{
    DIR *d = opendir(dir);
    if (!d) {
        clk_err("cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    size_t sl = strlen(CONNLEAK_RAW_SUFFIX);
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > sl && strcmp(e->d_name + len - sl, CONNLEAK_RAW_SUFFIX) == 0) {
            names = clk_xrealloc(names, (n + 1) * sizeof *names);
            names[n] = clk_xmalloc(strlen(dir) + len + 2);
            sprintf(names[n++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    if (n > 1) /* names is NULL in an empty directory: qsort's base must not be */
        qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    uint64_t *runs = NULL; /* the distinct run ids of the journals read */
    size_t nruns = 0;
    struct timespec t0, last;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    last = t0;
    for (size_t i = 0; i < n; i++) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        /* long work says what it is doing, once a second after the first */
        if (!clk_quiet && now.tv_sec - t0.tv_sec >= 1 && now.tv_sec != last.tv_sec) {
            fprintf(stderr, "connleak: reading and symbolizing journals: %zu of %zu\n", i, n);
            last = now;
        }
        /* one bad journal is reported; the others still are */
        loaded_one = 0;
        if (load_raw(r, names[i], only_run) != 0) {
            clk_report_note(r, CLK_NOTE_INCOMPLETE, "%s (not read; the other journals are)", load_error);
            rc = 1;
        } else if (loaded_one) {
            size_t k = 0;
            while (k < nruns && runs[k] != loaded_run_id)
                k++;
            if (k == nruns) {
                runs = clk_xrealloc(runs, (nruns + 1) * sizeof *runs);
                runs[nruns++] = loaded_run_id;
            }
        }
        free(names[i]);
    }
    free(names);
    /* a --keep-raw directory several runs wrote to: its report adds them up, and says so */
    if (nruns > 1) {
        struct clk_buf b = {0};
        for (size_t k = 0; k < nruns && k < 20; k++) {
            if (runs[k])
                clk_buf_printf(&b, "%s%016llx", k ? ", " : "", (unsigned long long)runs[k]);
            else
                clk_buf_printf(&b, "%s(journals without a run id)", k ? ", " : "");
        }
        if (nruns > 20)
            clk_buf_printf(&b, ", ... (%zu in all)", nruns);
        clk_report_note(r, CLK_NOTE_INFO, "%s: merged %zu runs: %s (the journals of every run that kept them "
                        "there; clear the directory before a run, or keep one per run, to report one)", dir, nruns, b.p);
        free(b.p);
    }
    free(runs);
    return rc;
}
