/* install_test.c — `meson install --destdir` stages the CLI, libraries, headers, man page and connleak.pc; pkg-config against the staged tree builds and runs a tiny pool user and a connleak_criterion.h test. */
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 240

static const char tiny_pool_user[] =
    "/* a tiny pool user: reports its pool's events to connleak and prints the figures */\n"
    "#include <stdio.h>\n"
    "#include <connleak.h>\n"
    "static int conns[3];\n"
    "int main(void)\n"
    "{\n"
    "    for (int i = 0; i < 3; i++)\n"
    "        connleak_record(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_SQLITE, &conns[i], \"/srv/app.db\");\n"
    "    connleak_record(CONNLEAK_EVENT_CHECKOUT, CONNLEAK_BACKEND_SQLITE, &conns[0], NULL);\n"
    "    connleak_record(CONNLEAK_EVENT_CHECKIN, CONNLEAK_BACKEND_SQLITE, &conns[0], NULL);\n"
    "    connleak_record(CONNLEAK_EVENT_CHECKOUT, CONNLEAK_BACKEND_SQLITE, &conns[1], NULL); /* never back */\n"
    "    connleak_record(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_SQLITE, &conns[0], NULL);\n"
    "    connleak_record(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_SQLITE, &conns[2], NULL);\n"
    "    connleak_counts c;\n"
    "    connleak_get_counts(&c);\n"
    "    printf(\"connects=%llu closes=%llu open=%llu checkouts=%llu checkins=%llu checked_out=%llu\\n\",\n"
    "           (unsigned long long)c.connects, (unsigned long long)c.closes, (unsigned long long)c.open,\n"
    "           (unsigned long long)c.checkouts, (unsigned long long)c.checkins,\n"
    "           (unsigned long long)c.checked_out);\n"
    "    return 0;\n"
    "}\n";
#define TINY_COUNTS "connects=3 closes=2 open=1 checkouts=2 checkins=1 checked_out=1\n"

/* The staged tree, found once per test. */
static struct {
    char *destdir;
    char *pc_dir;  /* holds connleak.pc */
    char *prefix;  /* inside destdir */
    char *libdir;  /* inside destdir */
    char *cflags_libs;
} st;

static int find_pc(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);
    if (flag == FTW_F && n >= 22 && strcmp(path + n - 22, "/pkgconfig/connleak.pc") == 0) {
        st.pc_dir = strdup(path);
        st.pc_dir[n - 12] = 0;
        return 1;
    }
    return 0;
}

static const char *const *pc_env(void)
{
    static char path[4096], sysroot[4096];
    static const char *env[4];
    snprintf(path, sizeof path, "PKG_CONFIG_PATH=%s", st.pc_dir);
    snprintf(sysroot, sizeof sysroot, "PKG_CONFIG_SYSROOT_DIR=%s", st.destdir);
    env[0] = path;
    env[1] = sysroot;
    env[2] = "BXFI_MAP"; /* BoxFort's worker mark: not for the programs started here */
    env[3] = NULL;
    return env;
}

/* Splits pkg-config's one-line answer into words appended to argv. */
static size_t split_words(char *s, const char **argv, size_t k, size_t max)
{
    for (char *w = strtok(s, " \t\n"); w && k < max - 1; w = strtok(NULL, " \t\n"))
        argv[k++] = w;
    argv[k] = NULL;
    return k;
}

static void stage(void)
{
    memset(&st, 0, sizeof st);
    st.destdir = clk_test_mkdtemp();
    clk_test_proc p;
    clk_test_exec(ARGS("meson", "install", "-C", CRIT_BUILD_ROOT, "--no-rebuild", "--quiet", "--destdir", st.destdir),
                  ARGS("BXFI_MAP", "DESTDIR"), NULL, 180, &p);
    cr_assert_eq(p.status, 0, "meson install failed (%d)\n--- stdout:\n%s\n--- stderr:\n%s", p.status,
                 clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    nftw(st.destdir, find_pc, 16, FTW_PHYS);
    cr_assert_not_null(st.pc_dir, "no connleak.pc under %s", st.destdir);

    clk_test_exec(ARGS("pkg-config", "--cflags", "--libs", "connleak"), pc_env(), NULL, 30, &p);
    cr_assert_eq(p.status, 0, "pkg-config: %s", clk_test_excerpt(p.err));
    /* -I and -L point into the staged tree */
    char want_i[4200];
    snprintf(want_i, sizeof want_i, "-I%s/", st.destdir);
    cr_assert(clk_test_contains(p.out, want_i), "cflags should point into %s: %s", st.destdir, p.out);
    cr_assert(clk_test_contains(p.out, "-lconnleak"), "libs: %s", p.out);
    st.cflags_libs = strdup(p.out);
    const char *l = strstr(p.out, "-L");
    cr_assert_not_null(l, "no -L: %s", p.out);
    st.libdir = strndup(l + 2, strcspn(l + 2, " \n"));
    st.prefix = strdup(st.libdir);
    /* <prefix>/lib[/<multiarch>]: the prefix is the parent of "lib" */
    char *lib = strstr(st.prefix, "/lib");
    cr_assert_not_null(lib, "libdir %s", st.libdir);
    *lib = 0;
    clk_test_proc_free(&p);
}

/* cc <src> $(pkg-config --cflags --libs connleak [criterion sqlite3]) -o <out> [flag] against the staged tree. */
static void build_against_stage(const char *src, const char *out, int with_criterion, const char *extra_flag)
{
    clk_test_proc p;
    clk_test_exec(with_criterion ? ARGS("pkg-config", "--cflags", "--libs", "connleak", "criterion", "sqlite3")
                                 : ARGS("pkg-config", "--cflags", "--libs", "connleak"),
                  pc_env(), NULL, 30, &p);
    cr_assert_eq(p.status, 0, "pkg-config: %s", clk_test_excerpt(p.err));
    const char *argv[64] = {"cc", "-g", src, "-o", out};
    size_t k = split_words(p.out, argv, 5, 60);
    if (extra_flag)
        argv[k++] = extra_flag;
    argv[k] = NULL;
    clk_test_proc c;
    clk_test_exec(argv, pc_env(), NULL, 60, &c);
    cr_assert_eq(c.status, 0, "cc failed:\n%s", clk_test_excerpt(c.err));
    clk_test_proc_free(&c);
}

static char *ld_path(void)
{
    char *s = malloc(strlen(st.libdir) + 32);
    sprintf(s, "LD_LIBRARY_PATH=%s", st.libdir);
    return s;
}

Test(install, stages_every_piece, TIMEOUT)
{
    stage();
    const char *want[] = {"bin/connleak", "include/connleak.h", "include/connleak_criterion.h",
                          "share/man/man1/connleak.1"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char *path = clk_test_path(st.prefix, want[i]);
        cr_assert(clk_test_exists(path), "%s is not installed", path);
    }
    const char *libs[] = {"libconnleak-preload.so", "libconnleak.so", "pkgconfig/connleak.pc", "libdbconf.so",
                          "pkgconfig/dbconf.pc"};
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
        char *path = clk_test_path(st.libdir, libs[i]);
        cr_assert(clk_test_exists(path), "%s is not installed", path);
    }
    /* the staged CLI finds the staged preload library beside it */
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_path(st.prefix, "bin/connleak"), "preload-path"), ARGS("CONNLEAK_PRELOAD"), NULL,
                  30, &p);
    cr_assert_eq(p.status, 0, "preload-path: %s", clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, st.libdir), "preload-path %s should be in %s", p.out, st.libdir);
    clk_test_proc_free(&p);
    /* the man page is roff that man can render */
    clk_test_exec(ARGS("man", "-l", "-P", "cat", clk_test_path(st.prefix, "share/man/man1/connleak.1")),
                  ARGS("MANWIDTH=80"), NULL, 30, &p);
    if (p.status != 127) /* man may be absent from minimal images */
        cr_assert(clk_test_contains(p.out, "find database connections a program never closes"), "man: %s%s",
                  clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(st.destdir);
}

Test(install, pkg_config_builds_a_tiny_pool_user, TIMEOUT)
{
    stage();
    char *src = clk_test_path(st.destdir, "tiny.c");
    char *exe = clk_test_path(st.destdir, "tiny");
    clk_test_write_file(src, tiny_pool_user, strlen(tiny_pool_user));
    build_against_stage(src, exe, 0, NULL);

    clk_test_proc p;
    clk_test_exec(ARGS(exe), ARGS(ld_path(), "LD_PRELOAD"), NULL, 30, &p);
    cr_assert_eq(p.status, 0, "tiny: %s", clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, TINY_COUNTS, "the tiny pool user's counts");
    clk_test_proc_free(&p);

    /* and under the staged CLI (its own preload library): the same figures;
     * the connection never closed and the checkout never checked in are leaks */
    char *json = clk_test_path(st.destdir, "tiny.json");
    clk_test_exec(ARGS(clk_test_path(st.prefix, "bin/connleak"), "run", "--json", json, "--", exe),
                  ARGS(ld_path(), "LD_PRELOAD", "CONNLEAK_PRELOAD", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR"), NULL, 60,
                  &p);
    cr_assert_eq(p.status, 23, "staged connleak run: %d\n%s", p.status, clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, TINY_COUNTS, "counts under the preloaded tracker");
    json_error_t err;
    json_t *report = json_load_file(json, 0, &err);
    cr_assert_not_null(report, "report: %s", err.text);
    cr_assert_eq(clk_test_summary(report, "leaks"), 2, "two leaks: %s", clk_test_dump(report));
    json_decref(report);
    clk_test_proc_free(&p);
    clk_test_rmtree(st.destdir);
}

Test(install, staged_header_fails_a_leaking_criterion_test, TIMEOUT)
{
    stage();
    char *exe = clk_test_path(st.destdir, "checked");
    build_against_stage(CRIT_SOURCE_DIR "/cr_checked.c", exe, 1, "-rdynamic");
    char *lib_env = ld_path();
    char *preload = malloc(strlen(st.libdir) + 64);
    sprintf(preload, "LD_PRELOAD=%s/libconnleak-preload.so", st.libdir);
    clk_test_proc p;
    clk_test_exec(ARGS(exe, "--filter", "raw/*"), ARGS(lib_env, preload, "CONNLEAK_OPTIONS=report=0", "BXFI_MAP"),
                  NULL, 60, &p);
    cr_assert_neq(p.status, 0, "leaking tests should fail");
    cr_assert(clk_test_contains(p.err, "[FAIL] raw::leaks_open"), "stderr:\n%s", clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "#0 checked_open_orders"), "stderr:\n%s", clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.err, "Tested: 3 | Passing: 1 | Failing: 2"), "stderr:\n%s",
              clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
    clk_test_rmtree(st.destdir);
}

/* A program may dlopen() the tracker (Python's ctypes, a plugin): its thread-locals must fit
 * the little static TLS glibc keeps for dlopen()ed libraries. */
static const char ctypes_user[] =
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "class Counts(ctypes.Structure):\n"
    "    _fields_ = [(n, ctypes.c_uint64) for n in ('connects', 'closes', 'open', 'left', 'doubles',\n"
    "                                             'unknowns', 'checkouts', 'checkins', 'checked_out')]\n"
    "conn = ctypes.create_string_buffer(16)\n"
    "assert lib.connleak_record(1, 1, conn, b'ctypes.db') == 0  # CONNECT, SQLITE\n"
    "c = Counts()\n"
    "lib.connleak_get_counts(ctypes.byref(c))\n"
    "print('connects=%d open=%d' % (c.connects, c.open))\n";

Test(install, python_ctypes_loads_the_tracker, TIMEOUT)
{
    stage();
    char *script = clk_test_path(st.destdir, "ctypes_user.py");
    clk_test_write_file(script, ctypes_user, strlen(ctypes_user));
    clk_test_proc p;
    clk_test_exec(ARGS("python3", script, clk_test_path(st.libdir, "libconnleak.so")), ARGS("LD_PRELOAD"), NULL, 30,
                  &p);
    if (p.status == 127) /* no python3 on this machine */
        cr_skip_test("python3 is not installed");
    cr_assert_eq(p.status, 0, "python3 ctypes: %s", clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, "connects=1 open=1"), "counts through ctypes: %s", p.out);
    clk_test_proc_free(&p);
    clk_test_rmtree(st.destdir);
}

/* The README's recipe end to end: the installed tree (staged, as a custom prefix is: bin/, the libdir
 * beside it) and a separate Meson project using its optional snippet, configured once with that
 * connleak on the PATH and once without. Both configure; the first finds the planted leak. */
static const char optional_setup[] =
    "project('subject', 'c')\n"
    "subject = executable('subject', 'subject.c',\n"
    "  dependencies : [dependency('criterion'), dependency('sqlite3')])\n"
    "test('subject', subject)\n"
    "connleak = find_program('connleak', required : false)   # contributors without it still build\n"
    "if connleak.found()\n"
    "  add_test_setup('connleak', exe_wrapper : [connleak, 'run', '--'])\n"
    "endif\n";

Test(install, optional_meson_setup_with_and_without_connleak, .timeout = 300)
{
    stage();
    char *readme = clk_test_read_file(CRIT_SOURCE_DIR "/../../README.md", NULL);
    cr_assert(readme && strstr(readme, "    connleak = find_program('connleak', required : false)"),
              "the README's snippet changed: keep this test's copy in step");
    char *proj = clk_test_mkdtemp();
    char *src = clk_test_read_file(CRIT_SOURCE_DIR "/cr_subject.c", NULL);
    cr_assert_not_null(src);
    clk_test_write_file(clk_test_path(proj, "subject.c"), src, strlen(src));
    clk_test_write_file(clk_test_path(proj, "meson.build"), optional_setup, strlen(optional_setup));

    /* with the installed connleak on the PATH (and no build-tree CLI anywhere on it) */
    const char *sys = "/usr/local/bin:/usr/bin:/bin";
    char with[8192];
    snprintf(with, sizeof with, "PATH=%s:%s", clk_test_path(st.prefix, "bin"), sys);
    const char *preload = "CONNLEAK_PRELOAD"; /* unset: the installed CLI finds its library beside it */
    clk_test_proc p;
    clk_test_exec(ARGS("meson", "setup", "with"), ARGS(with, "BXFI_MAP", "LD_PRELOAD", preload), proj, 120, &p);
    cr_assert_eq(p.status, 0, "configure with connleak: %s%s", clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, "Program connleak found: YES"), "%s", clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    clk_test_exec(ARGS("meson", "test", "-C", "with", "--setup", "connleak", "--print-errorlogs"),
                  ARGS(with, "BXFI_MAP", "LD_PRELOAD", preload), proj, 180, &p);
    cr_assert(clk_test_contains(p.out, "exit status 23"), "the planted leak fails the test under the setup:\n%s",
              clk_test_excerpt(p.out));
    cr_assert(clk_test_contains(p.out, "open_orders_db"), "the report names the opener:\n%s",
              clk_test_excerpt(p.out));
    clk_test_proc_free(&p);

    /* without connleak: the same project configures and its tests run plainly */
    char without[256];
    snprintf(without, sizeof without, "PATH=%s", sys);
    clk_test_exec(ARGS("meson", "setup", "without"), ARGS(without, "BXFI_MAP", "LD_PRELOAD"), proj, 120, &p);
    cr_assert_eq(p.status, 0, "configure without connleak: %s%s", clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    cr_assert(clk_test_contains(p.out, "Program connleak found: NO"), "%s", clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    clk_test_exec(ARGS("meson", "test", "-C", "without"), ARGS(without, "BXFI_MAP", "LD_PRELOAD"), proj, 180, &p);
    cr_assert_eq(p.status, 0, "plain meson test passes: %s", clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    clk_test_rmtree(proj);
    clk_test_rmtree(st.destdir);
}
