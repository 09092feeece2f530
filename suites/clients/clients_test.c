/* clients_test.c — real client libraries (asyncpg, SQLAlchemy, psycopg2, node-postgres, pgjdbc, psql, pgbench, node sqlite3, PHP, Python sqlite3/aiosqlite) under `connleak run`, with exact counts (issues 11, 12, 13). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clk_assert.h"

/* A test whose feature is not in the tree yet: the client has already been run without the
 * detector (so the program itself is known to work); the detector's part is skipped, saying so.
 * Remove the line once the feature lands: `grep -n CLIENTS_PENDING suites/clients/clients_test.c`.
 * CLIENTS_RUN_PENDING=1 in the environment runs them anyway (to try a feature before that). */
#define CLIENTS_PENDING(feature)                                                                      \
    do {                                                                                              \
        if (!getenv("CLIENTS_RUN_PENDING"))                                                           \
            cr_skip_test("PENDING %s: the client works without the detector; the counts under "        \
                         "connleak are asserted once CLIENTS_PENDING is removed from this test",      \
                         feature);                                                                    \
    } while (0)

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TIMEOUT .timeout = 240

/* Debian's interpreter: the python3-* packages are installed for it, whatever PATH's python3 is (pyenv). */
#define PYTHON "/usr/bin/python3"
#define PGJDBC_JAR "/usr/share/java/postgresql.jar"

static char *program(const char *name)
{
    return clk_test_path(CLIENTS_PROGRAMS, name);
}

/* Does this command succeed (status 0, within the watchdog)? */
static int succeeds(const char *const *argv, const char *const *env)
{
    clk_test_proc p;
    int ok = clk_test_exec(argv, env, NULL, 0, &p) == 0;
    clk_test_proc_free(&p);
    return ok;
}

static void need_python_module(const char *module, const char *package)
{
    if (access(PYTHON, X_OK) != 0)
        cr_skip_test("no %s (Debian's python3)", PYTHON);
    char code[128];
    snprintf(code, sizeof code, "import %s", module);
    if (!succeeds(ARGS(PYTHON, "-c", code), NULL))
        cr_skip_test("%s cannot import %s (Debian's %s is not installed; scripts/setup.sh installs it)", PYTHON,
                     module, package);
}

static void need_command(const char *cmd, const char *package)
{
    char sh[256];
    snprintf(sh, sizeof sh, "command -v %s >/dev/null", cmd);
    if (!succeeds(ARGS("/bin/sh", "-c", sh), NULL))
        cr_skip_test("no %s in PATH (Debian's %s is not installed; scripts/setup.sh installs it)", cmd, package);
}

static void need_postgres(void)
{
    if (!getenv("PGHOST") || !getenv("PGPORT"))
        cr_skip_test("no PGHOST/PGPORT: run under `connleak postgres -- meson test` (scripts/test does)");
}

/* "NODE_PATH=<dir>" for the first of CLIENTS_NODE_DIRS (':'-separated; scripts/test installs the npm
 * packages into build/clients-node) where node can load package `pkg`; skips when none can. */
static const char *node_path_for(const char *pkg)
{
    need_command("node", "nodejs");
    char *dirs = strdup(CLIENTS_NODE_DIRS);
    cr_assert_not_null(dirs);
    char code[128];
    snprintf(code, sizeof code, "require('%s')", pkg);
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        static char env[1100];
        snprintf(env, sizeof env, "NODE_PATH=%s", d);
        if (succeeds(ARGS("node", "-e", code), ARGS(env))) { /* a half-built addon does not load */
            free(dirs);
            return env;
        }
    }
    free(dirs);
    cr_skip_test("node cannot load npm package %s from %s (scripts/test installs it)", pkg, CLIENTS_NODE_DIRS);
    return NULL;
}

static void need_php_extension(const char *ext)
{
    need_command("php", "php-cli");
    char code[128];
    snprintf(code, sizeof code, "exit(extension_loaded('%s') && function_exists('posix_kill') ? 0 : 1);", ext);
    if (!succeeds(ARGS("php", "-r", code), NULL))
        cr_skip_test("PHP has no %s extension (Debian's php-sqlite3 / php-pgsql; scripts/setup.sh installs them)",
                     ext);
}

/* The client on its own, without the detector: it must work against the server (for a pending
 * test, this is what is checked today). */
static void plain_run(const char *const *cmd, const char *const *env, int want_status, const char *want_out)
{
    clk_test_proc p;
    const char *envs[16];
    size_t n = 0;
    envs[n++] = "LD_PRELOAD";
    envs[n++] = "CONNLEAK_OPTIONS";
    for (size_t i = 0; env && env[i] && n < 15; i++)
        envs[n++] = env[i];
    envs[n] = NULL;
    clk_test_exec(cmd, envs, NULL, 0, &p);
    cr_assert_eq(p.status, want_status, "%s without the detector: exit %d, expected %d%s\n--- stdout:\n%s\n--- stderr:\n%s",
                 cmd[1] ? cmd[1] : cmd[0], p.status, want_status, p.timed_out ? " (timed out)" : "",
                 clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    if (want_out)
        cr_assert(clk_test_contains(p.out, want_out), "%s without the detector: no \"%s\" in its output:\n%s\n%s",
                  cmd[1] ? cmd[1] : cmd[0], want_out, clk_test_excerpt(p.out), clk_test_excerpt(p.err));
    clk_test_proc_free(&p);
}

static void assert_counts(clk_test_run *r, int status, long long connects, long long closes, long long leaks)
{
    clk_assert_status(r, status);
    clk_assert_report(r);
    clk_assert_summary(r, "connects", connects);
    clk_assert_summary(r, "closes", closes);
    clk_assert_summary(r, "leaks", leaks);
    clk_assert_summary(r, "double_closes", 0);
    clk_assert_summary(r, "unknown_closes", 0);
}

/* Every leak entry came by this route ("wire", "libpq", "libsqlite3"): a connection counted by
 * the route that owns it, never by another one as well. */
static void assert_leaks_via(clk_test_run *r, const char *via)
{
    json_t *leaks = json_object_get(r->report, "leaks");
    size_t i;
    json_t *leak;
    json_array_foreach(leaks, i, leak)
        cr_assert_str_eq(clk_test_str(leak, "via"), via, "leak %zu: via" CLK_CTX_FMT, i, CLK_CTX(r));
}

/* Does a frame array have the Python frame `function` at `line`? */
static int has_python_frame(const json_t *frames, const char *function, long long line)
{
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f)
        if (strcmp(clk_test_str(f, "function"), function) == 0 && clk_test_int(f, "line") == line &&
            strcmp(clk_test_str(f, "language"), "python") == 0)
            return 1;
    return 0;
}

/* ---- a private TLS-only server (tcp_cluster.sh): the shared cluster offers TLS on TCP, never requires it ---- */

typedef struct tcp_cluster {
    pid_t pid;
    int keep_fd; /* its stdin: closing it (or our exit) stops the server */
    char port[16];
} tcp_cluster;

static void tcp_cluster_start(tcp_cluster *c)
{
    need_command("openssl", "openssl");
    int in[2], out[2];
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    char *script = program("tcp_cluster.sh");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(in[0], 0); /* dup2 clears close-on-exec on 0 and 1 */
        dup2(out[1], 1);
        close_range(3, ~0U, 0); /* nothing of Criterion's (its pipes to the runner) outlives the test in it */
        unsetenv("LD_PRELOAD");
        execl("/bin/sh", "sh", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->pid = pid;
    c->keep_fd = in[1];
    c->port[0] = '\0';

    /* "port=N" then "socketdir=D" once the server takes connections; bounded by the watchdog's time */
    char buf[512] = "";
    size_t len = 0;
    time_t deadline = time(NULL) + CLK_TEST_TIMEOUT_S;
    while (!strstr(buf, "socketdir=") && len < sizeof buf - 1) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        int left = (int)(deadline - time(NULL));
        cr_assert(left > 0 && poll(&pfd, 1, left * 1000) > 0, "tcp_cluster.sh did not start in %d s",
                  CLK_TEST_TIMEOUT_S);
        ssize_t n = read(out[0], buf + len, sizeof buf - 1 - len);
        cr_assert(n > 0, "tcp_cluster.sh failed to start the server (its stderr is above)");
        len += (size_t)n;
        buf[len] = '\0';
    }
    close(out[0]);
    char *p = strstr(buf, "port=");
    cr_assert_not_null(p, "tcp_cluster.sh printed no port: %s", buf);
    snprintf(c->port, sizeof c->port, "%.*s", (int)strspn(p + 5, "0123456789"), p + 5);
}

static void tcp_cluster_stop(tcp_cluster *c)
{
    if (c->pid <= 0)
        return;
    close(c->keep_fd);
    for (int i = 0; i < 300; i++) { /* it stops the server and removes its directory: bounded */
        if (waitpid(c->pid, NULL, WNOHANG) != 0)
            return;
        usleep(100 * 1000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
}

/* Plain TCP: the shared cluster on loopback (CONNLEAK_PG_TCP_HOST at PGPORT, as PGUSER) when
 * `connleak postgres` offers it; else a private tcp_cluster.sh as its user plain. */
typedef struct tcp_target {
    tcp_cluster own;
    const char *host, *port, *user;
} tcp_target;

static void tcp_target_start(tcp_target *t)
{
    memset(t, 0, sizeof *t);
    const char *host = getenv("CONNLEAK_PG_TCP_HOST");
    if (host && *host && getenv("PGPORT") && getenv("PGUSER")) {
        t->host = host;
        t->port = getenv("PGPORT");
        t->user = getenv("PGUSER");
        return;
    }
    tcp_cluster_start(&t->own);
    t->host = "127.0.0.1";
    t->port = t->own.port;
    t->user = "plain";
}

static void tcp_target_stop(tcp_target *t)
{
    tcp_cluster_stop(&t->own);
}

/* ================= PostgreSQL over libpq: exact today, and must stay exact ================= */

Test(clients, psql_counted_once, TIMEOUT)
{
    need_postgres();
    need_command("psql", "postgresql-client");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS("psql", "-X", "-q", "-c", "SELECT 1"), NULL, &r);
    assert_counts(&r, 0, 1, 1, 0);
    clk_test_run_free(&r);
}

Test(clients, pgbench_connect_per_transaction, TIMEOUT)
{
    need_postgres();
    need_command("pgbench", "postgresql-contrib / postgresql");
    char *dir = clk_test_mkdtemp();
    char *script = clk_test_path(dir, "select.sql");
    cr_assert(clk_test_write_file(script, "SELECT 1;\n", 10) == 0);
    clk_test_run r;
    /* -C: a new connection for each of the 5 transactions, plus pgbench's own first one in main */
    clk_test_connleak(NULL, ARGS("pgbench", "-n", "-C", "-c", "1", "-t", "5", "-f", script), NULL, &r);
    cr_assert(clk_test_contains(r.proc.out, "actually processed: 5/5"), "pgbench: %s\n%s",
              clk_test_excerpt(r.proc.out), clk_test_excerpt(r.proc.err));
    assert_counts(&r, 0, 6, 6, 0);
    clk_test_run_free(&r);
    clk_test_rmtree(dir);
}

Test(clients, psycopg2_exact, TIMEOUT)
{
    need_postgres();
    need_python_module("psycopg2", "python3-psycopg2");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(PYTHON, program("psycopg2_conns.py"), "plain"), NULL, &r);
    assert_counts(&r, 23, 3, 2, 1);
    assert_leaks_via(&r, "libpq");
    cr_assert_eq(clk_test_leak_count(r.report, "postgres", NULL, NULL), 1, "one postgres leak" CLK_CTX_FMT,
                 CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* libpq with TLS: the wire route must not count libpq's socket a second time. */
Test(clients, psycopg2_tls_counted_once, TIMEOUT)
{
    need_python_module("psycopg2", "python3-psycopg2");
    tcp_cluster c;
    tcp_cluster_start(&c);
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(PYTHON, program("psycopg2_conns.py"), "tls", c.port), NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "libpq");
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", "127.0.0.1", NULL),
                       "a postgres leak to 127.0.0.1" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    tcp_cluster_stop(&c);
}

/* ================= no PostgreSQL at all: nothing to count ================= */

static void assert_no_connects(const char *mode)
{
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(PYTHON, program("not_postgres.py"), mode), NULL, &r);
    cr_assert(clk_test_contains(r.proc.out, "done"), "not_postgres.py %s: %s\n%s", mode,
              clk_test_excerpt(r.proc.out), clk_test_excerpt(r.proc.err));
    assert_counts(&r, 0, 0, 0, 0);
    clk_test_run_free(&r);
}

Test(clients, http_on_loopback_is_no_connection, TIMEOUT)
{
    need_python_module("http.server", "python3");
    assert_no_connects("http");
}

Test(clients, raw_bytes_are_no_connection, TIMEOUT)
{
    need_python_module("socket", "python3");
    assert_no_connects("raw");
}

Test(clients, udp_sslrequest_is_no_connection, TIMEOUT)
{
    need_python_module("socket", "python3");
    assert_no_connects("udp");
}

/* ================= SQLite from Python: libsqlite3, seen today ================= */

Test(clients, python_sqlite3_leak, TIMEOUT)
{
    need_python_module("sqlite3", "python3");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(PYTHON, program("py_sqlite.py"), "sqlite3"), NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "libsqlite3");
    /* issue 12: the Python frame that opened it (py_sqlite.py line 9, in with_sqlite3) */
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    cr_assert(leak && has_python_frame(json_object_get(leak, "opened_at"), "with_sqlite3", 9),
              "opened_at names with_sqlite3 at line 9" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_leak_count(r.report, "sqlite", NULL, NULL), 1, "one sqlite leak" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(clients, aiosqlite_leak, TIMEOUT)
{
    need_python_module("aiosqlite", "python3-aiosqlite");
    clk_test_run r;
    clk_test_connleak(NULL, ARGS(PYTHON, program("py_sqlite.py"), "aiosqlite"), NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "libsqlite3");
    /* issue 12: opened on aiosqlite's own thread; the thread was created under open_store (line 18) */
    json_t *leak = clk_test_find_leak(r.report, "sqlite", NULL, NULL);
    cr_assert(leak && (has_python_frame(json_object_get(leak, "opened_at"), "open_store", 18) ||
                       has_python_frame(json_object_get(leak, "thread_created_at"), "open_store", 18)),
              "opened_at or thread_created_at names open_store at line 18" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert_eq(clk_test_leak_count(r.report, "sqlite", NULL, NULL), 1, "one sqlite leak" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* ================= PostgreSQL over the wire protocol (issue 11) ================= */

Test(clients, asyncpg_leak, TIMEOUT)
{
    need_postgres();
    need_python_module("asyncpg", "python3-asyncpg");
    const char *const *cmd = ARGS(PYTHON, program("asyncpg_conns.py"), "leak");
    plain_run(cmd, NULL, 0, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "wire");
    cr_assert_eq(clk_test_leak_count(r.report, "postgres", NULL, NULL), 1, "one postgres leak" CLK_CTX_FMT,
                 CLK_CTX(&r));
    cr_assert(clk_test_pids_contain(clk_test_find_leak(r.report, "postgres", NULL, NULL),
                                    clk_test_stdout_int(r.proc.out, "pid=")),
              "the leak is the program's" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* issue 12: the coroutine that opened the leaked connection (asyncpg_conns.py line 12,
 * open_report_conn) is in its stack, although asyncpg connects inside a task of its own
 * (asyncio.wait_for): the awaiting task's coroutines follow the connecting task's frames. */
Test(clients, asyncpg_leak_names_its_coroutine, TIMEOUT)
{
    need_postgres();
    need_python_module("asyncpg", "python3-asyncpg");
    const char *const *cmd = ARGS(PYTHON, program("asyncpg_conns.py"), "leak");
    plain_run(cmd, NULL, 0, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    clk_assert_status(&r, 23);
    clk_assert_report(&r);
    json_t *leak = clk_test_find_leak(r.report, "postgres", NULL, NULL);
    cr_assert_not_null(leak, "a postgres leak" CLK_CTX_FMT, CLK_CTX(&r));
    cr_assert(has_python_frame(json_object_get(leak, "opened_at"), "open_report_conn", 12) ||
                  has_python_frame(json_object_get(leak, "thread_created_at"), "open_report_conn", 12),
              "the stack names open_report_conn at line 12" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
}

/* Three rounds, then a connection the server terminated that the client closes afterwards; plus
 * the connection that terminated it: 5 connects, 5 closes. */
Test(clients, asyncpg_clean_and_terminated, TIMEOUT)
{
    need_postgres();
    need_python_module("asyncpg", "python3-asyncpg");
    const char *const *cmd = ARGS(PYTHON, program("asyncpg_conns.py"), "clean");
    plain_run(cmd, NULL, 0, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    assert_counts(&r, 0, 5, 5, 0);
    clk_test_run_free(&r);
}

/* connleak's counts equal the pool's own events: connects = connect, closes = close +
 * close_detached, leaks = the rest (the one checkout never returned). */
Test(clients, sqlalchemy_async_pool_matches_its_events, TIMEOUT)
{
    need_postgres();
    need_python_module("asyncpg", "python3-asyncpg");
    need_python_module("sqlalchemy.ext.asyncio", "python3-sqlalchemy (1.4)");
    const char *const *cmd = ARGS(PYTHON, program("sqla_async_pool.py"));
    plain_run(cmd, NULL, 0, "pool connect=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    long long connect = -1, close = -1, detached = -1;
    const char *line = strstr(r.proc.out, "pool connect=");
    cr_assert(line && sscanf(line, "pool connect=%lld close=%lld close_detached=%lld", &connect, &close,
                             &detached) == 3,
              "no pool line: %s\n%s", clk_test_excerpt(r.proc.out), clk_test_excerpt(r.proc.err));
    cr_assert_eq(connect - close - detached, 1, "the program leaves exactly one checkout: %s", line);
    assert_counts(&r, 23, connect, close + detached, 1);
    assert_leaks_via(&r, "wire");
    clk_test_run_free(&r);
}

Test(clients, asyncpg_tls, TIMEOUT)
{
    need_python_module("asyncpg", "python3-asyncpg");
    tcp_cluster c;
    tcp_cluster_start(&c);
    const char *const *cmd = ARGS(PYTHON, program("asyncpg_tls.py"), c.port);
    plain_run(cmd, NULL, 0, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "wire");
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", "127.0.0.1", NULL),
                       "a postgres leak to 127.0.0.1" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    tcp_cluster_stop(&c);
}

Test(clients, node_pg_tcp_leak, TIMEOUT)
{
    const char *node_path = node_path_for("pg");
    tcp_target t;
    tcp_target_start(&t);
    const char *const *cmd = ARGS("node", program("node_pg.js"), t.host, t.port, t.user);
    const char *const *env = ARGS(node_path);
    plain_run(cmd, env, 0, "pid=");
    /* libuv (node 18/20) closes its sockets with syscall(SYS_close, fd), not close(): the wire
     * route follows syscall() too */
    clk_test_run r;
    clk_test_connleak(NULL, cmd, env, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "wire");
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", "127.0.0.1", NULL),
                       "a postgres leak to 127.0.0.1" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    tcp_target_stop(&t);
}

/* pgjdbc over plain TCP, or (tls) with sslmode=require to the TLS-only server: two connections, one
 * closed, Runtime.halt with the other open. */
static void pgjdbc_leak(int tls)
{
    need_command("java", "default-jdk-headless");
    need_command("javac", "default-jdk-headless");
    if (!clk_test_exists(PGJDBC_JAR))
        cr_skip_test("no %s (Debian's libpostgresql-jdbc-java; scripts/setup.sh installs it)", PGJDBC_JAR);
    /* compiled once for both runs (java's source launcher would compile it in each) */
    char *classes = clk_test_mkdtemp();
    clk_test_proc jc;
    clk_test_exec(ARGS("javac", "-cp", PGJDBC_JAR, "-d", classes, program("PgJdbcLeak.java")), NULL, NULL, 0, &jc);
    cr_assert_eq(jc.status, 0, "javac: %s", clk_test_excerpt(jc.err));
    clk_test_proc_free(&jc);
    char classpath[1024];
    snprintf(classpath, sizeof classpath, "%s:%s", PGJDBC_JAR, classes);
    tcp_target t;
    if (tls) {
        memset(&t, 0, sizeof t);
        tcp_cluster_start(&t.own);
        t.host = "127.0.0.1";
        t.port = t.own.port;
        t.user = "postgres"; /* TLS only, for this user */
    } else {
        tcp_target_start(&t);
    }
    const char *const *cmd = ARGS("java", "-cp", classpath, "PgJdbcLeak", t.host, t.port, t.user, tls ? "tls" : "plain");
    plain_run(cmd, NULL, 0, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    assert_counts(&r, 23, 2, 1, 1);
    assert_leaks_via(&r, "wire");
    /* Java's sockets are AF_INET6 with the address IPv4-mapped (::ffff:127.0.0.1) */
    cr_assert_not_null(clk_test_find_leak(r.report, "postgres", "127.0.0.1", NULL),
                       "a postgres leak to 127.0.0.1" CLK_CTX_FMT, CLK_CTX(&r));
    clk_test_run_free(&r);
    tcp_target_stop(&t);
    clk_test_rmtree(classes);
}

Test(clients, pgjdbc_tcp_leak, TIMEOUT) { pgjdbc_leak(0); }
Test(clients, pgjdbc_tls_leak, TIMEOUT) { pgjdbc_leak(1); }

/* ================= libraries that bind past the preload (issue 13) ================= */

/* node's sqlite3 carries its own SQLite in an RTLD_LOCAL addon: same output and status as a
 * plain run (7 is its own status, which wins over 23), and its connections counted. */
Test(clients, node_sqlite3_unchanged_and_counted, TIMEOUT)
{
    const char *node_path = node_path_for("sqlite3");
    const char *const *cmd = ARGS("node", program("node_sqlite3.js"));
    const char *const *env = ARGS(node_path);
    plain_run(cmd, env, 7, "answers 1 2\n");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, env, &r);
    cr_assert_str_eq(r.proc.out, "answers 1 2\n", "stdout under the detector" CLK_CTX_FMT, CLK_CTX(&r));
    assert_counts(&r, 7, 2, 1, 1);
    clk_test_run_free(&r);
}

/* PHP loads its extensions RTLD_DEEPBIND. The program kills itself (SIGKILL: 137) so PHP's
 * shutdown cannot close the second connection. */
static void php_leak(const char *mode, const char *ext, const char *backend)
{
    need_php_extension(ext);
    if (strcmp(backend, "postgres") == 0)
        need_postgres();
    const char *const *cmd = ARGS("php", program("php_conns.php"), mode);
    plain_run(cmd, NULL, 137, "pid=");
    clk_test_run r;
    clk_test_connleak(NULL, cmd, NULL, &r);
    assert_counts(&r, 137, 2, 1, 1);
    cr_assert_eq(clk_test_leak_count(r.report, backend, NULL, NULL), 1, "one %s leak" CLK_CTX_FMT, backend,
                 CLK_CTX(&r));
    clk_test_run_free(&r);
}

Test(clients, php_sqlite3_leak, TIMEOUT) { php_leak("sqlite3", "sqlite3", "sqlite"); }
Test(clients, php_pdo_sqlite_leak, TIMEOUT) { php_leak("pdo_sqlite", "pdo_sqlite", "sqlite"); }
Test(clients, php_pgsql_leak, TIMEOUT) { php_leak("pgsql", "pgsql", "postgres"); }
Test(clients, php_pdo_pgsql_leak, TIMEOUT) { php_leak("pdo_pgsql", "pdo_pgsql", "postgres"); }
