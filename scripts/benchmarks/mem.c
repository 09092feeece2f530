/* mem.c — resident memory before and after PAIRS sqlite3_open(":memory:")+close pairs from STACKS distinct call stacks.
 *
 *   mem PAIRS STACKS
 *
 * Pair i runs at the end of a chain of LEVELS calls, each one fa or fb as the bits of i % STACKS say,
 * so there are exactly STACKS distinct stacks (STACKS <= 2^LEVELS). One pair from the same depth
 * runs before the first reading so that SQLite's own one-time allocations are in both readings.
 * Prints "VmRSS RssAnon RssFile" in KiB from /proc/self/status, before then after. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEVELS 16

static volatile int sink;

static void pair(void)
{
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        exit(1);
    sqlite3_close(db);
}

/* Two functions with different bodies (identical ones could be folded into one) that call each
 * other from two different call sites: both the frame's function and its return address encode
 * a bit. Each call is followed by work, so it is not a tail call. */
__attribute__((noinline, noclone)) static void fb(unsigned code, int level);
__attribute__((noinline, noclone)) static void fa(unsigned code, int level)
{
    if (level == 0)
        pair();
    else if (code & 1)
        fa(code >> 1, level - 1);
    else
        fb(code >> 1, level - 1);
    sink += 1;
}

__attribute__((noinline, noclone)) static void fb(unsigned code, int level)
{
    if (level == 0)
        pair();
    else if (code & 1)
        fa(code >> 1, level - 1);
    else
        fb(code >> 1, level - 1);
    sink += 2;
}

static void rss(long out[3])
{
    static const char *keys[3] = {"VmRSS:", "RssAnon:", "RssFile:"};
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    out[0] = out[1] = out[2] = -1;
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        for (int k = 0; k < 3; k++)
            if (!strncmp(line, keys[k], strlen(keys[k])))
                out[k] = atol(line + strlen(keys[k]));
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mem PAIRS STACKS\n");
        return 2;
    }
    long pairs = atol(argv[1]);
    unsigned stacks = (unsigned)atol(argv[2]);
    int levels = 0;
    while (levels < LEVELS && (1u << levels) < stacks)
        levels++;
    if (pairs < 1 || stacks < 1 || stacks > (1u << LEVELS))
        return 2;
    long before[3], after[3];
    fa(0, levels);
    rss(before);
    for (long i = 0; i < pairs; i++)
        fa((unsigned)(i % stacks), levels);
    rss(after);
    printf("%ld %ld %ld %ld %ld %ld\n", before[0], before[1], before[2], after[0], after[1], after[2]);
    return 0;
}
