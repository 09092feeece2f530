/* version_test.c — connleak --version and -V: "connleak VERSION" (meson's project version) on stdout, status 0. */
#include <stdio.h>
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

#ifndef CLK_PROJECT_VERSION
#error "CLK_PROJECT_VERSION must come from meson"
#endif

static void check_version(const char *flag)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), flag), ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "connleak %s: status %d\n--- stderr:\n%s", flag, p.status, clk_test_excerpt(p.err));
    cr_assert_str_eq(p.out, "connleak " CLK_PROJECT_VERSION "\n", "connleak %s printed '%s'", flag, p.out);
    cr_assert_eq(p.err_len, 0, "connleak %s wrote on stderr: %s", flag, clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}

Test(version, long_option, .timeout = 60)
{
    check_version("--version");
}

Test(version, short_option, .timeout = 60)
{
    check_version("-V");
}

/* --help names both spellings, and the man page and docs/reference.md do too. */
Test(version, documented, .timeout = 60)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "--help"), ARGS("LD_PRELOAD", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0);
    cr_assert(clk_test_contains(p.out, "--version, -V"), "--help does not name --version, -V:\n%s",
              clk_test_excerpt(p.out));
    clk_test_proc_free(&p);
    char *man = clk_test_path(clk_test_source_root(), "harness/connleak.1");
    char *text = clk_test_read_file(man, NULL);
    cr_assert(text && clk_test_contains(text, "\\-\\-version \", \" \\-V"), "%s does not document -V", man);
    char *ref = clk_test_path(clk_test_source_root(), "docs/reference.md");
    char *rtext = clk_test_read_file(ref, NULL);
    cr_assert(rtext && clk_test_contains(rtext, "`--version`, `-V`"), "%s does not document -V", ref);
}
