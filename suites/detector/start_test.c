/* start_test.c — a command that cannot start (issue 15): its own one-line error and the shell's status (127 not found, 126 not executable), no report of nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* connleak run -- cmd in dir: status want, one line on stderr holding `says`, no report at all. */
static void assert_not_started(const char *dir, const char *cmd, int want, const char *says)
{
    char *json = clk_test_path(dir, "report.json");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--json", json, "--", cmd), ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), dir,
                  0, &p);
    cr_assert_eq(p.status, want, "%s: status %d, expected %d: %s", cmd, p.status, want, p.err);
    cr_assert_eq(clk_test_count_lines(p.err), 1, "%s: one line on stderr, got:\n%s", cmd, p.err);
    cr_assert(clk_test_contains(p.err, cmd) && clk_test_contains(p.err, says), "%s: %s", cmd, p.err);
    cr_assert(!clk_test_contains(p.err, "SUMMARY") && !clk_test_contains(p.err, "no process ran"),
              "%s: a report of nothing: %s", cmd, p.err);
    cr_assert(!clk_test_exists(json), "%s: a JSON report of nothing was written", cmd);
    clk_test_proc_free(&p);
    free(json);
}

Test(start, a_command_not_found_is_127_and_one_line, .timeout = 60)
{
    char *dir = clk_test_mkdtemp();
    assert_not_started(dir, "./no-such-program", 127, "command not found");
    assert_not_started(dir, "connleak-no-such-program-in-path", 127, "command not found");
    clk_test_rmtree(dir);
}

Test(start, a_file_that_is_not_executable_is_126_and_one_line, .timeout = 60)
{
    char *dir = clk_test_mkdtemp();
    char *f = clk_test_path(dir, "plain-file");
    cr_assert_eq(clk_test_write_file(f, "echo never\n", 11), 0);
    chmod(f, 0644);
    assert_not_started(dir, "./plain-file", 126, "Permission denied");
    /* its #! interpreter missing: the kernel says ENOENT for a file that exists */
    char *s = clk_test_path(dir, "script");
    cr_assert_eq(clk_test_write_file(s, "#!/nonexistent/interpreter\n", 27), 0);
    chmod(s, 0755);
    assert_not_started(dir, "./script", 127, "required file not found");
    clk_test_rmtree(dir);
}

Test(start, a_program_its_loader_gives_up_on_is_127_with_no_report, .timeout = 60)
{
    /* copied away from libfx_gone.so ($ORIGIN run path), the loader cannot find it (nor through
     * LD_LIBRARY_PATH, where meson test puts the fixtures' directory) */
    char *dir = clk_test_mkdtemp();
    char *copy = clk_test_path(dir, "fx_needs");
    size_t n;
    char *bytes = clk_test_read_file(clk_test_fixture("fx_needs"), &n);
    cr_assert_not_null(bytes);
    cr_assert_eq(clk_test_write_file(copy, bytes, n), 0);
    chmod(copy, 0755);
    char *json = clk_test_path(dir, "report.json");
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "run", "--json", json, "--", copy),
                  ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS", "LD_LIBRARY_PATH"), dir, 0, &p);
    cr_assert_eq(p.status, 127, "status %d: %s", p.status, p.err);
    cr_assert(clk_test_contains(p.err, "libfx_gone"), "the loader's own message: %s", p.err);
    cr_assert(clk_test_contains(p.err, "did not start (its dynamic loader gave up"), "%s", p.err);
    cr_assert(!clk_test_contains(p.err, "SUMMARY") && !clk_test_contains(p.err, "no process ran"), "%s", p.err);
    cr_assert(!clk_test_exists(json), "a JSON report of nothing was written");
    clk_test_proc_free(&p);
    /* in its place it runs, and is reported as usual */
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_needs", NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "needs done 1"), "%s", r.proc.out);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}
