/* lock.h — the recorder's hot-path lock: one futex word, taken and released inline when nobody waits. */
#ifndef CONNLEAK_LOCK_H
#define CONNLEAK_LOCK_H

/* A pthread mutex costs ~60 instructions a lock and unlock through two calls;
 * every open and close takes a table shard's lock once or twice. This is the
 * classic three-state futex mutex (0 free, 1 held, 2 held with sleepers):
 * uncontended, one atomic each way. No owner is recorded, so fork's prepare
 * handler may take it and the child release it. */
typedef struct {
    int word;
} clk_lock_t;

__attribute__((visibility("hidden"))) void clk_lock_slow(clk_lock_t *l);
__attribute__((visibility("hidden"))) void clk_lock_wake(clk_lock_t *l);

static inline void clk_lock(clk_lock_t *l)
{
    int free_word = 0;
    if (!__atomic_compare_exchange_n(&l->word, &free_word, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        clk_lock_slow(l);
}

static inline void clk_unlock(clk_lock_t *l)
{
    if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)
        clk_lock_wake(l);
}

#endif
