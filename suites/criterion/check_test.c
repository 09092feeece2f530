/* check_test.c — connleak_criterion.h: CONNLEAK_TEST fails, by name and with the opener's stack, exactly the tests that leak, under `connleak run`, LD_PRELOAD and plainly. */
#include <string.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 120
/* BoxFort marks its workers with BXFI_MAP: a Criterion binary started from
 * this suite's worker must not inherit it, or it takes itself for a worker. */
#define CRIT_ENV ARGS("BXFI_MAP")

/* Criterion's own --json report of a run: "suite::name" -> status. */
struct outcome {
    char *dir;
    json_t *json;
    clk_test_run run;  /* for runs under connleak */
    clk_test_proc proc; /* for direct runs */
};

static const char *status_of(const struct outcome *o, const char *suite, const char *name)
{
    size_t i, j;
    json_t *s, *t;
    json_array_foreach(json_object_get(o->json, "test_suites"), i, s)
    {
        if (strcmp(clk_test_str(s, "name"), suite) != 0)
            continue;
        json_array_foreach(json_object_get(s, "tests"), j, t)
        {
            if (strcmp(clk_test_str(t, "name"), name) == 0)
                return clk_test_str(t, "status");
        }
    }
    return "MISSING";
}

/* The messages Criterion recorded for a test, joined. */
static char *messages_of(const struct outcome *o, const char *suite, const char *name)
{
    size_t i, j, k;
    json_t *s, *t, *m;
    char *all = calloc(1, 1);
    json_array_foreach(json_object_get(o->json, "test_suites"), i, s)
    {
        json_array_foreach(json_object_get(s, "tests"), j, t)
        {
            if (strcmp(clk_test_str(s, "name"), suite) || strcmp(clk_test_str(t, "name"), name))
                continue;
            json_array_foreach(json_object_get(t, "messages"), k, m)
            {
                const char *text = json_string_value(m);
                if (!text)
                    continue;
                size_t len = strlen(all);
                all = realloc(all, len + strlen(text) + 2);
                strcpy(all + len, text);
                strcat(all, "\n");
            }
        }
    }
    return all;
}

enum mode { UNDER_CLI, PRELOADED, PLAIN };

static void run_checked(enum mode mode, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->dir = clk_test_mkdtemp();
    char *json_path = clk_test_path(o->dir, "criterion.json");
    char *json_opt = malloc(strlen(json_path) + 8);
    sprintf(json_opt, "--json=%s", json_path);
    const char *const cmd[] = {CRIT_BIN_DIR "/cr_checked", json_opt, "-j1", NULL};
    if (mode == UNDER_CLI) {
        clk_test_connleak(NULL, cmd, CRIT_ENV, &o->run);
        o->proc = o->run.proc;
    } else {
        char *preload = malloc(strlen(clk_test_preload()) + 16);
        sprintf(preload, "LD_PRELOAD=%s", clk_test_preload());
        /* report=0: the library's own exit report is not what this test reads */
        const char *const env[] = {mode == PRELOADED ? preload : "LD_PRELOAD", "CONNLEAK_OPTIONS=report=0",
                                   "CONNLEAK_RUN_DIR", "BXFI_MAP", NULL};
        clk_test_exec(cmd, env, NULL, 0, &o->proc);
    }
    char *text = clk_test_read_file(json_path, NULL);
    json_error_t err;
    o->json = text ? json_loads(text, 0, &err) : NULL;
    cr_assert_not_null(o->json, "no Criterion JSON at %s (exit %d)\n--- stderr:\n%s", json_path, o->proc.status,
                       clk_test_excerpt(o->proc.err));
}

static void outcome_free(struct outcome *o, enum mode mode)
{
    json_decref(o->json);
    if (mode == UNDER_CLI)
        clk_test_run_free(&o->run);
    else
        clk_test_proc_free(&o->proc);
    clk_test_rmtree(o->dir);
}

#define assert_status(o, suite, name, want)                                                                   \
    cr_assert_str_eq(status_of(o, suite, name), want, "%s::%s should be %s\n--- stderr:\n%s", suite, name, want, \
                     clk_test_excerpt((o)->proc.err))

static void check_wrapped(enum mode mode)
{
    struct outcome o;
    run_checked(mode, &o);
    /* the raw SQLite leaks are seen through the preloaded wrappers */
    assert_status(&o, "raw", "leaks_open", "FAILED");
    assert_status(&o, "raw", "leaks_open_v2", "FAILED");
    assert_status(&o, "pool", "leaks_checkout", "FAILED");
    assert_status(&o, "pool", "double_close", "FAILED");
    assert_status(&o, "raw", "closes", "PASSED");
    assert_status(&o, "pool", "checks_in", "PASSED");
    assert_status(&o, "fixture", "balanced", "PASSED");
    cr_assert_eq(clk_test_int(o.json, "failed"), 4, "failed count\n--- stderr:\n%s", clk_test_excerpt(o.proc.err));
    cr_assert_neq(o.proc.status, 0, "a failing test binary exits non-zero");

    /* each failure carries the opener's stack, named through -rdynamic */
    char *m = messages_of(&o, "raw", "leaks_open");
    cr_assert(clk_test_contains(m, "1 connection opened during this test is still open"), "message: %s", m);
    cr_assert(clk_test_contains(m, "sqlite connection to :memory:, opened at:"), "message: %s", m);
    cr_assert(clk_test_contains(m, "#0 checked_open_orders (cr_checked+0x"), "message: %s", m);
    cr_assert(clk_test_contains(m, "checked at"), "message: %s", m);
    m = messages_of(&o, "raw", "leaks_open_v2");
    cr_assert(clk_test_contains(m, "#0 checked_open_users"), "message: %s", m);
    m = messages_of(&o, "pool", "leaks_checkout");
    cr_assert(clk_test_contains(m, "checked out of its pool and never checked in"), "message: %s", m);
    cr_assert(clk_test_contains(m, "#0 checked_pool_checkout"), "message: %s", m);
    m = messages_of(&o, "pool", "double_close");
    cr_assert(clk_test_contains(m, "1 double close during this test"), "message: %s", m);
    cr_assert(clk_test_contains(m, "#0 checked_pool_close"), "message: %s", m);
    /* Criterion's console names the failing tests */
    cr_assert(clk_test_contains(o.proc.err, "raw::leaks_open"), "stderr: %s", clk_test_excerpt(o.proc.err));
    outcome_free(&o, mode);
}

Test(check, fails_leaking_tests_under_connleak_run, TIMEOUT)
{
    check_wrapped(UNDER_CLI);
}

Test(check, fails_leaking_tests_under_ld_preload, TIMEOUT)
{
    check_wrapped(PRELOADED);
    struct outcome o;
    run_checked(PRELOADED, &o);
    cr_assert(!clk_test_contains(o.proc.err, "is not loaded"), "no warning with the preload:\n%s",
              clk_test_excerpt(o.proc.err));
    /* the layout the README shows */
    const char *layout = ": Assertion Failed\n"
                         "[----]   \n"
                         "[----]   connleak: 1 connection opened during this test is still open\n"
                         "[----]     sqlite connection to :memory:, opened at:\n"
                         "[----]       #0 checked_open_orders (cr_checked+0x";
    cr_assert(clk_test_contains(o.proc.err, layout), "README's sample layout not in Criterion's output:\n%s",
              clk_test_excerpt(o.proc.err));
    outcome_free(&o, PRELOADED);
}

Test(check, under_connleak_run_the_report_agrees, TIMEOUT)
{
    struct outcome o;
    run_checked(UNDER_CLI, &o);
    clk_test_run *r = &o.run;
    clk_assert_report(r);
    /* the binary's failing tests decide connleak's exit status (non-zero, not 23) */
    cr_assert_eq(r->proc.status, 1, "connleak passes the test binary's status on" CLK_CTX_FMT, CLK_CTX(r));
    cr_assert_not_null(clk_test_find_leak(r->report, "sqlite", ":memory:", "checked_open_orders"),
                       "leak in the report" CLK_CTX_FMT, CLK_CTX(r));
    outcome_free(&o, UNDER_CLI);
}

Test(check, plain_run_sees_pool_events_only, TIMEOUT)
{
    /* without the preload nothing wraps sqlite3_open: only connleak_record() events are seen */
    struct outcome o;
    run_checked(PLAIN, &o);
    assert_status(&o, "raw", "leaks_open", "PASSED");
    assert_status(&o, "raw", "leaks_open_v2", "PASSED");
    assert_status(&o, "pool", "leaks_checkout", "FAILED");
    assert_status(&o, "pool", "double_close", "FAILED");
    assert_status(&o, "pool", "checks_in", "PASSED");
    assert_status(&o, "fixture", "balanced", "PASSED");
    char *m = messages_of(&o, "pool", "leaks_checkout");
    cr_assert(clk_test_contains(m, "#0 checked_pool_checkout"), "message: %s", m);
    /* ...and says so, once for the run (not once per test worker) */
    const char *warn = "connleak: CONNLEAK_TEST: libconnleak-preload.so is not loaded";
    const char *first = strstr(o.proc.err ? o.proc.err : "", warn);
    cr_assert(first, "want the warning on stderr:\n%s", clk_test_excerpt(o.proc.err));
    cr_assert(!strstr(first + 1, warn), "the warning once, not per test:\n%s", clk_test_excerpt(o.proc.err));
    outcome_free(&o, PLAIN);
}
