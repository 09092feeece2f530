/* lock.c — the contended half of lock.h: a short spin, then sleep on the futex. */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"

/* Holders keep a shard for a few dozen instructions: a short spin usually
 * outlasts them without a system call. */
#define SPINS 64

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void clk_lock_slow(clk_lock_t *l)
{
    for (int i = 0; i < SPINS; i++) {
        relax();
        int free_word = 0;
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&l->word, &free_word, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
    }
    /* 2: whoever unlocks must wake a sleeper; a raw futex wait is no cancellation point */
    while (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) != 0)
        syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void clk_lock_wake(clk_lock_t *l)
{
    syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
