/* clk_test.h — helpers for the Criterion suites: run commands with a watchdog, run `connleak run --json`, query the JSON report. */
#ifndef CLK_TEST_H
#define CLK_TEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Watchdog for every child run: a deadlock fails the test instead of hanging it.
 * Multiplied by $CONNLEAK_TEST_TIMEOUT_MULTIPLIER when set (the sanitizer and
 * Valgrind setups of the top-level meson.build). */
#define CLK_TEST_TIMEOUT_S 60

/* What a finished child did. */
typedef struct clk_test_proc {
    int status;       /* exit code, or 128+signal when killed; -1 when it could not be started */
    int exited;       /* 1: ended with exit(); 0: killed by a signal (or not started) */
    int signal;       /* the signal that killed it, 0 otherwise */
    int timed_out;    /* 1: the watchdog had to kill it */
    char *out;        /* everything it wrote on stdout (NUL-terminated, never NULL after a run) */
    char *err;        /* everything it wrote on stderr */
    size_t out_len, err_len;
} clk_test_proc;

/* Runs argv[0] (searched in PATH when it has no '/') with argv, the current
 * environment changed by `env` (a NULL-terminated list of "KEY=VALUE" to set
 * and "KEY" to unset; may be NULL) in directory `cwd` (NULL: unchanged),
 * stdin from /dev/null, capturing stdout and stderr. After `timeout_s`
 * seconds (<= 0: CLK_TEST_TIMEOUT_S) the child's process group gets SIGTERM
 * and, 5 s later, SIGKILL. Returns p->status.
 * When argv[0] is $CONNLEAK_CLI and $CONNLEAK_CLI_WRAPPER is set (meson test
 * --setup valgrind), the wrapper's space-separated words run first, e.g.
 * "valgrind --error-exitcode=99 -q" $CONNLEAK_CLI run ...; the status is the
 * wrapper's. */
int clk_test_exec(const char *const *argv, const char *const *env, const char *cwd,
                  int timeout_s, clk_test_proc *p);
void clk_test_proc_free(clk_test_proc *p);

/* Paths from the suite environment (meson's suite_env); abort with a clear
 * message when unset. */
const char *clk_test_cli(void);       /* $CONNLEAK_CLI */
const char *clk_test_preload(void);   /* $CONNLEAK_PRELOAD */
const char *clk_test_source_root(void);
/* $CONNLEAK_FIXTURES/<name> as a malloc'd string (tests are short-lived
 * processes: callers need not free it). */
char *clk_test_fixture(const char *name);

/* A fresh private directory under $TMPDIR (or /tmp), malloc'd path. */
char *clk_test_mkdtemp(void);
/* Removes a directory tree (best effort); returns 0 when it is gone. */
int clk_test_rmtree(const char *path);
/* malloc'd "dir/name". */
char *clk_test_path(const char *dir, const char *name);
/* Reads a whole file (NUL-terminated, malloc'd); NULL if unreadable. */
char *clk_test_read_file(const char *path, size_t *len);
int clk_test_write_file(const char *path, const char *data, size_t len);
int clk_test_exists(const char *path);

/* One `connleak run` with its JSON report. */
typedef struct clk_test_run {
    clk_test_proc proc;   /* connleak's own exit status, stdout, stderr */
    char *json_path;      /* where --json was written */
    char *json_text;      /* its bytes (NULL if missing) */
    json_t *report;       /* parsed report (NULL if missing or not JSON) */
    char *dir;            /* the private temp dir holding json_path */
} clk_test_run;

/* Runs `connleak run <opts...> --json <tmp> -- <cmd...>` (opts and cmd
 * NULL-terminated; opts may be NULL) with `env` changes as in clk_test_exec.
 * Returns r->proc.status. */
int clk_test_connleak(const char *const *opts, const char *const *cmd,
                      const char *const *env, clk_test_run *r);
/* Same, with the command being fixture `fixture` and its arguments (NULL-terminated). */
int clk_test_connleak_fixture(const char *const *opts, const char *fixture,
                              const char *const *args, clk_test_run *r);
void clk_test_run_free(clk_test_run *r);

/* summary.<key> of a report as an integer; -1 when missing or not an integer. */
long long clk_test_summary(const json_t *report, const char *key);

/* Does a frame array (opened_at, closed_at, first_closed_at) have a frame
 * whose "function" equals `function`? */
int clk_test_frames_name(const json_t *frames, const char *function);
/* The first frame's "function" ("" when missing). */
const char *clk_test_first_function(const json_t *frames);

/* The first leak entry with this backend ("sqlite", "postgres"; NULL: any),
 * whose target contains `target_part` (NULL: any) and whose opened_at names
 * `function` (NULL: any). NULL when none. */
json_t *clk_test_find_leak(const json_t *report, const char *backend,
                           const char *target_part, const char *function);
/* Sum of "count" over every leak entry that matches, as in clk_test_find_leak. */
long long clk_test_leak_count(const json_t *report, const char *backend,
                              const char *target_part, const char *function);
/* The first left_field_closes entry of `kind` ("double_close", "unknown_close")
 * and backend (NULL: any) whose closed_at names `closer` (NULL: any). */
json_t *clk_test_find_left_field(const json_t *report, const char *kind,
                                 const char *backend, const char *closer);
/* Does the integer array `pids` of an entry contain `pid`? */
int clk_test_pids_contain(const json_t *entry, long long pid);
/* Integer member of an object; -1 when missing. */
long long clk_test_int(const json_t *obj, const char *key);
/* String member of an object; "" when missing or not a string. */
const char *clk_test_str(const json_t *obj, const char *key);

/* The integer after the first line starting with `key` (e.g. "pid=",
 * "child=") in a program's output; -1 when absent. */
long long clk_test_stdout_int(const char *out, const char *key);
/* Number of lines in a text (a last line without '\n' counts). */
int clk_test_count_lines(const char *text);
/* Does `hay` contain `needle` (either may be NULL: no)? */
int clk_test_contains(const char *hay, const char *needle);
/* A printable excerpt (the first 3000 bytes) of an output for assertion
 * messages; one of 4 rotating static buffers, so a message may use up to 4. */
const char *clk_test_excerpt(const char *text);
/* The report as compact JSON text (first 3000 bytes) for assertion messages;
 * shares the rotating buffers. */
const char *clk_test_dump(const json_t *report);

#ifdef __cplusplus
}
#endif
#endif
