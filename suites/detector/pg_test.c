/* pg_test.c — the detector on libpq against the real server `connleak run --postgres` starts: openers, reset, failures, double and unknown PQfinish, passwords, psql, the cluster's lifetime. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clk_assert.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 180
#define PG ARGS("--postgres")

static const char *const pg_openers[] = {
    "pg_open_connectdb", "pg_open_connectdb_params", "pg_open_setdblogin",
    "pg_open_connect_start", "pg_open_connect_start_params",
};

Test(pg, leak_each_opener, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("leak-all"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "five connections left open"), "fixture: %s\n%s", r.proc.out,
              r.proc.err);
    /* PQconnectdb calls PQconnectStart inside libpq: still one connect each. */
    clk_assert_summary(&r, "connects", 5);
    clk_assert_summary(&r, "closes", 0);
    clk_assert_summary(&r, "leaks", 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, pg_openers[i]);
        cr_assert_not_null(leak, "no postgres leak naming %s" CLK_CTX_FMT, pg_openers[i], CLK_CTX(&r));
        cr_assert_eq(clk_test_int(leak, "count"), 1, "%s count" CLK_CTX_FMT, pg_openers[i], CLK_CTX(&r));
        cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), pg_openers[i],
                         "frames start at the caller of libpq" CLK_CTX_FMT, CLK_CTX(&r));
    }
    clk_test_run_free(&r);
}

Test(pg, clean_each_opener, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("clean-all"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "five connections finished"), "fixture: %s\n%s", r.proc.out,
              r.proc.err);
    clk_assert_summary(&r, "connects", 5);
    clk_assert_summary(&r, "closes", 5);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
}

Test(pg, reset_keeps_the_connection, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("reset"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "reset done"), "fixture: %s\n%s", r.proc.out, r.proc.err);
    clk_assert_summary(&r, "connects", 1);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_test_run_free(&r);
}

Test(pg, failed_connections_not_finished_are_leaks, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("failed-leak"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "3 failed connections left open"), "fixture: %s\n%s", r.proc.out,
              r.proc.err);
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "leaks", 3);
    static const char *const openers[] = {"pg_fail_bad_port", "pg_fail_start_bad_port", "pg_fail_no_such_db"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_not_null(clk_test_find_leak(r.report, "postgres", NULL, openers[i]),
                           "no leak naming %s" CLK_CTX_FMT, openers[i], CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(pg, failed_connections_finished_are_clean, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("failed-finish"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "3 failed connections finished"), "fixture: %s\n%s", r.proc.out,
              r.proc.err);
    clk_assert_summary(&r, "connects", 3);
    clk_assert_summary(&r, "closes", 3);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
}

Test(pg, double_finish_three_stacks_and_survives, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("double-finish"), &r);
    cr_assert(clk_test_contains(r.proc.out, "survived double finish"),
              "the program should go on after the second PQfinish (exit %d): %s\n%s", r.proc.status, r.proc.out,
              clk_test_excerpt(r.proc.err));
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 2);
    clk_assert_summary(&r, "double_closes", 1);
    clk_assert_summary(&r, "leaks", 0);
    json_t *dc = clk_test_find_left_field(r.report, "double_close", "postgres", NULL);
    cr_assert_not_null(dc, "no double_close entry" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "closed_at")), "pg_finish_again",
                     "closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "first_closed_at")), "pg_finish_first",
                     "first_closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(dc, "opened_at")), "pg_open_for_double_finish",
                     "opened_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* No server needed: the PGconn comes from a refused connection, made through
 * glibc's own dlsym (fetched with dlvsym), which the detector does not see. */
Test(pg, unknown_finish_reported_and_passed_on, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_pg", ARGS("unknown-finish"), &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "unknown finish done"), "fixture: %s", r.proc.out);
    clk_assert_summary(&r, "connects", 0);
    clk_assert_summary(&r, "unknown_closes", 1);
    clk_assert_summary(&r, "double_closes", 0);
    json_t *uc = clk_test_find_left_field(r.report, "unknown_close", "postgres", NULL);
    cr_assert_not_null(uc, "no unknown_close entry" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(uc, "closed_at")), "pg_finish_never_seen",
                     "closed_at" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* dlsym on libpq's own handle returns the wrappers: PQconnectStart, PQconnectdb
 * and PQfinish from it are tracked like direct calls. */
Test(pg, dlsym_handle_connect_is_tracked, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(PG, "fx_pg", ARGS("dlsym-handle"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "dlsym-handle: one connection left open"), "fixture: %s\n%s",
              r.proc.out, r.proc.err);
    /* PQconnectdb calls PQconnectStart inside libpq: still one connect each */
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "closes", 1);
    clk_assert_summary(&r, "leaks", 1);
    clk_assert_summary(&r, "unknown_closes", 0);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, NULL);
    cr_assert_not_null(leak, "no postgres leak" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_str_eq(clk_test_first_function(json_object_get(leak, "opened_at")), "pg_open_through_dlsym_handle",
                     "frames start at the caller of the dlsym'd PQconnectdb" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* A failed connection without any server (refused TCP port) is a leak too. */
Test(pg, failed_connection_without_server_is_a_leak, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_pg", ARGS("failed-leak-noserver"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 2);
    clk_assert_summary(&r, "leaks", 2);
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", NULL, "pg_fail_start_bad_port"),
                       "no leak naming pg_fail_start_bad_port" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ---- passwords never appear ---- */

static void assert_no_password(const char *where, const char *text)
{
    cr_assert(!clk_test_contains(text, "s3cret"), "the password appears in %s:\n%s", where, clk_test_excerpt(text));
}

Test(pg, passwords_never_appear, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak_fixture(NULL, "fx_pg", ARGS("passwords"), &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    clk_assert_summary(&r, "connects", 7);
    clk_assert_summary(&r, "leaks", 7);
    assert_no_password("the JSON report", r.json_text);
    assert_no_password("the text report (stderr)", r.proc.err);
    assert_no_password("stdout", r.proc.out);
    static const char *const openers[] = {
        "pg_leak_password_conninfo", "pg_leak_password_quoted", "pg_leak_password_url",
        "pg_leak_password_url_query", "pg_leak_password_params", "pg_leak_password_params_expand",
        "pg_leak_password_setdblogin",
    };
    for (size_t i = 0; i < 7; i++)
        cr_assert_not_null(clk_test_find_leak(r.report, "postgres", NULL, openers[i]), "no leak naming %s" CLK_CTX_FMT,
                           openers[i], CLK_CTX(&r));

    /* The same report rendered again, as text and as JSON. */
    clk_test_proc p;
    clk_test_exec(ARGS(clk_test_cli(), "report", r.json_path), NULL, NULL, 0, &p);
    cr_assert_eq(p.status, 23, "report exit %d: %s", p.status, clk_test_excerpt(p.err));
    assert_no_password("`connleak report` text", p.err);
    assert_no_password("`connleak report` stdout", p.out);
    clk_test_proc_free(&p);
    clk_test_exec(ARGS(clk_test_cli(), "report", "--format", "json", r.json_path), NULL, NULL, 0, &p);
    assert_no_password("`connleak report --format json`", p.err);
    clk_test_proc_free(&p);

    /* The direct printer (LD_PRELOAD without the CLI). */
    char *pre = malloc(strlen(clk_test_preload()) + 16);
    sprintf(pre, "LD_PRELOAD=%s", clk_test_preload());
    clk_test_exec(ARGS(clk_test_fixture("fx_pg"), "passwords"),
                  ARGS(pre, "CONNLEAK_RUN_DIR", "CONNLEAK_OPTIONS"), NULL, 0, &p);
    cr_assert_eq(p.status, 0, "direct run exit %d: %s", p.status, clk_test_excerpt(p.err));
    cr_assert(p.err_len > 0, "the direct printer printed nothing");
    assert_no_password("the direct printer's report", p.err);
    clk_test_proc_free(&p);
    clk_test_run_free(&r);
}

/* ---- a real client nobody here wrote ---- */

Test(pg, psql_session_is_clean, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(PG, ARGS("psql", "-X", "-At", "-c", "select 40 + 2"), NULL, &r);
    clk_assert_status(&r, 0);
    clk_assert_report(&r);
    cr_assert(clk_test_contains(r.proc.out, "42"), "psql output: %s\n%s", r.proc.out, r.proc.err);
    long long connects = clk_test_summary(r.report, "connects");
    cr_assert_geq(connects, 1, "psql's connection was not seen" CLK_CTX_FMT, CLK_CTX(&r));
    clk_assert_summary(&r, "closes", connects);
    clk_assert_summary(&r, "leaks", 0);
    clk_assert_summary(&r, "double_closes", 0);
    clk_assert_summary(&r, "unknown_closes", 0);
    clk_test_run_free(&r);
}

/* ---- the throwaway cluster: environment, and removal when the command fails or connleak is interrupted ---- */

/* Is any process's working directory the data directory (the postmaster's is)? */
static int process_in_dir(const char *dir)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    size_t n = strlen(dir);
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char link[300], cwd[PATH_MAX];
        snprintf(link, sizeof link, "/proc/%s/cwd", e->d_name);
        ssize_t k = readlink(link, cwd, sizeof cwd - 1);
        if (k <= 0)
            continue;
        cwd[k] = '\0';
        if (!strncmp(cwd, dir, n) && (cwd[n] == '\0' || cwd[n] == ' ' || cwd[n] == '/'))
            found = 1;
    }
    closedir(d);
    return found;
}

static char *line_after(const char *out, const char *key)
{
    const char *p = strstr(out ? out : "", key);
    if (!p)
        return NULL;
    p += strlen(key);
    size_t n = strcspn(p, "\n");
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void assert_cluster_gone(const char *out)
{
    char *datadir = line_after(out, "datadir=");
    char *sock = line_after(out, "socket=");
    cr_assert(datadir && *datadir && sock && *sock, "command output: %s", out);
    /* connleak has exited: everything must already be gone. */
    cr_assert(!clk_test_exists(datadir), "data directory %s left behind", datadir);
    cr_assert(!clk_test_exists(sock), "socket %s left behind", sock);
    cr_assert(!process_in_dir(datadir), "a server process still runs in %s", datadir);
}

#define SHOW_CLUSTER                                                                                          \
    "printf 'PGHOST=%s\\nPGPORT=%s\\nPGUSER=%s\\nPGDATABASE=%s\\nDATABASE_URL=%s\\n' \"$PGHOST\" \"$PGPORT\" " \
    "\"$PGUSER\" \"$PGDATABASE\" \"$DATABASE_URL\"; "                                                          \
    "echo \"socket=$PGHOST/.s.PGSQL.$PGPORT\"; "                                                              \
    "echo \"datadir=$(psql -X -At -c 'show data_directory')\"; "

Test(pg, cluster_environment_and_removal_after_failure, TIMEOUT)
{
    clk_test_run r;
    clk_test_connleak(PG, ARGS("sh", "-c", SHOW_CLUSTER "exit 3"), NULL, &r);
    clk_assert_status(&r, 3);
    static const char *const vars[] = {"PGHOST=", "PGPORT=", "PGUSER=", "PGDATABASE=", "DATABASE_URL="};
    for (size_t i = 0; i < 5; i++) {
        char *v = line_after(r.proc.out, vars[i]);
        cr_assert(v && *v, "%s not exported: %s\n%s", vars[i], r.proc.out, clk_test_excerpt(r.proc.err));
    }
    char *url = line_after(r.proc.out, "DATABASE_URL=");
    cr_assert(!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11), "DATABASE_URL=%s", url);
    char *port = line_after(r.proc.out, "PGPORT=");
    cr_assert_gt(atoi(port), 0, "PGPORT=%s", port);
    assert_cluster_gone(r.proc.out);
    clk_test_run_free(&r);
}

Test(pg, cluster_removed_when_connleak_is_interrupted, TIMEOUT)
{
    char *dir = clk_test_mkdtemp();
    char *info = clk_test_path(dir, "info");
    char *ready = clk_test_path(dir, "ready");
    char script[4096];
    /* connleak in the background; once its command has written what it
     * knows about the cluster, SIGTERM connleak and wait for it. */
    snprintf(script, sizeof script,
             "\"$CONNLEAK_CLI\" run --postgres -- sh -c '(%s) > \"%s\"; touch \"%s\"; exec sleep 60' & pid=$!; "
             "i=0; while [ ! -e \"%s\" ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done; "
             "kill -TERM $pid; wait $pid; echo \"connleak-status=$?\"; cat \"%s\"",
             "printf \"socket=%s/.s.PGSQL.%s\\n\" \"$PGHOST\" \"$PGPORT\"; echo \"datadir=$(psql -X -At -c \"show data_directory\")\"",
             info, ready, ready, info);
    clk_test_proc p;
    clk_test_exec(ARGS("sh", "-c", script), NULL, NULL, 90, &p);
    cr_assert(!p.timed_out, "connleak did not end after SIGTERM: %s", clk_test_excerpt(p.err));
    long long st = clk_test_stdout_int(p.out, "connleak-status=");
    cr_assert(st != 0 && st != -1, "connleak should fail when interrupted: %s\n%s", p.out, clk_test_excerpt(p.err));
    assert_cluster_gone(p.out);
    clk_test_proc_free(&p);
    clk_test_rmtree(dir);
}
