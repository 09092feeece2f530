/* threads.c — pthread_create interposed: each new thread keeps the stack that created it, which its opens carry ("thread created at"). */
#include <errno.h>
#include <pthread.h>

#include "recorder.h"

/* tracker.c's (it is in the linkable library too, where it stays 0): the
 * stack that created this thread; 0 on the main thread or when unknown. A
 * thread created by a thread keeps its own creator's stack only. */
CLK_HIDDEN extern __thread uint32_t clk_thread_stack __attribute__((tls_model("initial-exec")));

/* What a new thread needs, handed over in a slot of a static pool rather than
 * malloc'd: pthread_create may be called from inside the program's allocator
 * (jemalloc's background threads) with its locks held, and a slot is free
 * again as soon as the thread starts. No lock either, so a fork at any time
 * leaves nothing locked: a slot is claimed by a compare-and-swap. A fork while
 * a creation was in flight leaves that slot claimed in the child for good; with
 * every slot taken, threads start unwrapped (no creation stack), as they do
 * when our bookkeeping is busy on the creating thread. */
#define HANDOFFS 256
struct handoff {
    int used; /* atomic */
    uint32_t stack;
    void *(*start)(void *);
    void *arg;
};
static struct handoff pool[HANDOFFS];
static unsigned next_hint; /* atomic: where the next claim starts looking */

static struct handoff *claim(void)
{
    unsigned h = __atomic_fetch_add(&next_hint, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < HANDOFFS; i++) {
        struct handoff *s = &pool[(h + i) % HANDOFFS];
        int free_ = 0;
        if (!__atomic_load_n(&s->used, __ATOMIC_RELAXED) &&
            __atomic_compare_exchange_n(&s->used, &free_, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return s;
    }
    return NULL;
}

/* The new thread's first function: takes its record and jumps to the
 * program's start routine. A tail call (optimize: also in -O0 builds), so
 * no frame of ours sits at the bottom of the thread's stacks, and pthread_exit
 * and cancellation unwind exactly as without us: nothing of ours is left to
 * clean up by then. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O2", "optimize-sibling-calls")))
#endif
static void *thread_start(void *p)
{
    struct handoff *h = p;
    void *(*start)(void *) = h->start;
    void *arg = h->arg;
    clk_thread_stack = h->stack;
    __atomic_store_n(&h->used, 0, __ATOMIC_RELEASE);
    return start(arg);
}

/* Nonzero while this thread is in our own work below (start-up or a walk creating a thread:
 * that one is passed on as it is). */
static __thread int in_create __attribute__((tls_model("initial-exec")));

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static const char *const libc_libs[] = {"libc.so.6", "libpthread.so.0", NULL};

__attribute__((visibility("default"))) int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                                          void *(*start)(void *), void *arg)
{
    static void *real_slot;
    create_fn real = (create_fn)clk_real_cached(&real_slot, "pthread_create", libc_libs);
    if (!real)
        return EAGAIN; /* no libc's to call: cannot happen in a dynamically linked program */
    if (in_create)
        return real(thread, attr, start, arg);
    int saved = errno;
    in_create = 1;
    clk_ensure_init();
    /* called here, in the interposed function itself: clk_stack_here's cache is keyed by its caller */
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    struct handoff *h = stack ? claim() : NULL;
    in_create = 0;
    errno = saved;
    if (!h)
        return real(thread, attr, start, arg);
    h->stack = stack;
    h->start = start;
    h->arg = arg;
    int rc = real(thread, attr, thread_start, h);
    if (rc != 0) /* no thread: the record goes back (errno is pthread_create's own) */
        __atomic_store_n(&h->used, 0, __ATOMIC_RELEASE);
    return rc;
}
