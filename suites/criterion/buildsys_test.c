/* buildsys_test.c — the README's build-system recipes on a throwaway project: `meson test --setup connleak`, CTest's add_test and a Makefile `check` fail on the leaking Criterion binary. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 240

/* A project directory holding subject.c (cr_subject's source: three leaking
 * tests, two clean ones) and the environment every command there runs with:
 * the built CLI first in PATH, as an installed `connleak` would be, and no
 * BXFI_MAP (BoxFort's worker mark, which this suite's own worker carries). */
struct project {
    char *dir;
    const char *env[4];
};

static void project_init(struct project *p)
{
    p->dir = clk_test_mkdtemp();
    char *src = clk_test_read_file(CRIT_SOURCE_DIR "/cr_subject.c", NULL);
    cr_assert_not_null(src, "cannot read cr_subject.c");
    clk_test_write_file(clk_test_path(p->dir, "subject.c"), src, strlen(src));
    char *cli = strdup(clk_test_cli());
    const char *path = getenv("PATH");
    char *env_path = malloc(strlen(cli) + strlen(path ? path : "") + 8);
    sprintf(env_path, "PATH=%s:%s", dirname(cli), path ? path : "/usr/bin:/bin");
    p->env[0] = env_path;
    p->env[1] = "BXFI_MAP";
    p->env[2] = "LD_PRELOAD";
    p->env[3] = NULL;
}

static void write_in(struct project *p, const char *name, const char *text)
{
    cr_assert_eq(clk_test_write_file(clk_test_path(p->dir, name), text, strlen(text)), 0, "write %s", name);
}

/* Runs argv in the project's directory; asserts the status when want >= 0. */
static void run_in(struct project *p, const char *const *argv, int want, clk_test_proc *out)
{
    clk_test_exec(argv, p->env, p->dir, 120, out);
    if (want >= 0)
        cr_assert_eq(out->status, want, "%s %s: exit %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s", argv[0],
                     argv[1] ? argv[1] : "", out->status, want, clk_test_excerpt(out->out),
                     clk_test_excerpt(out->err));
}

Test(buildsys, meson_test_setup_connleak_fails_on_the_leaking_binary, TIMEOUT)
{
    struct project p;
    project_init(&p);
    /* the README's snippet, verbatim */
    write_in(&p, "meson.build",
             "project('subject', 'c')\n"
             "subject = executable('subject', 'subject.c',\n"
             "  dependencies : [dependency('criterion'), dependency('sqlite3')])\n"
             "test('subject', subject)\n"
             "test('subject-clean', subject, args : ['--filter', '*/closes_connection'])\n"
             "connleak = find_program('connleak', required : false)   # contributors without it still build\n"
             "if connleak.found()\n"
             "  add_test_setup('connleak', exe_wrapper : [connleak, 'run', '--'])\n"
             "  add_test_setup('connleakci', exe_wrapper : [connleak, 'run',\n"
             "    '--keep-raw', meson.project_build_root() / 'connleak-raw', '--'])\n"
             "endif\n");
    clk_test_proc r;
    run_in(&p, ARGS("meson", "setup", "build"), 0, &r);
    clk_test_proc_free(&r);

    /* plainly, every Criterion test passes */
    run_in(&p, ARGS("meson", "test", "-C", "build"), 0, &r);
    clk_test_proc_free(&r);

    /* under the setup, the leaking binary fails with connleak's status; the clean selection passes */
    run_in(&p, ARGS("meson", "test", "-C", "build", "--setup", "connleak", "--print-errorlogs"), -1, &r);
    cr_assert_neq(r.status, 0, "meson test --setup connleak should fail\n--- stdout:\n%s", clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "exit status 23"), "subject's status\n--- stdout:\n%s",
              clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "Ok:                 1"), "subject-clean passes\n--- stdout:\n%s",
              clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "Fail:               1"), "one failure\n--- stdout:\n%s",
              clk_test_excerpt(r.out));
    char *log = clk_test_read_file(clk_test_path(p.dir, "build/meson-logs/testlog-connleak.txt"), NULL);
    cr_assert_not_null(log, "no testlog-connleak.txt");
    cr_assert(clk_test_contains(log, "test orders::leaks_connection"), "log names the test:\n%s",
              clk_test_excerpt(log));
    cr_assert(clk_test_contains(log, "test users::leaks_connection"), "log:\n%s", clk_test_excerpt(log));
    cr_assert(clk_test_contains(log, "test audit::leaks_on_early_return"), "log:\n%s", clk_test_excerpt(log));
    cr_assert(clk_test_contains(log, "open_orders_db"), "log names the opener:\n%s", clk_test_excerpt(log));
    clk_test_proc_free(&r);

    /* CI: every test's journals kept in one directory, merged into one SARIF file afterwards */
    run_in(&p, ARGS("meson", "test", "-C", "build", "--setup", "connleakci"), -1, &r);
    cr_assert_neq(r.status, 0, "meson test --setup connleakci should fail\n--- stdout:\n%s", clk_test_excerpt(r.out));
    clk_test_proc_free(&r);
    run_in(&p,
           ARGS(clk_test_cli(), "report", "--quiet", "--format", "sarif", "--output", "connleak.sarif",
                "build/connleak-raw"),
           23, &r);
    clk_test_proc_free(&r);
    char *sarif = clk_test_read_file(clk_test_path(p.dir, "connleak.sarif"), NULL);
    json_error_t err;
    json_t *doc = sarif ? json_loads(sarif, 0, &err) : NULL;
    cr_assert_not_null(doc, "no SARIF from connleak report");
    json_t *results = json_object_get(json_array_get(json_object_get(doc, "runs"), 0), "results");
    cr_assert_eq(json_array_size(results), 3, "three results (the clean run adds none): %s", clk_test_excerpt(sarif));
    json_decref(doc);
    clk_test_rmtree(p.dir);
}

Test(buildsys, ctest_add_test_under_connleak_fails, TIMEOUT)
{
    struct project p;
    project_init(&p);
    write_in(&p, "CMakeLists.txt",
             "cmake_minimum_required(VERSION 3.13)\n"
             "project(subject C)\n"
             "enable_testing()\n"
             "find_package(PkgConfig REQUIRED)\n"
             "pkg_check_modules(DEPS REQUIRED IMPORTED_TARGET criterion sqlite3)\n"
             "add_executable(subject subject.c)\n"
             "target_link_libraries(subject PkgConfig::DEPS)\n"
             "find_program(CONNLEAK connleak REQUIRED)\n"
             "add_test(NAME subject COMMAND subject)\n"
             "add_test(NAME subject_connleak COMMAND ${CONNLEAK} run -- $<TARGET_FILE:subject>)\n");
    clk_test_proc r;
    run_in(&p, ARGS("cmake", "-S", ".", "-B", "build"), 0, &r);
    clk_test_proc_free(&r);
    run_in(&p, ARGS("cmake", "--build", "build"), 0, &r);
    clk_test_proc_free(&r);
    run_in(&p, ARGS("ctest", "--test-dir", "build", "--output-on-failure"), -1, &r);
    cr_assert_neq(r.status, 0, "ctest should fail\n--- stdout:\n%s", clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "50% tests passed, 1 tests failed out of 2"), "ctest summary\n%s",
              clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "subject_connleak (Failed)"), "the wrapped test fails\n%s",
              clk_test_excerpt(r.out));
    cr_assert(clk_test_contains(r.out, "test orders::leaks_connection"), "output names the test\n%s",
              clk_test_excerpt(r.out));
    clk_test_proc_free(&r);
    clk_test_rmtree(p.dir);
}

Test(buildsys, makefile_check_under_connleak_fails, TIMEOUT)
{
    struct project p;
    project_init(&p);
    write_in(&p, "Makefile",
             "CONNLEAK ?= connleak\n"
             "CFLAGS += -g $(shell pkg-config --cflags criterion sqlite3)\n"
             "LDLIBS += $(shell pkg-config --libs criterion sqlite3)\n"
             "subject: subject.c\n"
             "check: subject\n"
             "\t$(CONNLEAK) run --format text --format sarif --output connleak.sarif -- ./subject\n");
    clk_test_proc r;
    run_in(&p, ARGS("make", "check"), -1, &r);
    cr_assert_eq(r.status, 2, "make check should fail (make's own status 2)\n--- stdout:\n%s\n--- stderr:\n%s",
                 clk_test_excerpt(r.out), clk_test_excerpt(r.err));
    cr_assert(clk_test_contains(r.err, "Error 23"), "make reports connleak's status\n%s", clk_test_excerpt(r.err));
    cr_assert(clk_test_contains(r.err, "test users::leaks_connection"), "stderr names the test\n%s",
              clk_test_excerpt(r.err));
    char *sarif = clk_test_read_file(clk_test_path(p.dir, "connleak.sarif"), NULL);
    cr_assert_not_null(sarif, "no connleak.sarif");
    json_error_t err;
    json_t *doc = json_loads(sarif, 0, &err);
    cr_assert_not_null(doc, "SARIF is not JSON: %s", err.text);
    cr_assert_str_eq(clk_test_str(doc, "version"), "2.1.0", "SARIF version");
    json_t *results = json_object_get(json_array_get(json_object_get(doc, "runs"), 0), "results");
    cr_assert_eq(json_array_size(results), 3, "three results: %s", clk_test_excerpt(sarif));
    json_decref(doc);
    clk_test_proc_free(&r);
    clk_test_rmtree(p.dir);
}
