/* fuzz_regress_test.c — replays fuzz/corpus and fuzz/regressions (every crash found) through the four parsers: no crash, sane results. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_report.h"

#ifndef FUZZ_DIR
#error "FUZZ_DIR (the source tree's fuzz/) must be defined"
#endif

static char current[4096]; /* the file being replayed, named if it crashes */
static volatile int replaying; /* inside a parser: an exit now is the parser's (e.g. out of memory) */

void clk_fuzz_fail(const char *what, const char *file, int line)
{
    replaying = 0;
    cr_assert_fail("%s: sanity check failed at %s:%d: %s", current, file, line, what);
    abort(); /* not reached */
}

static void say(const char *what)
{
    if (write(2, what, strlen(what)) < 0 || write(2, current, strlen(current)) < 0 ||
        write(2, "\n", 1) < 0) {
        /* nothing more to do */
    }
}

/* A crash is the test's failure; say which input caused it before dying. */
static void on_crash(int sig)
{
    say("fuzz_regress: crashed replaying ");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_exit_mid_parse(void)
{
    if (replaying)
        say("fuzz_regress: the parser exited the process (see its message above) replaying ");
}

static void watch(void)
{
    /* the parsers explain refusals on stderr ("connleak: ..."): left there, they are the context of a failure */
    atexit(on_exit_mid_parse);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], on_crash);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs body over every regular file in FUZZ_DIR/<kind>/<target>; returns how many. */
static size_t replay_dir(const char *kind, const char *target, int (*body)(const uint8_t *, size_t))
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s/%s", FUZZ_DIR, kind, target);
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* git keeps no empty directory: no regressions yet */
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, by_name);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(current, sizeof current, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(current, &st) == 0 && S_ISREG(st.st_mode)) {
            FILE *fp = fopen(current, "rb");
            cr_assert(fp, "cannot read %s", current);
            uint8_t *data = malloc((size_t)st.st_size + 1);
            size_t got = fread(data, 1, (size_t)st.st_size, fp);
            fclose(fp);
            cr_assert_eq(got, (size_t)st.st_size, "short read of %s", current);
            replaying = 1;
            int rc = body(data, got);
            replaying = 0;
            cr_assert(rc == 0 || rc == -1, "%s: the parser returned %d", current, rc);
            free(data);
            done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

static void replay(const char *target, int (*body)(const uint8_t *, size_t))
{
    watch();
    size_t seeds = replay_dir("corpus", target, body);
    cr_assert_gt(seeds, 0, "no seed corpus in %s/corpus/%s", FUZZ_DIR, target);
    replay_dir("regressions", target, body);
    clk_fuzz_scratch_remove();
}

Test(fuzz_regress, options)
{
    replay("options", clk_fuzz_options);
}

Test(fuzz_regress, suppressions)
{
    replay("suppressions", clk_fuzz_suppressions);
}

Test(fuzz_regress, json_report)
{
    replay("json_report", clk_fuzz_json_report);
}

Test(fuzz_regress, journal)
{
    replay("journal", clk_fuzz_journal);
}

/* The seeds recorded from real runs are read, not refused. */
Test(fuzz_regress, real_journals_accepted)
{
    watch();
    const char *seeds[] = {"clean.raw", "leak-open.raw", "double-close.raw", "pool.raw", "fork-child.raw"};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        snprintf(current, sizeof current, "%s/corpus/journal/%s", FUZZ_DIR, seeds[i]);
        FILE *fp = fopen(current, "rb");
        cr_assert(fp, "cannot read %s", current);
        uint8_t buf[65536];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        replaying = 1;
        int rc = clk_fuzz_journal(buf, n);
        replaying = 0;
        cr_assert_eq(rc, 0, "%s was refused (journal format changed? regenerate: fuzz/make_journal_seeds)", current);
    }
    clk_fuzz_scratch_remove();
}

/* A blob head with a garbage slot count is skipped as corrupt, and the events after it still count. */
Test(fuzz_regress, corrupt_blob_head_hides_no_event)
{
    watch();
    snprintf(current, sizeof current, "%s/regressions/journal/corrupt-blob-head-then-open.raw", FUZZ_DIR);
    struct clk_report r;
    clk_report_init(&r);
    replaying = 1;
    int rc = clk_load_raw(&r, current);
    replaying = 0;
    cr_assert_eq(rc, 0);
    clk_report_finish(&r);
    cr_assert_eq(r.summary.connects, 1);
    cr_assert_eq(r.summary.leaks, 1, "the open after the corrupt record was lost");
    int noted = 0;
    for (size_t i = 0; i < r.nnotes; i++)
        noted |= strstr(r.notes[i], "1 corrupt record skipped") != NULL;
    cr_assert(noted, "the corrupt record is not noted");
    fuzz_report_free(&r);
}
