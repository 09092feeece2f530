/* dlsym.c — dlsym(handle, "sqlite3_open_v2") and the like hand back our wrapper, not the database library's own function (preloaded library only, x86-64 glibc).
 *
 * A program that dlopen()s libsqlite3 or libpq and looks an opener or closer up
 * on that handle would otherwise call the library directly: dlsym on a handle
 * searches that object's own scope, where no preloaded library is. So the
 * preloaded library exports a `dlsym` of its own:
 *
 *  - RTLD_DEFAULT (0) and RTLD_NEXT (-1) go to the next dlsym (glibc's) by a
 *    plain jump from the assembly stub below. glibc resolves both relative to
 *    the object its caller's return address lies in; a jump leaves that return
 *    address in place, so these lookups give exactly what they give without
 *    us, also for other interposers looking up their next function. One
 *    exception, asked first (clk_dlsym_route, given the caller's return
 *    address): a wrapped name that neither the global scope nor the caller's
 *    own defines, where glibc would find only our exported wrapper, is
 *    answered NULL, as without us (a program probing for SQLite must not be
 *    fooled).
 *  - A real handle goes to clk_dlsym_handle: when the name is one of the
 *    functions wrap_sqlite.c and wrap_libpq.c interpose and glibc's answer is
 *    the very function our wrapper calls wherever it is called from (the
 *    global copy's, or the only copy loaded: real.c), the answer is our
 *    wrapper. Any other answer, a copy of the library from another file or
 *    namespace included, is passed on unchanged.
 *
 * glibc's dlsym is found with dlvsym(RTLD_NEXT, "dlsym", version) on first use
 * (whichever thread, before our constructor or in a fork child alike: one
 * atomic pointer, no lock held, nothing allocated by us). Our own lookups stay
 * unchanged: real.c raises clk_real_depth while it looks up, and a
 * lookup made then is passed straight through, so it can never find a wrapper
 * or come back here. dlerror(): glibc's dlsym is called for the caller last
 * (again, after ours, on a handle), so what dlerror() then says is that call's.
 *
 * Not covered: a pointer to glibc's own dlsym (fetched with dlvsym, which
 * passes over our unversioned definition; dlvsym itself does not find the
 * databases' unversioned functions), a second interposer of a wrapped function
 * preloaded after us (the wrapper calls that one, so the library's own is
 * left alone), libraries that bind to glibc's dlsym themselves (RTLD_DEEPBIND)
 * and other architectures (there the preloaded library does not define dlsym).
 *
 * The names, wrappers and libraries come from wrap_sqlite.c's and wrap_libpq.c's tables. */
#include <dlfcn.h>
#include <string.h>

#include "recorder.h"

#if defined(__x86_64__) && defined(__GLIBC__) && !defined(CLK_LINKABLE)

typedef void *(*dlsym_fn)(void *, const char *);

/* The next dlsym (glibc's), read by the stub; NULL until first use. */
CLK_HIDDEN void *clk_dlsym_next;
CLK_HIDDEN void *clk_dlsym_handle(void *handle, const char *name);
CLK_HIDDEN void *clk_dlsym_route(const char *name, uintptr_t caller);
/* Our own stub's address (a hidden label on it): the next dlsym must not be us. */
CLK_HIDDEN extern char clk_dlsym_self[];

/* dlsym(handle, name): rdi = handle, rsi = name. */
__asm__(".pushsection .text\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        ".hidden clk_dlsym_self\n"
        ".p2align 4\n"
        "dlsym:\n"
        "clk_dlsym_self:\n"
        ".cfi_startproc\n"
        "endbr64\n"
        "cmpq $-1, %rdi\n" /* RTLD_NEXT */
        "je 1f\n"
        "testq %rdi, %rdi\n" /* RTLD_DEFAULT */
        "jne clk_dlsym_handle\n"
        "1:\n"
        "pushq %rdi\n" /* the arguments kept across the call */
        ".cfi_adjust_cfa_offset 8\n"
        "pushq %rsi\n"
        ".cfi_adjust_cfa_offset 8\n"
        "subq $8, %rsp\n" /* 16-byte alignment at the call */
        ".cfi_adjust_cfa_offset 8\n"
        "movq %rsi, %rdi\n"
        "movq 24(%rsp), %rsi\n" /* the caller's return address */
        "call clk_dlsym_route\n" /* glibc's dlsym, or NULL: answer NULL */
        "addq $8, %rsp\n"
        ".cfi_adjust_cfa_offset -8\n"
        "popq %rsi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "popq %rdi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "testq %rax, %rax\n"
        "je 2f\n"
        "jmp *%rax\n" /* same arguments, same return address */
        "2:\n"
        "xorl %eax, %eax\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size dlsym, .-dlsym\n"
        ".popsection\n");

static void *dlsym_resolve(void)
{
    void *f = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (!f || f == (void *)clk_dlsym_self)
        f = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (!f || f == (void *)clk_dlsym_self) {
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            clk_warn("connleak: glibc's dlsym not found: dlsym returns NULL in this process");
        return NULL;
    }
    __atomic_store_n(&clk_dlsym_next, f, __ATOMIC_RELEASE);
    return f;
}

/* The functions wrap_sqlite.c and wrap_libpq.c interpose: their tables (bind.c asks too). */
static const struct clk_wrapped *const tables[] = {clk_sqlite_wrapped, clk_pq_wrapped};

const struct clk_wrapped *clk_find_wrapped(const char *name)
{
    if (!name || !((name[0] == 's' && !strncmp(name, "sqlite3_", 8)) || (name[0] == 'P' && name[1] == 'Q')))
        return NULL;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const struct clk_wrapped *w = tables[t]; w->name; w++)
            if (!strcmp(name, w->name))
                return w;
    return NULL;
}

/* RTLD_DEFAULT and RTLD_NEXT: a program probing whether SQLite or libpq is
 * there (dlsym(RTLD_DEFAULT, "sqlite3_open_v2")) would find our exported
 * wrapper even with no such library in its reach (none at all, or one loaded
 * RTLD_LOCAL by someone else). Nonzero then: the stub answers NULL, and a
 * failed lookup of ours leaves the "undefined symbol" message that dlerror()
 * would give without us. */
static int absent(const char *name, uintptr_t caller, dlsym_fn next)
{
    const struct clk_wrapped *w = clk_real_depth ? NULL : clk_find_wrapped(name);
    if (!w || clk_real_reachable(w->family, w->index, caller))
        return 0;
    /* something before us in the global scope may define it (a program exporting
     * its own static copy): then the caller's lookup goes ahead unchanged */
    if (next(RTLD_DEFAULT, name) != w->wrapper)
        return 0;
    next(RTLD_NEXT, name); /* nothing after us either: sets dlerror()'s message */
    return 1;
}

/* Where the stub sends RTLD_DEFAULT and RTLD_NEXT: glibc's dlsym, or NULL
 * (no dlsym to go to, or a wrapped name with nothing to find). */
__attribute__((used)) void *clk_dlsym_route(const char *name, uintptr_t caller)
{
    dlsym_fn next = (dlsym_fn)__atomic_load_n(&clk_dlsym_next, __ATOMIC_ACQUIRE);
    if (!next && !(next = (dlsym_fn)dlsym_resolve()))
        return NULL;
    return absent(name, caller, next) ? NULL : (void *)next;
}

__attribute__((used)) void *clk_dlsym_handle(void *handle, const char *name)
{
    dlsym_fn next = (dlsym_fn)__atomic_load_n(&clk_dlsym_next, __ATOMIC_ACQUIRE);
    if (!next && !(next = (dlsym_fn)dlsym_resolve()))
        return NULL;
    const struct clk_wrapped *w = clk_real_depth ? NULL : clk_find_wrapped(name);
    void *f = next(handle, name);
    if (!w || !f)
        return f;
    /* the wrapper, wherever it is called from, would call f: hand out the wrapper */
    int wrap = clk_real_everyones(w->family, w->index, f);
    /* the caller's own lookup last: dlerror() then reports it, not ours */
    void *again = next(handle, name);
    return wrap && again == f ? w->wrapper : again;
}

#else
typedef int clk_dlsym_not_interposed; /* dlsym stays glibc's alone */
#endif
