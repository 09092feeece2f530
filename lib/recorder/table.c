/* table.c — the recorder's sharded hash map and its never-freed arena (no malloc anywhere). */
#include <string.h>
#include <sys/mman.h>

#include "recorder.h"

#define INITIAL_CAP 16u
/* arrays up to this size come from the arena (dense: a few pages for all shards), larger ones are mapped */
#define SMALL_BYTES 4096u

/* mmap, not malloc: the host's allocator may be the thing being called when we run. */
static void *map_zeroed(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

uint64_t clk_hash_bytes(const void *p, size_t n)
{
    /* word at a time (stacks are words), FNV-1a for the tail, then a final mix
     * so the low bits spread over shards and slots */
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 29;
    return k;
}

/* h = mix(key): its low bits pick the shard, the next ones the first slot probed */
static struct clk_slot *find(struct clk_shard *s, uint64_t key, uint64_t h)
{
    if (!s->slots)
        return NULL;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = (uint32_t)(h >> 8) & mask;; i = (i + 1) & mask) {
        if (s->slots[i].key == key)
            return &s->slots[i];
        if (s->slots[i].key == 0)
            return NULL;
    }
}

static struct clk_slot *insert(struct clk_shard *s, uint64_t key, uint64_t h)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = (uint32_t)(h >> 8) & mask;
    while (s->slots[i].key != 0)
        i = (i + 1) & mask;
    s->slots[i].key = key;
    memset(s->slots[i].v, 0, sizeof s->slots[i].v);
    s->used++;
    return &s->slots[i];
}

/* Doubles a shard: the new array is mapped and the old one unmapped with the lock released. */
static void grow(struct clk_shard *s)
{
    uint32_t seen_cap = s->cap;
    clk_unlock(&s->mu);
    uint32_t ncap = seen_cap ? seen_cap * 2 : INITIAL_CAP;
    size_t nbytes = (size_t)ncap * sizeof(struct clk_slot);
    struct clk_slot *fresh = nbytes <= SMALL_BYTES ? clk_arena_alloc(nbytes) : map_zeroed(nbytes);
    struct clk_slot *old = NULL;
    size_t old_bytes = 0;
    clk_lock(&s->mu);
    if (!fresh)
        return; /* out of memory: keep the full table; callers see the growth fail */
    if (s->cap != seen_cap) {
        /* another thread grew it first */
        clk_unlock(&s->mu);
        if (nbytes > SMALL_BYTES)
            munmap(fresh, nbytes);
        clk_lock(&s->mu);
        return;
    }
    old = s->slots;
    old_bytes = (size_t)s->cap * sizeof *old;
    uint32_t ocap = s->cap;
    s->slots = fresh;
    s->cap = ncap;
    s->used = 0;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i].key) {
            struct clk_slot *n = insert(s, old[i].key, mix(old[i].key));
            memcpy(n->v, old[i].v, sizeof n->v);
        }
    if (old && old_bytes > SMALL_BYTES) {
        clk_unlock(&s->mu);
        munmap(old, old_bytes);
        clk_lock(&s->mu);
    }
}

struct clk_slot *clk_table_lock(struct clk_table *t, uint64_t key, int create, struct clk_shard **held)
{
    uint64_t h = mix(key);
    struct clk_shard *s = &t->shard[h % CLK_SHARDS];
    clk_lock(&s->mu);
    for (;;) {
        struct clk_slot *slot = find(s, key, h);
        if (slot || !create) {
            if (!slot) {
                clk_unlock(&s->mu);
                *held = NULL;
                return NULL;
            }
            *held = s;
            return slot;
        }
        /* keep the load under 3/4 so probes stay short */
        if (s->slots && (s->used + 1) * 4 <= s->cap * 3) {
            *held = s;
            return insert(s, key, h);
        }
        uint32_t before = s->cap;
        grow(s);
        if (s->cap == before && (!s->slots || s->used + 1 >= s->cap)) {
            clk_unlock(&s->mu);
            *held = NULL;
            return NULL;
        }
    }
}

void clk_table_lock_all(struct clk_table *t)
{
    for (int i = 0; i < CLK_SHARDS; i++)
        clk_lock(&t->shard[i].mu);
}

void clk_table_unlock_all(struct clk_table *t)
{
    for (int i = CLK_SHARDS - 1; i >= 0; i--)
        clk_unlock(&t->shard[i].mu);
}

void clk_table_each(struct clk_table *t, void (*fn)(struct clk_slot *, void *), void *ctx)
{
    for (int i = 0; i < CLK_SHARDS; i++) {
        struct clk_shard *s = &t->shard[i];
        clk_lock(&s->mu);
        for (uint32_t j = 0; j < s->cap; j++)
            if (s->slots[j].key)
                fn(&s->slots[j], ctx);
        clk_unlock(&s->mu);
    }
}

void clk_table_clear(struct clk_table *t)
{
    for (int i = 0; i < CLK_SHARDS; i++) {
        struct clk_shard *s = &t->shard[i];
        clk_lock(&s->mu);
        if (s->slots)
            memset(s->slots, 0, (size_t)s->cap * sizeof *s->slots);
        s->used = 0;
        clk_unlock(&s->mu);
    }
}

/* ---- arena ---- */

#define ARENA_CHUNK (1u << 20)
static char *arena_cur;
static size_t arena_left;
static pthread_mutex_t arena_mu = PTHREAD_MUTEX_INITIALIZER;

void *clk_arena_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > ARENA_CHUNK)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&arena_mu);
        if (arena_left >= n) {
            void *p = arena_cur;
            arena_cur += n;
            arena_left -= n;
            pthread_mutex_unlock(&arena_mu);
            return p;
        }
        pthread_mutex_unlock(&arena_mu);
        /* map outside the lock; a racing thread's extra chunk is simply kept */
        char *chunk = map_zeroed(ARENA_CHUNK);
        if (!chunk)
            return NULL;
        pthread_mutex_lock(&arena_mu);
        if (arena_left < n) {
            arena_cur = chunk;
            arena_left = ARENA_CHUNK;
            chunk = NULL;
        }
        pthread_mutex_unlock(&arena_mu);
        if (chunk)
            munmap(chunk, ARENA_CHUNK);
    }
}

/* fork: the child must not inherit a lock held by a thread that does not exist there */
void clk_arena_prepare_fork(void) { pthread_mutex_lock(&arena_mu); }
void clk_arena_after_fork(void) { pthread_mutex_unlock(&arena_mu); }
