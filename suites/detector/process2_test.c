/* process2_test.c — issue 13's promises about the host process: descriptor numbers and limit, where a direct report goes, a process that cannot journal, clone/clone3/_Fork/vfork/spawn children, descendants that drop the detector. */
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

static int has_note(const clk_test_run *r, const char *part)
{
    json_t *notes = json_object_get(r->report, "notes");
    for (size_t i = 0; i < json_array_size(notes); i++) {
        const char *n = json_string_value(json_array_get(notes, i));
        if (n && strstr(n, part))
            return 1;
    }
    return 0;
}

/* The fixture run plainly: the detector's variables removed. */
static void run_plain(const char *const *argv, clk_test_proc *p)
{
    clk_test_exec(argv, ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID"), NULL, 0, p);
}

static char *preload_env(void)
{
    char *s = malloc(strlen(clk_test_preload()) + 16);
    sprintf(s, "LD_PRELOAD=%s", clk_test_preload());
    return s;
}

/* ---- 1. descriptors out of the program's way ---- */

/* fx_newproc fds after `script`, plainly and under connleak run: the same next descriptor number. */
static void run_fds(const char *script, clk_test_proc *plain, clk_test_run *r)
{
    char *fx = clk_test_fixture("fx_newproc");
    run_plain(ARGS("sh", "-c", script, fx), plain);
    cr_assert_eq(plain->status, 0, "plain run: %s %s", plain->out, plain->err);
    cr_assert_gt(clk_test_stdout_int(plain->out, "fd="), 0, "%s", plain->out);
    clk_test_connleak(NULL, ARGS("sh", "-c", script, fx), NULL, r);
    clk_assert_status(r, 0);
    cr_assert_eq(clk_test_stdout_int(r->proc.out, "fd="), clk_test_stdout_int(plain->out, "fd="),
                 "under connleak run: %s (plain: %s)", r->proc.out, plain->out);
}

Test(process2, the_program_sees_the_descriptor_numbers_it_sees_alone, TIMEOUT)
{
    /* a shell that lowers the limit first keeps the count short (and leaves room above it) */
    const char *script = "ulimit -Sn 512 2>/dev/null; exec \"$0\" fds";
    clk_test_proc plain, direct;
    clk_test_run r;
    run_fds(script, &plain, &r);
    long long want = clk_test_stdout_int(plain.out, "fd=");
    clk_test_exec(ARGS("sh", "-c", script, clk_test_fixture("fx_newproc")),
                  ARGS(preload_env(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &direct);
    cr_assert_eq(direct.status, 0, "direct: %s %s", direct.out, direct.err);
    cr_assert_eq(clk_test_stdout_int(direct.out, "fd="), want, "preloaded directly: %s (plain: %lld)", direct.out, want);

    /* and as many as alone, when the hard limit leaves room above the soft one */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 512 + 8)) {
        cr_assert_eq(clk_test_stdout_int(r.proc.out, "opened="), clk_test_stdout_int(plain.out, "opened="),
                     "descriptors the program could open: %s (plain: %s)", r.proc.out, plain.out);
        cr_assert_eq(clk_test_stdout_int(direct.out, "opened="), clk_test_stdout_int(plain.out, "opened="),
                     "descriptors the program could open, preloaded: %s (plain: %s)", direct.out, plain.out);
    }
    clk_test_proc_free(&plain);
    clk_test_proc_free(&direct);
    clk_test_run_free(&r);
}

/* A hard limit with no room above it: the detector's few descriptors sit at its top. */
Test(process2, at_a_hard_limit_the_detector_takes_only_the_top_few, TIMEOUT)
{
    clk_test_proc plain;
    clk_test_run r;
    run_fds("ulimit -n 256 || exit 9; exec \"$0\" fds", &plain, &r);
    long long alone = clk_test_stdout_int(plain.out, "opened="), under = clk_test_stdout_int(r.proc.out, "opened=");
    cr_assert(under <= alone && under >= alone - 3, "opened %lld under the detector, %lld alone", under, alone);
    clk_test_proc_free(&plain);
    clk_test_run_free(&r);
}

/* The program closes the recorder's descriptors and puts its own file on
 * their numbers: the journal carries on (opened again by name) and never
 * writes into that file. */
Test(process2, a_program_that_closes_our_descriptors_keeps_its_files_and_its_report, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *own = clk_test_path(dir, "own.log");
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_newproc", ARGS("closefrom", own), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    /* the journal and libunwind's pipe, at the top of the limit or above it, all close-on-exec */
    cr_assert_geq(clk_test_stdout_int(r.proc.out, "high="), 3, "the recorder's descriptors: %s", r.proc.out);
    cr_assert_eq(clk_test_stdout_int(r.proc.out, "cloexec="), clk_test_stdout_int(r.proc.out, "high="),
                 "not all close-on-exec: %s", r.proc.out);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "connects", 20002);
    cr_assert_not_null(clk_test_find_leak(r.report, "sqlite", NULL, "descendant_leak"), CLK_CTX_FMT, CLK_CTX(&r));
    char *text = clk_test_read_file(own, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "the program's own line\n", "the program's file was written into (%zu bytes)",
                     strlen(text));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- 2. a direct report goes where stderr was at start ---- */

Test(process2, a_direct_report_never_lands_in_the_file_the_program_put_on_descriptor_2, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *own = clk_test_path(dir, "own.log");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_fixture("fx_newproc"), "stderr-reuse", own),
                  ARGS(preload_env(), "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "status %d: %s %s", p.status, p.out, p.err);
    char *text = clk_test_read_file(own, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "the program's own line\n", "the program's file holds something else: %s", text);
    cr_assert(clk_test_contains(p.err, "Leak of 1 sqlite connection"),
              "the report should be on the stderr the program started with: %s", clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}

/* ---- 3. a process that could not journal fails the run ---- */

static void check_unjournaled(const clk_test_run *r)
{
    cr_assert_eq(r->proc.status, 23, "exit %d, want 23: a leak that could not be journaled passed as clean\n%s",
                 r->proc.status, clk_test_excerpt(r->proc.err));
    cr_assert(clk_test_contains(r->proc.err, "detected 1 leaked database connection"),
              "the process's own report of the leak: %s", clk_test_excerpt(r->proc.err));
}

Test(process2, no_descriptor_for_a_journal_fails_the_run, TIMEOUT)
{
    /* ulimit -n 6; exec ./leaky, with only 0-2 open: no room for the journal */
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(clk_test_fixture("fx_newproc"), "limited", "6", "descendant"), NULL, &r);
    check_unjournaled(&r);
    cr_assert(clk_test_contains(r.proc.err, "cannot create a journal"), "%s", clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(process2, ulimit_6_in_a_shell_fails_the_run, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("sh", "-c", "ulimit -n 6; exec \"$0\" descendant", clk_test_fixture("fx_newproc")),
                      NULL, &r);
    cr_assert_eq(r.proc.status, 23, "exit %d\n%s", r.proc.status, clk_test_excerpt(r.proc.err));
    clk_test_run_free(&r);
}

Test(process2, a_refused_run_directory_under_connleak_run_fails_the_run, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *open_dir = clk_test_path(dir, "open");
    cr_assert_eq(mkdir(open_dir, 0700), 0);
    cr_assert_eq(chmod(open_dir, 0777), 0);
    char *var = malloc(strlen(open_dir) + 32);
    sprintf(var, "CONNLEAK_RUN_DIR=%s", open_dir);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("env", var, clk_test_fixture("fx_newproc"), "descendant"), NULL, &r);
    check_unjournaled(&r);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

/* ---- 4. every way a process comes to be ---- */

static void check_new_process(const char *how, const char *end)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_newproc", ARGS("new", how, end), &r);
    if (clk_test_contains(r.proc.out, "clone3 unsupported")) {
        clk_test_run_free(&r);
        cr_skip_test("clone3 is not supported here");
    }
    cr_assert(clk_test_contains(r.proc.out, "child status=exit 0"), "%s/%s: the child failed: %s %s", how, end,
              r.proc.out, clk_test_excerpt(r.proc.err));
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long child = clk_test_stdout_int(r.proc.out, "child=");
    long long parent = clk_test_stdout_int(r.proc.out, "parent=");
    cr_assert(child > 0 && parent > 0, "%s", r.proc.out);
    clk_assert_summary(&r, "processes", 2);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_leaks_naming(&r, "child_open_leaked", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "child_open_leaked");
    cr_assert(clk_test_pids_contain(leak, child), "%s/%s: the leak is the child's (%lld)" CLK_CTX_FMT, how, end,
              child, CLK_CTX(&r));
    cr_assert(!clk_test_pids_contain(leak, parent), "%s/%s: not the parent's" CLK_CTX_FMT, how, end, CLK_CTX(&r));
    cr_assert_null(clk_test_find_leak(r.report, NULL, NULL, "parent_open_inherited"),
                   "%s/%s: the inherited connection was reported" CLK_CTX_FMT, how, end, CLK_CTX(&r));
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
}

Test(process2, clone_child_exit, TIMEOUT) { check_new_process("clone", "exit"); }
Test(process2, clone_child__exit, TIMEOUT) { check_new_process("clone", "_exit"); }
Test(process2, clone3_child_exit, TIMEOUT) { check_new_process("clone3", "exit"); }
Test(process2, clone3_child__exit, TIMEOUT) { check_new_process("clone3", "_exit"); }
Test(process2, raw_clone_child_exit, TIMEOUT) { check_new_process("clone-raw", "exit"); }
Test(process2, raw_clone_child__exit, TIMEOUT) { check_new_process("clone-raw", "_exit"); }
Test(process2, _Fork_child_exit, TIMEOUT) { check_new_process("_Fork", "exit"); }

/* vfork and posix_spawn start the fixture again: its own leak, its own journal */
static void check_started(const char *how)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_newproc", ARGS("start", how), &r);
    cr_assert(clk_test_contains(r.proc.out, "child status=exit 0"), "%s: %s", how, r.proc.out);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long pid = clk_test_stdout_int(r.proc.out, "pid=");
    clk_assert_summary(&r, "processes", 2);
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, "descendant_leak");
    cr_assert(clk_test_pids_contain(leak, pid), "%s: the leak is the child's (%lld)" CLK_CTX_FMT, how, pid,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(process2, vfork_exec_child, TIMEOUT) { check_started("vfork"); }
Test(process2, posix_spawn_child, TIMEOUT) { check_started("posix_spawn"); }

/* ---- 5. descendants that drop the detector keep it ---- */

static void check_kept(const char *const *cmd, const char *what)
{
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    long long pid = clk_test_stdout_int(r.proc.out, "pid=");
    cr_assert_gt(pid, 0, "%s: the descendant did not run: %s %s", what, r.proc.out, clk_test_excerpt(r.proc.err));
    clk_assert_summary(&r, "leaks", 1);
    json_t *leak = clk_test_find_leak(r.report, "sqlite", ":memory:", "descendant_leak");
    cr_assert_not_null(leak, "%s: the descendant's leak is missing" CLK_CTX_FMT, what, CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(leak, pid), "%s: pid %lld" CLK_CTX_FMT, what, pid, CLK_CTX(&r));
    cr_assert(has_note(&r, "the detector put it back"), "%s: no note says the detector was put back" CLK_CTX_FMT, what,
              CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(process2, env_i_keeps_the_detector, TIMEOUT)
{
    check_kept(ARGS("env", "-i", clk_test_fixture("fx_newproc"), "descendant"), "env -i");
}

Test(process2, env_ld_preload_other_keeps_the_detector, TIMEOUT)
{
    check_kept(ARGS("env", "LD_PRELOAD=libm.so.6", clk_test_fixture("fx_newproc"), "descendant"),
               "env LD_PRELOAD=other");
}

Test(process2, unset_ld_preload_keeps_the_detector, TIMEOUT)
{
    check_kept(ARGS("sh", "-c", "unset LD_PRELOAD; \"$0\" descendant", clk_test_fixture("fx_newproc")),
               "unset LD_PRELOAD");
}

static void check_drop(const char *how)
{
    check_kept(ARGS(clk_test_fixture("fx_newproc"), "drop", how), how);
}

Test(process2, execve_empty_environment, TIMEOUT) { check_drop("execve-empty"); }
Test(process2, execve_other_preload, TIMEOUT) { check_drop("execve-other"); }
Test(process2, execle_empty_environment, TIMEOUT) { check_drop("execle"); }
Test(process2, execvp_after_unsetenv, TIMEOUT) { check_drop("execvp-unset"); }
Test(process2, vfork_execve_empty_environment, TIMEOUT) { check_drop("vfork-execve"); }
Test(process2, posix_spawn_empty_environment, TIMEOUT) { check_drop("posix_spawn-empty"); }
Test(process2, posix_spawnp_empty_environment, TIMEOUT) { check_drop("posix_spawnp-empty"); }
Test(process2, system_after_unsetenv, TIMEOUT) { check_drop("system-unset"); }
Test(process2, popen_after_unsetenv, TIMEOUT) { check_drop("popen-unset"); }

/* Not put back: without follow_children, for a set-uid target, or without connleak run. */
Test(process2, no_follow_children_lets_a_descendant_go, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(ARGS("--no-follow-children"), ARGS("env", "-i", clk_test_fixture("fx_newproc"), "descendant"),
                      NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert_gt(clk_test_stdout_int(r.proc.out, "pid="), 0, "%s", r.proc.out);
    clk_assert_summary(&r, "leaks", 0);
    clk_test_run_free(&r);
}

Test(process2, a_set_uid_target_is_left_alone, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *copy = clk_test_path(dir, "fx_setuid");
    size_t len;
    char *bytes = clk_test_read_file(clk_test_fixture("fx_newproc"), &len);
    cr_assert_not_null(bytes);
    cr_assert_eq(clk_test_write_file(copy, bytes, len), 0);
    cr_assert_eq(chmod(copy, 04755), 0);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("env", "-i", copy, "descendant"), NULL, &r);
    clk_assert_report(&r);
    cr_assert_gt(clk_test_stdout_int(r.proc.out, "pid="), 0, "%s %s", r.proc.out, clk_test_excerpt(r.proc.err));
    clk_assert_summary(&r, "leaks", 0);
    cr_assert(!has_note(&r, "the detector put it back"), "a set-uid program got the detector" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(process2, direct_preloading_puts_nothing_back, TIMEOUT)
{
    clk_test_proc p;
    clk_test_exec(ARGS("env", "-i", clk_test_fixture("fx_newproc"), "descendant"),
                  ARGS(preload_env(), "CONNLEAK_RUN_DIR", "CONNLEAK_RUN_ID", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "%s %s", p.out, p.err);
    cr_assert(!clk_test_contains(p.err, "leaked"), "only `connleak run` follows a dropped detector: %s", p.err);
    clk_test_proc_free(&p);
}
