/* policy.h — helpers the suppression and baseline suites share: a private directory, the fixture under connleak, report lookups. */
#ifndef POLICY_H
#define POLICY_H

#include "clk_assert.h"

#ifndef FX_POLICY
#error "FX_POLICY (the fixture's path) must come from meson"
#endif

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120

/* This test's private directory (made on first use, removed at exit). */
const char *policy_dir(void);
/* Writes `text` to policy_dir()/name; returns the malloc'd path. */
char *policy_write(const char *name, const char *text);
/* policy_dir()/name, malloc'd. */
char *policy_path(const char *name);
/* `connleak run <opts> --json <tmp> -- fx_policy <modes>` with env changes as in clk_test_exec. */
int policy_run(const char *const *opts, const char *const *modes, const char *const *env, clk_test_run *r);
/* `connleak <args>` (e.g. report ...), not preloaded. */
int policy_cli(const char *const *args, clk_test_proc *p);
/* The entry of report[list] ("leaks", "left_field_closes", "suppressed") whose
 * opened_at (leaks) or closed_at (closes) starts at function `fn`; NULL when none. */
json_t *policy_entry(const json_t *report, const char *list, const char *fn);
/* Number of entries in report[list]; -1 when it is not an array. */
long long policy_count(const json_t *report, const char *list);
/* Does any string in report.notes contain `part`? */
int policy_note(const json_t *report, const char *part);

/* A bad configuration: non-zero, below 128, not the findings status. */
#define policy_assert_config_error(status, err, what)                                                        \
    cr_assert((status) > 0 && (status) < 128 && (status) != 23,                                                \
              "%s: status %d should be non-zero, below 128 and not 23\n--- stderr:\n%s", (what), (status),    \
              clk_test_excerpt(err))

#endif
