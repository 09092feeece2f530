/* real.c — finds the database libraries' own functions behind our wrappers, also in privately loaded copies. */
#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "recorder.h"

struct find_lib {
    const char *stem; /* "libsqlite3" */
    char path[4096];
};

static int find_lib_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct find_lib *f = data;
    const char *name = info->dlpi_name;
    if (!name || !name[0])
        return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(f->stem);
    if (strncmp(base, f->stem, n) == 0 && (base[n] == '.' || base[n] == '-')) {
        strncpy(f->path, name, sizeof f->path - 1);
        return 1;
    }
    return 0;
}

static void *not_ours(void *fn)
{
    return fn && !clk_addr_is_ours((uint64_t)(uintptr_t)fn) ? fn : NULL;
}

/* Nonzero on a thread while clk_real looks a function up: the preloaded
 * library's dlsym (dlsym.c) then passes every lookup straight to glibc's, so
 * the dlsym(handle, name) calls below find the library's own function, never
 * our wrapper, and never come back here. */
CLK_HIDDEN __thread int clk_real_depth __attribute__((tls_model("initial-exec")));

static void *lookup(const char *name, const char *const *libs);

void *clk_real(const char *name, const char *const *libs)
{
    clk_real_depth++;
    void *fn = lookup(name, libs);
    clk_real_depth--;
    /* a failed lookup of ours (RTLD_NEXT, a RTLD_NOLOAD probe) must not be what
     * the program's next dlerror() reports */
    dlerror();
    return fn;
}

/* dlsym(RTLD_NEXT) first, as an interposer should. A library dlopen()ed with
 * RTLD_LOCAL (Python's _sqlite3 pulls libsqlite3 in that way) is outside the
 * global scope, so then ask the loaded copy itself, by soname and then by any
 * loaded object whose name starts with the library's stem. */
static void *lookup(const char *name, const char *const *libs)
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
        struct find_lib f = {.stem = libs[0], .path = ""};
        char stem[64];
        /* the stem is the soname up to its first dot */
        strncpy(stem, libs[0], sizeof stem - 1);
        stem[sizeof stem - 1] = 0;
        char *dot = strchr(stem, '.');
        if (dot)
            *dot = 0;
        f.stem = stem;
        int cs = clk_walk_begin(); /* a fork waits for it (stack.c) */
        dl_iterate_phdr(find_lib_cb, &f);
        clk_walk_end(cs);
        if (f.path[0]) {
            void *h = dlopen(f.path, RTLD_NOLOAD | RTLD_LAZY);
            if (h) {
                fn = not_ours(dlsym(h, name));
                dlclose(h);
            }
        }
    }
    return fn;
}
