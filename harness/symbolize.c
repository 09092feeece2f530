/* symbolize.c — module offsets to function, file and line with elfutils' libdw, each (module, offset) looked up once. */
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

struct module_dw {
    Dwfl *dwfl;
    Dwfl_Module *mod;
    int failed;
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

static struct resolved lookup(const char *path, uint64_t offset)
{
    struct resolved out = {0};
    struct module_dw *m = module_for(path);
    if (m->failed)
        return out;
    /* a return address points after the call; the call's line is one byte back */
    Dwarf_Addr addr = offset ? offset - 1 : 0;
    GElf_Sym sym;
    GElf_Off off;
    const char *name = dwfl_module_addrinfo(m->mod, addr, &off, &sym, NULL, NULL, NULL);
    Dwarf_Addr bias;
    Dwarf_Die *cu = dwfl_module_addrdie(m->mod, addr, &bias);
    if (cu) {
        /* the innermost function (inlined ones included) names the frame best */
        Dwarf_Die *scopes = NULL;
        int n = dwarf_getscopes(cu, addr - bias, &scopes);
        for (int i = 0; i < n; i++) {
            int tag = dwarf_tag(&scopes[i]);
            if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) {
                const char *dn = dwarf_diename(&scopes[i]);
                if (dn) {
                    name = dn;
                    break;
                }
            }
        }
        free(scopes);
    }
    if (name)
        out.function = clk_intern(name);
    Dwfl_Line *line = dwfl_module_getsrc(m->mod, addr);
    if (line) {
        int lineno = 0;
        const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file) {
            char joined[8192], real[PATH_MAX];
            const char *comp = dwfl_line_comp_dir(line);
            /* names relative to the compiler's directory (meson's "../src/x.c") are made absolute */
            if (file[0] != '/' && comp && comp[0]) {
                snprintf(joined, sizeof joined, "%s/%s", comp, file);
                file = realpath(joined, real) ? real : joined;
            }
            out.file = clk_intern(file);
            out.line = lineno;
        }
    }
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
            free(m);
        }
    }
    clk_map_free(&modules);
}
