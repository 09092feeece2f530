/* symbolize.c — module offsets to function, file and line with elfutils' libdw, each (module, offset) looked up once. */
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A CU's address range (cu_of: built on the first address libdwfl places wrongly). */
struct cu_range {
    Dwarf_Addr start, end, bias;
    Dwarf_Die *cu; /* libdwfl's, valid while the module is */
};

/* A function's code range within its CU (the function index: cu_functions). */
struct fn_range {
    Dwarf_Addr start, end;
    Dwarf_Die die;
};

struct cu_fns {
    struct fn_range *v; /* sorted by start */
    size_t n;
};

struct module_dw {
    Dwfl *dwfl;
    Dwfl_Module *mod;
    int failed;
    int ranges_built;
    struct cu_range *ranges; /* sorted by start */
    size_t nranges;
    struct clk_map fns; /* CU die (libdwfl's, stable) -> cu_fns */
};

struct resolved {
    const char *function, *file;
    int line;
};

static struct clk_map modules; /* interned path -> module_dw */
static struct clk_map frames;  /* hash(path, offset) -> resolved (chained by exact check below) */

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

/* Each module is reported at bias 0, so its addresses are the file's own:
 * exactly what the journal's offsets are (return address minus load bias). */
static struct module_dw *module_for(const char *path)
{
    void **slot = clk_map_slot(&modules, (uint64_t)(uintptr_t)path, 1);
    if (*slot)
        return *slot;
    struct module_dw *m = clk_xcalloc(1, sizeof *m);
    *slot = m;
    m->dwfl = dwfl_begin(&callbacks);
    if (m->dwfl) {
        dwfl_report_begin(m->dwfl);
        m->mod = dwfl_report_elf(m->dwfl, clk_basename(path), path, -1, 0, false);
        dwfl_report_end(m->dwfl, NULL, NULL);
    }
    if (!m->mod)
        m->failed = 1;
    return m;
}

/* C++ names (and Rust's legacy ones) are mangled in the symbol table and in DW_AT_linkage_name
 * ("_ZN5Store4openEv"): shown demangled ("Store::open()") by __cxa_demangle, taken from
 * libstdc++.so.6 when the first such name comes (always there on Debian: apt needs it), so the CLI
 * links nothing new. Without it a name stays as it is. Returns an interned name. */
typedef char *(*demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);

static const char *demangled(const char *name)
{
    static demangle_fn fn;
    static int tried;
    if (!name || name[0] != '_' || name[1] != 'Z')
        return name ? clk_intern(name) : NULL;
    if (!tried) {
        tried = 1;
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
        fn = h ? (demangle_fn)dlsym(h, "__cxa_demangle") : NULL;
    }
    int status = -1;
    char *d = fn ? fn(name, NULL, NULL, &status) : NULL;
    const char *out = clk_intern(status == 0 && d ? d : name);
    free(d);
    return out;
}

/* A function DIE's name: its linkage name demangled (qualified, with its parameters: C++), else
 * its plain name (C, or no demangler). Through DW_AT_abstract_origin and DW_AT_specification. */
static const char *die_name(Dwarf_Die *die)
{
    Dwarf_Attribute a;
    const char *ln = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
    if (!ln)
        ln = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a));
    const char *d = ln ? demangled(ln) : NULL;
    if (d && d[0] != '_') /* demangled: "_Z..." came back as it was otherwise */
        return d;
    const char *dn = dwarf_diename(die);
    return dn ? clk_intern(dn) : d;
}

/* 1: the CU's own ranges (low_pc/high_pc or DW_AT_ranges) hold a; 0: they do not; -1: it has none. */
static int cu_holds(Dwarf_Die *cu, Dwarf_Addr a)
{
    Dwarf_Addr base, start, end;
    ptrdiff_t off = 0;
    int any = 0;
    while ((off = dwarf_ranges(cu, off, &base, &start, &end)) > 0) {
        any = 1;
        if (a >= start && a < end)
            return 1;
    }
    return any ? 0 : -1;
}

static int by_range_start(const void *a, const void *b)
{
    const struct cu_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Every CU's own ranges, once per module, sorted: a lookup is then a binary search. */
static void build_ranges(struct module_dw *m)
{
    m->ranges_built = 1;
    size_t cap = 0;
    Dwarf_Die *c = NULL;
    Dwarf_Addr bias;
    while ((c = dwfl_module_nextcu(m->mod, c, &bias))) {
        Dwarf_Addr base, start, end;
        ptrdiff_t off = 0;
        while ((off = dwarf_ranges(c, off, &base, &start, &end)) > 0) {
            if (start >= end)
                continue;
            if (m->nranges == cap) {
                cap = cap ? cap * 2 : 64;
                m->ranges = clk_xrealloc(m->ranges, cap * sizeof *m->ranges);
            }
            m->ranges[m->nranges++] = (struct cu_range){start, end, bias, c};
        }
    }
    if (m->nranges > 1)
        qsort(m->ranges, m->nranges, sizeof *m->ranges, by_range_start);
}

/* The CU an address lies in. libdwfl finds it through .debug_aranges and counts an address in a
 * gap between two CUs' entries as the first one's: code whose CU has no entry there (an assembly
 * object without .debug_aranges) then gets no line, or the first CU's lines where its line table
 * runs on (likely how a cgo program's runtime.asmcgocall, Go's own code beside gcc's objects, came
 * out at runtime/cgo/gcc_mmap.c:37 instead of runtime/asm_amd64.s). So its answer is checked
 * against the CU's own ranges, and when they do not hold the address, the CU whose ranges do is
 * looked up. *trusted: libdwfl's answer stands (its line lookup may be used). */
static Dwarf_Die *cu_of(struct module_dw *m, Dwarf_Addr addr, Dwarf_Addr *bias, int *trusted)
{
    Dwarf_Die *cu = dwfl_module_addrdie(m->mod, addr, bias);
    *trusted = cu && cu_holds(cu, addr - *bias) != 0;
    if (*trusted)
        return cu;
    if (!m->ranges_built)
        build_ranges(m);
    /* the last range starting at or below addr (ranges of one CU do not overlap another's) */
    size_t lo = 0, hi = m->nranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->ranges[mid].start + m->ranges[mid].bias <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo && addr < m->ranges[lo - 1].end + m->ranges[lo - 1].bias) {
        *bias = m->ranges[lo - 1].bias;
        return m->ranges[lo - 1].cu;
    }
    return NULL;
}

static int by_fn_start(const void *a, const void *b)
{
    const struct fn_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The functions with code in a DIE's children, each range once. Namespaces are entered (C++
 * defines functions there); classes are not: a member function's code is a DIE at namespace
 * level (DW_AT_specification names its declaration in the class), and C's many struct types
 * would be walked member by member for nothing. */
static void collect_fns(Dwarf_Die *parent, struct cu_fns *f, size_t *cap)
{
    Dwarf_Die d;
    if (dwarf_child(parent, &d) != 0)
        return;
    do {
        int tag = dwarf_tag(&d);
        if (tag == DW_TAG_subprogram) {
            Dwarf_Addr base, start, end;
            ptrdiff_t off = 0;
            while ((off = dwarf_ranges(&d, off, &base, &start, &end)) > 0) {
                if (start >= end)
                    continue;
                if (f->n == *cap) {
                    *cap = *cap ? *cap * 2 : 64;
                    f->v = clk_xrealloc(f->v, *cap * sizeof *f->v);
                }
                f->v[f->n++] = (struct fn_range){start, end, d};
            }
        } else if (tag == DW_TAG_namespace) {
            collect_fns(&d, f, cap);
        }
    } while (dwarf_siblingof(&d, &d) == 0);
}

/* A CU's functions by address, built on its first lookup: dwarf_getscopes walks every top-level
 * DIE of the CU for each address (~4M instructions in CPython's ceval.c, whose CU declares
 * thousands), the index walks them once. */
static struct cu_fns *cu_functions(struct module_dw *m, Dwarf_Die *cu)
{
    void **slot = clk_map_slot(&m->fns, (uint64_t)(uintptr_t)cu, 1);
    if (!*slot) {
        struct cu_fns *f = clk_xcalloc(1, sizeof *f);
        size_t cap = 0;
        collect_fns(cu, f, &cap);
        if (f->n > 1)
            qsort(f->v, f->n, sizeof *f->v, by_fn_start);
        *slot = f;
    }
    return *slot;
}

/* The innermost inlined call at addr under a function's DIE (lexical blocks entered), or NULL. */
static int inlined_at(Dwarf_Die *parent, Dwarf_Addr addr, Dwarf_Die *out)
{
    Dwarf_Die d;
    if (dwarf_child(parent, &d) != 0)
        return 0;
    do {
        int tag = dwarf_tag(&d);
        if ((tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block) && dwarf_haspc(&d, addr) == 1) {
            if (inlined_at(&d, addr, out))
                return 1;
            if (tag == DW_TAG_inlined_subroutine) {
                *out = d;
                return 1;
            }
            return 0; /* a block holds it and nothing inlined in it does */
        }
    } while (dwarf_siblingof(&d, &d) == 0);
    return 0;
}

/* The name of the innermost function (inlined ones included) at a CU-relative address, or NULL. */
static const char *function_at(struct module_dw *m, Dwarf_Die *cu, Dwarf_Addr addr)
{
    struct cu_fns *f = cu_functions(m, cu);
    size_t lo = 0, hi = f->n;
    while (lo < hi) { /* the last range starting at or below addr */
        size_t mid = (lo + hi) / 2;
        if (f->v[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* nested functions (GNU C) overlap their parent: the innermost starts last */
    for (size_t i = lo; i-- > 0;) {
        if (addr >= f->v[i].end)
            continue;
        Dwarf_Die inl;
        const char *name = inlined_at(&f->v[i].die, addr, &inl) ? die_name(&inl) : NULL;
        return name ? name : die_name(&f->v[i].die);
    }
    return NULL;
}

/* A file name relative to the compiler's directory (meson's "../src/x.c") made absolute, interned. */
static const char *absolute(const char *file, const char *comp)
{
    char joined[8192], real[PATH_MAX];
    if (file[0] != '/' && comp && comp[0]) {
        snprintf(joined, sizeof joined, "%s/%s", comp, file);
        file = realpath(joined, real) ? real : joined;
    }
    return clk_intern(file);
}

/* A symbol table's name without its version ("__libc_start_main@@GLIBC_2.34"): the function's. */
static const char *unversioned(const char *name)
{
    static char buf[1024];
    const char *at = name ? strchr(name, '@') : NULL;
    if (!at || at == name || (size_t)(at - name) >= sizeof buf)
        return name;
    memcpy(buf, name, (size_t)(at - name));
    buf[at - name] = '\0';
    return buf;
}

/* The C runtime (libc, the loader): its frames are the program's entry points and the threads'
 * starts, whose lines are glibc's own sources that no reader of a report edits. They are named
 * from the symbol table alone: reading their lines meant inflating libc6-dbg's compressed DWARF,
 * ~200M instructions, 40% of a whole Python test suite's report and most of a small C one's. */
static int is_c_runtime(const char *path)
{
    const char *b = clk_basename(path);
    return !strncmp(b, "libc.so.", 8) || !strncmp(b, "ld-linux", 8) || !strncmp(b, "libpthread.so.", 14) ||
           !strncmp(b, "libdl.so.", 9);
}

static struct resolved lookup(const char *path, uint64_t offset)
{
    struct resolved out = {0};
    struct module_dw *m = module_for(path);
    if (m->failed)
        return out;
    /* a return address points after the call; the call's line is one byte back */
    Dwarf_Addr addr = offset ? offset - 1 : 0;
    Dwarf_Addr bias = 0;
    int trusted = 0, runtime = is_c_runtime(path);
    Dwarf_Die *cu = runtime ? NULL : cu_of(m, addr, &bias, &trusted);
    /* the innermost function (inlined ones included) names the frame best; the symbol table
     * (a linear search in libdwfl: ~2M instructions a lookup in libpython) only without one */
    const char *name = cu ? function_at(m, cu, addr - bias) : NULL;
    if (!name) {
        GElf_Sym sym;
        GElf_Off off;
        name = demangled(unversioned(dwfl_module_addrinfo(m->mod, addr, &off, &sym, NULL, NULL, NULL)));
    }
    out.function = name;
    if (runtime)
        return out;
    int lineno = 0;
    if (trusted) {
        Dwfl_Line *line = dwfl_module_getsrc(m->mod, addr);
        const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
        if (file)
            out.file = absolute(file, dwfl_line_comp_dir(line));
    } else if (cu) {
        /* libdwfl's line lookup would search the wrong CU: this one's own line table */
        Dwarf_Line *line = dwarf_getsrc_die(cu, addr - bias);
        const char *file = line ? dwarf_linesrc(line, NULL, NULL) : NULL;
        Dwarf_Attribute a;
        if (file && dwarf_lineno(line, &lineno) == 0)
            out.file = absolute(file, dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a)));
    }
    if (out.file)
        out.line = lineno;
    return out;
}

struct cached {
    struct cached *next;
    const char *path;
    uint64_t offset;
    struct resolved r;
};

void clk_symbolize(struct clk_frame *f)
{
    if (!f->module || !f->has_offset)
        return;
    uint64_t key = clk_fnv1a(clk_fnv1a(CLK_FNV_INIT, &f->module, sizeof f->module), &f->offset, sizeof f->offset);
    void **slot = clk_map_slot(&frames, key, 1);
    struct cached *c;
    for (c = *slot; c; c = c->next)
        if (c->path == f->module && c->offset == f->offset)
            break;
    if (!c) {
        c = clk_xcalloc(1, sizeof *c);
        c->path = f->module;
        c->offset = f->offset;
        c->r = lookup(f->module, f->offset);
        c->next = *slot;
        *slot = c;
    }
    f->function = c->r.function;
    f->file = c->r.file;
    f->line = c->r.line;
}

void clk_symbolize_end(void)
{
    for (size_t i = 0; i < modules.cap; i++) {
        struct module_dw *m = modules.keys[i] ? modules.vals[i] : NULL;
        if (m) {
            if (m->dwfl)
                dwfl_end(m->dwfl);
            free(m->ranges);
            for (size_t j = 0; j < m->fns.cap; j++)
                if (m->fns.keys[j] && m->fns.vals[j]) {
                    free(((struct cu_fns *)m->fns.vals[j])->v);
                    free(m->fns.vals[j]);
                }
            clk_map_free(&m->fns);
            free(m);
        }
    }
    clk_map_free(&modules);
}
