/* leaks.c — a journal for `connleak report` to chew on: LEAKS connections leaked from LEAKS distinct
 * stacks, plus connect+close pairs through one stack until EVENTS events were recorded in all.
 *
 *   leaks LEAKS EVENTS
 *
 * Events go through the tracker API (connleak_record, as a pool would) so that they are cheap and
 * the leaked connections cost no memory; the handles are made-up addresses. Leak i is recorded at
 * the end of a chain of calls, each fa or fb as the bits of i say: LEAKS distinct stacks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "connleak.h"

#define LEVELS 20

static volatile int sink;

static void leak(unsigned code)
{
    /* distinct, never-dereferenced, 16-byte aligned "connections" */
    const void *conn = (const void *)(uintptr_t)(0x10000000u + (uintptr_t)code * 16u);
    connleak_record(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_SQLITE, conn, "/srv/bench/leaks.db");
}

__attribute__((noinline, noclone)) static void fb(unsigned code, unsigned bits, int level);
__attribute__((noinline, noclone)) static void fa(unsigned code, unsigned bits, int level)
{
    if (level == 0)
        leak(code);
    else if (bits & 1)
        fa(code, bits >> 1, level - 1);
    else
        fb(code, bits >> 1, level - 1);
    sink += 1;
}

__attribute__((noinline, noclone)) static void fb(unsigned code, unsigned bits, int level)
{
    if (level == 0)
        leak(code);
    else if (bits & 1)
        fa(code, bits >> 1, level - 1);
    else
        fb(code, bits >> 1, level - 1);
    sink += 2;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: leaks LEAKS EVENTS\n");
        return 2;
    }
    long leaks = atol(argv[1]), events = atol(argv[2]);
    int levels = 0;
    while (levels < LEVELS && (1l << levels) < leaks)
        levels++;
    if (leaks < 1 || leaks > (1l << LEVELS) || events < leaks)
        return 2;
    for (long i = 0; i < leaks; i++)
        fa((unsigned)i, (unsigned)i, levels);
    static int filler;
    for (long i = leaks; i + 1 < events; i += 2) {
        connleak_record(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_SQLITE, &filler, "/srv/bench/leaks.db");
        connleak_record(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_SQLITE, &filler, "/srv/bench/leaks.db");
    }
    connleak_counts c;
    connleak_get_counts(&c);
    printf("%llu %llu %llu\n", (unsigned long long)c.connects, (unsigned long long)c.closes,
           (unsigned long long)c.open);
    return 0;
}
