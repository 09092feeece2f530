/* util.c — the CLI's small helpers: checked allocation, interned strings, a u64 map, buffers, diagnostics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int clk_quiet;

static void out_of_memory(void)
{
    fputs("connleak: out of memory\n", stderr);
    exit(70);
}

void *clk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *clk_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *clk_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

char *clk_xstrdup(const char *s)
{
    return clk_xstrndup(s, strlen(s));
}

char *clk_xstrndup(const char *s, size_t n)
{
    char *p = clk_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

uint64_t clk_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

const char *clk_basename(const char *path)
{
    if (!path)
        return NULL;
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void clk_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("connleak: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void clk_buf_reserve(struct clk_buf *b, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = clk_xrealloc(b->p, b->cap);
    }
}

/* By hand: a frame number or pid per line, and printf's format parsing was most of a large report's cost. */
void clk_buf_int(struct clk_buf *b, long long v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    clk_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

void clk_buf_flush(struct clk_buf *b, FILE *out, size_t over)
{
    if (b->n > over) {
        fwrite(b->p, 1, b->n, out);
        b->n = 0;
    }
}

void clk_buf_printf(struct clk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        clk_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = clk_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    clk_buf_add(b, big, (size_t)n);
    free(big);
}

/* ---- u64 map ---- */

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static void **find(const struct clk_map *m, uint64_t key, int *found)
{
    size_t mask = m->cap - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            *found = 1;
            return &m->vals[i];
        }
        if (!m->keys[i]) {
            *found = 0;
            return &m->vals[i];
        }
    }
}

void **clk_map_slot(struct clk_map *m, uint64_t key, int create)
{
    if (!key)
        key = 1;
    int found;
    if (m->cap) {
        void **v = find(m, key, &found);
        if (found || !create)
            return found ? v : NULL;
    } else if (!create) {
        return NULL;
    }
    if ((m->used + 1) * 4 > m->cap * 3) {
        struct clk_map bigger = {0};
        bigger.cap = m->cap ? m->cap * 2 : 64;
        bigger.keys = clk_xcalloc(bigger.cap, sizeof *bigger.keys);
        bigger.vals = clk_xcalloc(bigger.cap, sizeof *bigger.vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                void **v = find(&bigger, m->keys[i], &found);
                *v = m->vals[i];
                bigger.keys[v - bigger.vals] = m->keys[i];
                bigger.used++;
            }
        clk_map_free(m);
        *m = bigger;
    }
    void **v = find(m, key, &found);
    m->keys[v - m->vals] = key;
    *v = NULL;
    m->used++;
    return v;
}

void *clk_map_get(const struct clk_map *m, uint64_t key)
{
    if (!key)
        key = 1;
    if (!m->cap)
        return NULL;
    int found;
    void **v = find(m, key, &found);
    return found ? *v : NULL;
}

void clk_map_free(struct clk_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- interned strings ---- */

struct istr {
    struct istr *next;
    char s[];
};
static struct clk_map interned;

const char *clk_intern(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    uint64_t h = clk_fnv1a(CLK_FNV_INIT, s, n);
    void **slot = clk_map_slot(&interned, h, 1);
    for (struct istr *e = *slot; e; e = e->next)
        if (strcmp(e->s, s) == 0)
            return e->s;
    struct istr *e = clk_xmalloc(sizeof *e + n + 1);
    memcpy(e->s, s, n + 1);
    e->next = *slot;
    *slot = e;
    return e->s;
}
