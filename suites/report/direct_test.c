/* direct_test.c — direct preloading (LD_PRELOAD=libconnleak-preload.so PROGRAM, no CLI around it) prints the report
 * `connleak run` prints: the library hands its journal to the connleak CLI at exit (issue 14, "Direct mode parity");
 * without a CLI, its own raw report still names a double close as one; log_path=P writes P.PID per process. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

static const char *preload_var(void)
{
    static char v[4096];
    snprintf(v, sizeof v, "LD_PRELOAD=%s", clk_test_preload());
    return v;
}

/* Runs fx_direct under plain LD_PRELOAD with CONNLEAK_OPTIONS=options (NULL: unset) and extra
 * environment changes (one "K=V" or "K", or NULL). */
static int run_direct(const char *options, const char *extra, const char *const *args, clk_test_proc *p)
{
    char opts[4096];
    snprintf(opts, sizeof opts, "CONNLEAK_OPTIONS=%s", options ? options : "");
    const char *argv[8] = {FX_DIRECT};
    for (int i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    const char *env[] = {preload_var(), options ? opts : "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID",
                         extra, NULL};
    return clk_test_exec(argv, env, NULL, 0, p);
}

/* The line of `text` holding `needle` (a static copy; "" when none). */
static const char *line_with(const char *text, const char *needle)
{
    static char line[4096];
    line[0] = 0;
    const char *at = text ? strstr(text, needle) : NULL;
    if (!at)
        return line;
    const char *start = at;
    while (start > text && start[-1] != '\n')
        start--;
    size_t n = strcspn(start, "\n");
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), start);
    return line;
}

/* Does a frame line name `function` with fx_direct.c:LINE? */
static int frame_has_line(const char *text, const char *function)
{
    char needle[256];
    snprintf(needle, sizeof needle, " %s ", function);
    const char *l = line_with(text, needle);
    const char *file = strstr(l, "/fx_direct.c:");
    return l[0] && strstr(l, "    #") == l && file && file[13] >= '1' && file[13] <= '9';
}

/* `text` with every "(pid N" made "(pid P", for comparing two runs' reports. */
static char *without_pids(const char *text)
{
    text = text ? text : "";
    char *out = malloc(strlen(text) + 1);
    char *w = out;
    for (const char *r = text; *r;) {
        if (!strncmp(r, "(pid ", 5)) {
            memcpy(w, "(pid P", 6);
            w += 6;
            r += 5;
            while (*r >= '0' && *r <= '9')
                r++;
            continue;
        }
        *w++ = *r++;
    }
    *w = 0;
    return out;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    if (d)
        closedir(d);
    return n;
}

Test(direct, the_report_is_the_clis_symbolized_with_the_double_close_and_its_three_stacks, TIMEOUT)
{
    clk_test_proc p;
    run_direct(NULL, NULL, ARGS("leak-double", "3"), &p);
    /* the program's own exit status and stdout, untouched */
    cr_assert_eq(p.status, 3, "exit %d, want the program's own 3\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, "direct stdout line\n", "stdout changed: %s", p.out);
    const char *err = p.err;
    cr_assert(clk_test_contains(err, "==connleak==ERROR: connleak: 2 leaked connections or double closes"), "%s",
              clk_test_excerpt(err));
    cr_assert(clk_test_contains(err, "Leak of 1 sqlite connection to :memory:"), "%s", clk_test_excerpt(err));
    cr_assert(frame_has_line(err, "direct_open_leak"), "the opener with its file:line: %s", clk_test_excerpt(err));
    cr_assert(clk_test_contains(err, "Double close of a sqlite connection to :memory:"), "%s", clk_test_excerpt(err));
    cr_assert(!clk_test_contains(err, "not open"), "a double close is no close of something not open: %s",
              clk_test_excerpt(err));
    /* its three stacks, in the order the CLI prints them */
    const char *again = strstr(err, "closed again at:"), *first = again ? strstr(again, "first closed at:") : NULL,
               *opened = first ? strstr(first, "opened at:") : NULL;
    cr_assert(again && first && opened, "the three stacks: %s", clk_test_excerpt(err));
    cr_assert(frame_has_line(again, "direct_close_again") && strstr(again, "direct_close_again") < first,
              "closed again at: %s", clk_test_excerpt(err));
    cr_assert(frame_has_line(first, "direct_close_first") && strstr(first, "direct_close_first") < opened,
              "first closed at: %s", clk_test_excerpt(err));
    cr_assert(frame_has_line(opened, "direct_open_twice"), "opened at: %s", clk_test_excerpt(err));
    cr_assert(clk_test_contains(err, "SUMMARY: connleak: 1 leaked connection, 1 double close, 0 unknown closes"),
              "%s", clk_test_excerpt(err));
    cr_assert(!clk_test_contains(err, " ?? ") && !clk_test_contains(err, "#0 ?"), "unsymbolized frames: %s",
              clk_test_excerpt(err));
    /* the same report as `connleak run` prints, but for the pids */
    clk_test_proc r;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--", FX_DIRECT, "leak-double", "3"),
                  ARGS("CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID", "LD_PRELOAD"), NULL, 0, &r);
    cr_assert_eq(r.status, 3, "connleak run: exit %d\n%s", r.status, clk_test_excerpt(r.err));
    char *a = without_pids(p.err), *b = without_pids(r.err);
    cr_assert_str_eq(a, b, "direct:\n%s\n--- connleak run:\n%s", clk_test_excerpt(a), clk_test_excerpt(b));
    free(a);
    free(b);
    clk_test_proc_free(&r);
    clk_test_proc_free(&p);
}

Test(direct, exitcode_and_suppressions_go_by_the_clis_verdict, TIMEOUT)
{
    clk_test_proc p;
    run_direct("exitcode=9", NULL, ARGS("leak-double", "0"), &p);
    cr_assert_eq(p.status, 9, "exitcode=9 with findings: exit %d\n%s", p.status, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    /* everything suppressed: nothing fails, the program's own status stays */
    char *dir = clk_test_mkdtemp();
    char *supp = clk_test_path(dir, "supp.txt");
    const char rules[] = "leak:direct_open_leak\ndouble_close:direct_close_again\n";
    cr_assert_eq(clk_test_write_file(supp, rules, strlen(rules)), 0);
    char opts[4096];
    snprintf(opts, sizeof opts, "exitcode=9:suppressions=%s", supp);
    run_direct(opts, NULL, ARGS("leak-double", "0"), &p);
    cr_assert_eq(p.status, 0, "all suppressed: exit %d, want 0\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "2 suppressed"), "%s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* Without a CLI to hand it to, the library's own report: raw frames, and a double close called one. */
static void check_raw(const clk_test_proc *p, const char *why)
{
    cr_assert_eq(p->status, 3, "exit %d, want the program's own 3\n%s", p->status, clk_test_excerpt(p->err));
    cr_assert_str_eq(p->out, "direct stdout line\n", "stdout changed: %s", p->out);
    const char *err = p->err;
    cr_assert(clk_test_contains(err, "detected 1 leaked database connection, 1 double close"), "%s",
              clk_test_excerpt(err));
    cr_assert(clk_test_contains(err, "Double close of a sqlite connection to :memory:"), "%s", clk_test_excerpt(err));
    cr_assert(!clk_test_contains(err, "not open"), "%s", clk_test_excerpt(err));
    const char *again = strstr(err, "closed again at:\n    #0 0x"),
               *first = again ? strstr(again, "first closed at:\n    #0 0x") : NULL,
               *opened = first ? strstr(first, "opened at:\n    #0 0x") : NULL;
    cr_assert(again && first && opened, "the three raw stacks: %s", clk_test_excerpt(err));
    cr_assert(clk_test_contains(err, "SUMMARY: connleak: 1 leaked connection, 1 double close, 0 unknown closes"),
              "%s", clk_test_excerpt(err));
    if (why)
        cr_assert(clk_test_contains(line_with(err, "SUMMARY:"), why), "why not symbolized (%s): %s", why,
                  clk_test_excerpt(err));
}

Test(direct, without_a_cli_the_raw_report_still_names_the_double_close, TIMEOUT)
{
    /* the library alone in a directory of its own, and no connleak on PATH: nothing to find */
    char *dir = clk_test_mkdtemp();
    char *lib = clk_test_path(dir, "libconnleak-preload.so");
    size_t len;
    char *bytes = clk_test_read_file(clk_test_preload(), &len);
    cr_assert_not_null(bytes);
    cr_assert_eq(clk_test_write_file(lib, bytes, len), 0);
    char pre[4096];
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", lib);
    clk_test_proc p;
    clk_test_exec(ARGS(FX_DIRECT, "leak-double", "3"),
                  ARGS(pre, "PATH=/usr/bin:/bin", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID"), NULL, 0,
                  &p);
    check_raw(&p, "no connleak CLI beside this library or on PATH");
    clk_test_proc_free(&p);
    /* the same library finds the CLI on PATH */
    char *bin = clk_test_path(dir, "bin");
    cr_assert_eq(mkdir(bin, 0700), 0);
    char *cli = clk_test_path(bin, "connleak");
    cr_assert_eq(symlink(clk_test_cli(), cli), 0);
    char path[4096];
    snprintf(path, sizeof path, "PATH=%s:/usr/bin:/bin", bin);
    clk_test_exec(ARGS(FX_DIRECT, "leak-double", "3"),
                  ARGS(pre, path, "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID"), NULL, 0, &p);
    cr_assert_eq(p.status, 3, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(frame_has_line(p.err, "direct_open_leak"), "the CLI on PATH: %s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
    /* symbolizer= naming no program, a CLI that fails, and symbolize=0 */
    run_direct("symbolizer=/nonexistent/connleak", NULL, ARGS("leak-double", "3"), &p);
    check_raw(&p, "symbolizer=/nonexistent/connleak is not an executable file");
    clk_test_proc_free(&p);
    run_direct("symbolizer=/bin/false", NULL, ARGS("leak-double", "3"), &p);
    check_raw(&p, "failed with exit status 1");
    clk_test_proc_free(&p);
    run_direct("symbolize=0", NULL, ARGS("leak-double", "3"), &p);
    check_raw(&p, NULL);
    clk_test_proc_free(&p);
}

Test(direct, the_cli_runs_without_ld_preload_and_reads_no_program_descriptors, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *wrap = clk_test_path(dir, "wrap.sh");
    char script[8192];
    snprintf(script, sizeof script,
             "#!/bin/sh\necho \"wrapper: LD_PRELOAD=[$LD_PRELOAD] fds=[$(ls /proc/$$/fd | sort -n | tr '\\n' ' ')]\" "
             ">&2\nexec '%s' \"$@\"\n",
             clk_test_cli());
    cr_assert_eq(clk_test_write_file(wrap, script, strlen(script)), 0);
    cr_assert_eq(chmod(wrap, 0700), 0);
    char opts[4096];
    snprintf(opts, sizeof opts, "symbolizer=%s", wrap);
    clk_test_proc p;
    run_direct(opts, NULL, ARGS("leak-double", "3"), &p);
    cr_assert_eq(p.status, 3, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "wrapper: LD_PRELOAD=[]"), "%s", clk_test_excerpt(p.err));
    /* 0-2, the journal on 3, and the shell's own for $(ls): 4 and up are not the program's */
    cr_assert(clk_test_contains(line_with(p.err, "wrapper:"), "fds=[0 1 2 3 "), "%s", clk_test_excerpt(p.err));
    cr_assert(frame_has_line(p.err, "direct_close_again"), "%s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(direct, log_path_writes_one_file_per_process, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *base = clk_test_path(dir, "report");
    char opts[4096];
    snprintf(opts, sizeof opts, "log_path=%s", base);
    clk_test_proc p;
    run_direct(opts, NULL, ARGS("fork"), &p);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    long long parent = clk_test_stdout_int(p.out, "parent="), child = -1;
    const char *c = strstr(p.out, "child=");
    if (c)
        child = atoll(c + 6);
    cr_assert(parent > 0 && child > 0 && parent != child, "pids: %s", p.out);
    cr_assert_str_eq(p.err, "", "the reports went to stderr: %s", clk_test_excerpt(p.err));
    char name[4096];
    snprintf(name, sizeof name, "%s.%lld", base, parent);
    char *ptext = clk_test_read_file(name, NULL);
    snprintf(name, sizeof name, "%s.%lld", base, child);
    char *ctext = clk_test_read_file(name, NULL);
    cr_assert_not_null(ptext, "no %s.%lld (files: %d)", base, parent, count_files(dir));
    cr_assert_not_null(ctext, "no %s.%lld (files: %d)", base, child, count_files(dir));
    cr_assert(frame_has_line(ptext, "parent_open_leak") && !clk_test_contains(ptext, "child_open_leak"),
              "the parent's report: %s", clk_test_excerpt(ptext));
    cr_assert(frame_has_line(ctext, "child_open_leak") && !clk_test_contains(ctext, "parent_open_leak"),
              "the child's report: %s", clk_test_excerpt(ctext));
    cr_assert(clk_test_contains(ptext, "SUMMARY: connleak: 1 leaked connection,"), "%s", clk_test_excerpt(ptext));
    cr_assert(clk_test_contains(ctext, "SUMMARY: connleak: 1 leaked connection,"), "%s", clk_test_excerpt(ctext));
    cr_assert_eq(count_files(dir), 2, "two files, nothing else (no %s itself, no temporary file)", base);
    struct stat st;
    cr_assert_eq(stat(base, &st), -1, "%s itself was written", base);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

Test(direct, a_clean_run_says_nothing_and_no_journal_is_left_behind, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char tmpdir[4096];
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", dir);
    clk_test_proc p;
    run_direct(NULL, tmpdir, ARGS("clean"), &p);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, "clean done\n");
    cr_assert_str_eq(p.err, "", "a clean run printed: %s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    const char *modes[][2] = {{"leak-double", "0"}, {"quick-exit", NULL}, {"fork", NULL}};
    for (int i = 0; i < 3; i++) {
        run_direct(NULL, tmpdir, modes[i][1] ? ARGS(modes[i][0], modes[i][1]) : ARGS(modes[i][0]), &p);
        cr_assert_eq(p.status, 0, "%s: exit %d\n%s", modes[i][0], p.status, clk_test_excerpt(p.err));
        clk_test_proc_free(&p);
        cr_assert_eq(count_files(dir), 0, "%s left %d files in TMPDIR", modes[i][0], count_files(dir));
    }
    clk_test_rmtree(dir);
}

Test(direct, held_longer_than_lists_what_was_held_longer, TIMEOUT)
{
    clk_test_proc p;
    run_direct("held_longer_than=100ms", NULL, ARGS("held"), &p);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "(longer than 100 ms, then closed)"), "%s", clk_test_excerpt(p.err));
    cr_assert(frame_has_line(p.err, "direct_hold_slowly"), "%s", clk_test_excerpt(p.err));
    cr_assert(frame_has_line(p.err, "direct_open_leak"), "%s", clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "0 suppressed, 1 held longer than 100 ms;"), "the SUMMARY counts it:\n%s",
              clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}
