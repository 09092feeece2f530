/* version_test.c — connleak --version and -V: "connleak VERSION" (meson's project version) on stdout, status 0. */
#include <stdio.h>
#include <string.h>

#include "docs_common.h"

#ifndef CLK_PROJECT_VERSION
#error "CLK_PROJECT_VERSION must come from meson"
#endif

static void check_version(const char *flag)
{
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), flag), NO_DETECTOR, NULL, 0, &p);
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
    docs_assert_documented("--version and -V", "--version, -V", "\\-\\-version \", \" \\-V", "`--version`, `-V`");
}
