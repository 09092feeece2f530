/* pysqlite.c — Python's sqlite3 module: was a connection closed by the program's close() or by the deallocator?
 *
 * CPython's _sqlite3 closes a connection in two places: Connection.close (the
 * C function of the "close" method) and the object's deallocation
 * (connection_dealloc in 3.10 and 3.11; in 3.12 and 3.13 connection_finalize,
 * the type's tp_finalize, which connection_dealloc and the cyclic collector
 * call). Which one runs is told by the code the close is called from: the
 * frames of the sqlite3_close_v2 call that lie in the _sqlite3 module, innermost
 * first, reach the close method's function (the program called close(), however
 * it got there: c.close(), a bound method kept and called later, getattr,
 * contextlib's callbacks, atexit) or the deallocator's (the last reference
 * dropped, a cycle collected, the interpreter finalizing), before any other
 * code. Those functions are the module's own, found once from its data
 * without symbols (stripped builds too): the string "sqlite3.Connection" is
 * the name of the Connection type's PyType_Spec (every version since 3.10
 * makes its types from specs); the spec's slots name tp_dealloc, tp_finalize
 * and tp_methods, whose "close" entry names the method's function. The spec,
 * slot and method-table layouts are the stable ABI's. A function's extent is
 * its unwind entry's (libunwind, from .eh_frame).
 *
 * The object's reference count (0 in the deallocator) does not tell: since
 * 3.12 the deallocator closes from tp_finalize, where the object is resurrected
 * (count 1) or still referenced by its cycle; and from 3.11 on, _sqlite3 opens
 * into a local variable, so the open's sqlite3 ** does not point into the
 * object.
 *
 * Costs: an open from a Python interpreter asks the loader which object the
 * caller is (_dl_find_object: lock-free); the module is read once per process;
 * a close of a connection _sqlite3 opened walks up to 16 frames. Other
 * connections and programs pay nothing. All reads of the module go through
 * clk_peek (fault-safe); nothing here allocates or takes a lock of ours. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>

#include "recorder.h"

enum { MOD_UNSEEN = 0, MOD_READING = 1, MOD_READY = 2, MOD_UNUSABLE = 3 };

/* Written once by the thread that reads the module, published by state (release). */
static struct {
    int state;
    uintptr_t lo, hi;          /* the module's mapping */
    uintptr_t fin[2][2];       /* [start, end) of tp_dealloc's and tp_finalize's functions (0, 0: none) */
    uintptr_t close[2][2];     /* the close method's function, and the one its first instruction jumps to */
} mod;

#define PY_TP_DEALLOC 52 /* Include/typeslots.h: stable ABI */
#define PY_TP_METHODS 64
#define PY_TP_FINALIZE 80

struct seg {
    uintptr_t lo, hi;
    int writable;
};
struct segs {
    uintptr_t base;
    int n;
    struct seg s[8];
};

static int segs_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct segs *g = data;
    if (info->dlpi_addr != g->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && g->n < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_R))
            g->s[g->n++] = (struct seg){info->dlpi_addr + ph->p_vaddr, info->dlpi_addr + ph->p_vaddr + ph->p_memsz,
                                        (ph->p_flags & PF_W) != 0};
    }
    return 1;
}

static int in_mod(uintptr_t a)
{
    return a - mod.lo < mod.hi - mod.lo;
}

/* The function an address starts, from its unwind entry; 0 when it has none or does not start there. */
static int extent(uintptr_t fn, uintptr_t out[2])
{
    unw_proc_info_t pi;
    memset(&pi, 0, sizeof pi);
    if (!fn || !in_mod(fn) || unw_get_proc_info_by_ip(unw_local_addr_space, fn, &pi, NULL) != 0 ||
        pi.start_ip != fn || pi.end_ip <= fn)
        return 0;
    out[0] = pi.start_ip;
    out[1] = pi.end_ip;
    return 1;
}

/* A function whose first instruction (after an endbr64) is a jump: where it jumps (0: none). */
static uintptr_t jump_target(uintptr_t fn)
{
    unsigned char b[9];
    if (clk_peek((const void *)fn, b, sizeof b))
        return 0;
    int at = b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa ? 4 : 0;
    if (b[at] != 0xe9)
        return 0;
    int32_t rel;
    memcpy(&rel, b + at + 1, 4);
    return fn + (uintptr_t)at + 5 + (uintptr_t)(intptr_t)rel;
}

/* Is spec (the address of a word pointing at "sqlite3.Connection") the Connection type's PyType_Spec?
 * Then its functions go into mod. */
static int read_spec(uintptr_t spec)
{
    struct {
        uintptr_t name;
        int32_t basicsize, itemsize;
        uint32_t flags, pad;
        uintptr_t slots;
    } s;
    if (clk_peek((const void *)spec, &s, sizeof s) || s.basicsize < 32 || s.basicsize > 65536 || s.itemsize ||
        !in_mod(s.slots) || (s.slots & 7))
        return 0;
    uintptr_t dealloc = 0, finalize = 0, methods = 0;
    for (int i = 0; i < 64; i++) {
        struct {
            int32_t slot, pad;
            uintptr_t fn;
        } sl;
        if (clk_peek((const void *)(s.slots + 16 * (unsigned)i), &sl, sizeof sl))
            return 0;
        if (!sl.slot)
            break;
        if (sl.slot == PY_TP_DEALLOC)
            dealloc = sl.fn;
        else if (sl.slot == PY_TP_FINALIZE)
            finalize = sl.fn;
        else if (sl.slot == PY_TP_METHODS)
            methods = sl.fn;
    }
    if (!in_mod(dealloc) || !in_mod(methods))
        return 0;
    uintptr_t close = 0;
    for (int i = 0; i < 128 && !close; i++) {
        struct {
            uintptr_t name, meth;
            int32_t flags, pad;
            uintptr_t doc;
        } md;
        char name[6];
        if (clk_peek((const void *)(methods + 32 * (unsigned)i), &md, sizeof md) || !md.name)
            break;
        if (clk_peek((const void *)md.name, name, sizeof name) == 0 && !memcmp(name, "close", 6))
            close = md.meth;
    }
    if (!extent(dealloc, mod.fin[0]) || !extent(close, mod.close[0]))
        return 0;
    if (finalize)
        extent(finalize, mod.fin[1]); /* 3.12+ */
    extent(jump_target(close), mod.close[1]);
    return 1;
}

/* Reads the module (its loaded segments, in pages): the spec named "sqlite3.Connection". */
static int read_module(const struct segs *g)
{
    static const char want[] = "sqlite3.Connection"; /* with its NUL */
    uintptr_t names[4];
    int nn = 0;
    unsigned char buf[4096 + sizeof want];
    for (int i = 0; i < g->n; i++) {
        if (g->s[i].writable)
            continue;
        for (uintptr_t a = g->s[i].lo; a < g->s[i].hi && nn < 4; a += 4096) {
            size_t len = g->s[i].hi - a < sizeof buf ? g->s[i].hi - a : sizeof buf;
            if (len < sizeof want || clk_peek((const void *)a, buf, len))
                continue;
            for (size_t k = 0; k + sizeof want <= len && k < 4096 && nn < 4; k++)
                if (buf[k] == 's' && !memcmp(buf + k, want, sizeof want))
                    names[nn++] = a + k;
        }
    }
    for (int i = 0; i < g->n; i++) {
        if (!g->s[i].writable)
            continue;
        for (uintptr_t a = (g->s[i].lo + 7) & ~(uintptr_t)7; a < g->s[i].hi; a += 4096) {
            size_t len = g->s[i].hi - a < 4096 ? (g->s[i].hi - a) & ~(size_t)7 : 4096;
            if (!len || clk_peek((const void *)a, buf, len))
                continue;
            for (size_t k = 0; k < len; k += 8) {
                uintptr_t w;
                memcpy(&w, buf + k, 8);
                for (int j = 0; j < nn; j++)
                    if (w == names[j] && read_spec(a + k))
                        return 1;
            }
        }
    }
    return 0;
}

int clk_pysqlite_opener(void *ra)
{
    int st = __atomic_load_n(&mod.state, __ATOMIC_ACQUIRE);
    if (st == MOD_READY)
        return in_mod((uintptr_t)ra);
    if (st != MOD_UNSEEN)
        return 0;
    struct dl_find_object fo;
    if (_dl_find_object(ra, &fo) != 0 || !fo.dlfo_link_map || !fo.dlfo_link_map->l_name)
        return 0;
    const char *name = fo.dlfo_link_map->l_name, *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "_sqlite3.", 9))
        return 0;
    /* dl_iterate_phdr and libunwind's lookups: a fork waits (stack.c), and so never copies a reading
     * state no thread will finish; another thread meanwhile leaves its connection unmarked */
    int cs = clk_walk_begin();
    int ok = 0;
    if (__atomic_compare_exchange_n(&mod.state, &st, MOD_READING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        mod.lo = (uintptr_t)fo.dlfo_map_start;
        mod.hi = (uintptr_t)fo.dlfo_map_end;
        struct segs g = {.base = fo.dlfo_link_map->l_addr};
        dl_iterate_phdr(segs_cb, &g);
        ok = read_module(&g);
        __atomic_store_n(&mod.state, ok ? MOD_READY : MOD_UNUSABLE, __ATOMIC_RELEASE);
    }
    clk_walk_end(cs);
    return ok && in_mod((uintptr_t)ra);
}

static int in_range(const uintptr_t r[2], uintptr_t a)
{
    return a - r[0] < r[1] - r[0];
}

__attribute__((noinline)) uint16_t clk_pysqlite_verdict(void *ra)
{
    if (__atomic_load_n(&mod.state, __ATOMIC_ACQUIRE) != MOD_READY)
        return 0;
    void *ips[16];
    int cs = clk_walk_begin();
    int n = unw_backtrace(ips, 16);
    clk_walk_end(cs);
    int i = 0;
    while (i < n && ips[i] != ra)
        i++;
    if (i == n) { /* the walk did not reach the caller: the innermost frame alone */
        ips[0] = ra;
        i = 0;
        n = 1;
    }
    for (int k = i; k < n && k < i + 8; k++) {
        uintptr_t a = (uintptr_t)ips[k] - 1; /* a return address: the call is before it */
        if (!in_mod(a))
            break; /* left the module: neither reached */
        if (in_range(mod.fin[0], a) || in_range(mod.fin[1], a))
            return CONNLEAK_RAWF_FINALIZER;
        if (in_range(mod.close[0], a) || in_range(mod.close[1], a))
            return CONNLEAK_RAWF_EXPLICIT;
    }
    return 0;
}
