/* formats_common.h — shared by the format suites: run connleak with one format, normalise its output, compare with a golden file. */
#ifndef FORMATS_COMMON_H
#define FORMATS_COMMON_H

#include <jansson.h>

#include "clk_test.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* One connleak invocation writing `format` to a file and the JSON report beside it. */
struct fmt_run {
    clk_test_proc proc; /* connleak's exit status, stdout, stderr */
    char *dir;          /* private temp dir: outputs, and the fixture's databases */
    char *out;          /* the rendered format (NULL when the file is missing) */
    size_t out_len;
    json_t *report; /* the --json of the same invocation (NULL when missing) */
    char *root;     /* the source root the paths were made relative to */
};

/* `connleak run --stack-depth 3 --json J --format F --output O -- fx_formats ARGS` run in the source root
 * (paths become relative to it); an argument "@DIR" stands for r->dir. */
int fmt_run_fixture(const char *format, const char *const *args, struct fmt_run *r);
/* The same around any command (cmd[0] a path), with extra `connleak run` options. */
int fmt_run_command(const char *format, const char *const *opts, const char *const *cmd, struct fmt_run *r);
/* `connleak report INPUT --json J --format F --output O` with GITHUB_WORKSPACE=root. */
int fmt_report(const char *format, const char *input, const char *root, struct fmt_run *r);
void fmt_run_free(struct fmt_run *r);

/* suites/formats/input/<name> */
char *fmt_input(const char *name);
/* The output with what differs between runs and machines replaced: the temp dir ($TMP), the fixture's
 * path ($FIXTURE) and code offsets in it ($OFF), the source root ($ROOT), the version ($VERSION), pids ($PID). */
char *fmt_normalize(const struct fmt_run *r);
/* Asserts `actual` equals suites/formats/golden/<name>, showing the first differing line;
 * CONNLEAK_UPDATE_GOLDEN=1 rewrites the golden file instead. */
void fmt_golden(const char *name, const char *actual);

/* The JSON report's findings in rendering order (leaks, then left-field closes, as the renderers sort),
 * i-th unsuppressed one; NULL past the end. */
json_t *fmt_finding(const struct fmt_run *r, const char *kind, size_t i);

/* Asserts the run ended with `status` and wrote its output. */
void fmt_assert_ran(const struct fmt_run *r, int status);

#endif
