/* dlclose.c — the preloaded dlclose: the wrappers' global copies are forgotten when a library may be unloaded (preloaded library only).
 *
 * The fast path of a wrapper calls the function its family's global copy
 * holds (dlsym(RTLD_NEXT)'s answer, real.c) without asking the loader again.
 * That function may be in a library a program dlopen()ed RTLD_GLOBAL and then
 * dlclose()s; loaded again it lands at another address, and the old pointer
 * points at nothing. So every dlclose forgets the global copies, before the
 * unload and again after it (a lookup racing with it may have found the dying
 * copy): the next call of each wrapper looks them up again. The copies cached
 * per calling object are stamped with the loader's count of loads and unloads
 * and need nothing from here. glibc's dlclose does not depend on its caller,
 * so a plain call passes it on. The recorder's own probes (real.c's
 * dlopen(RTLD_NOLOAD) handles, which never unload anything) forget nothing. */
#include <dlfcn.h>

#include "recorder.h"

static const struct clk_wrapped *const tables[] = {clk_sqlite_wrapped, clk_pq_wrapped};

static void forget_all(void)
{
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        clk_real_forget(tables[t][0].family);
}

__attribute__((visibility("default"))) int dlclose(void *handle)
{
    static int (*next)(void *);
    int (*f)(void *) = (int (*)(void *))__atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (!f) {
        clk_real_depth++;
        f = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
        clk_real_depth--;
        if (!f)
            return -1; /* no glibc dlclose to call: nothing is unloaded */
        __atomic_store_n(&next, f, __ATOMIC_RELEASE);
    }
    int ours = clk_real_depth;
    if (!ours)
        forget_all();
    int rc = f(handle);
    if (!ours)
        forget_all();
    return rc;
}
