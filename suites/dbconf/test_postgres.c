/* test_postgres.c — what only PostgreSQL does, against a real server: timeouts and jit, pre-ping, connect timeout, create/drop, URL forms, fork. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "dbt.h"

TestSuite(postgres, .init = dbt_pg_setup, .fini = dbt_pg_teardown, .timeout = 30);

static char *show(dbconf_conn *c, const char *setting)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SHOW %s", setting);
    return dbt_value(c, sql);
}

static char *server_default_jit(void)
{
    PGconn *pg = dbt_pg_admin();
    PGresult *r = PQexec(pg, "SHOW jit");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return v;
}

static const char *conninfo_value(PGconn *pg, const char *keyword, char *buf, size_t n)
{
    PQconninfoOption *opts = PQconninfo(pg);
    buf[0] = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val)
            snprintf(buf, n, "%s", o->val);
    PQconninfoFree(opts);
    return buf;
}

Test(postgres, timeouts_and_jit_read_back)
{
    static const struct {
        double timeout, connect_timeout;
        const char *statement_timeout, *jit, *connect;
    } cases[] = {
        {1.5, 3, "1500ms", "off", "3"},
        {2, 0, "2s", "off", ""},
        {0, 3, "0", "off", "3"},
        {0, 0, "0", NULL, ""}, /* NULL: the server's own default */
    };
    char *dflt = server_default_jit();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dbconf_config *cfg = dbt_config(1, 0, 2.0);
        dbconf_config_set_timeout(cfg, cases[i].timeout);
        dbconf_config_set_connect_timeout(cfg, cases[i].connect_timeout);
        dbconf_conn *c = dbt_checkout(dbt_engine(cfg));
        char *st = show(c, "statement_timeout"), *jit = show(c, "jit"), buf[64];
        cr_assert_str_eq(st, cases[i].statement_timeout, "case %zu", i);
        cr_assert_str_eq(jit, cases[i].jit ? cases[i].jit : dflt, "case %zu", i);
        cr_assert_str_eq(conninfo_value(dbconf_conn_pg(c), "connect_timeout", buf, sizeof buf), cases[i].connect,
                         "case %zu", i);
        free(st);
        free(jit);
        dbconf_checkin(c);
        dbconf_config_free(cfg);
    }
    free(dflt);
}

Test(postgres, connect_timeout_bounds_a_silent_server)
{
    /* a socket that accepts connections in the kernel but never answers */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    char url[256];
    snprintf(url, sizeof url, "postgresql://nobody@127.0.0.1:%d/nowhere?sslmode=disable", ntohs(sa.sin_port));
    dbconf_config *cfg = dbt_config_url(url);
    dbconf_config_set_connect_timeout(cfg, 1); /* libpq's floor is 2 s */
    dbconf_engine *e = dbt_engine(cfg);
    char err[512] = "";
    double t0 = dbt_now();
    dbconf_conn *c = dbconf_checkout(e, err, sizeof err);
    double took = dbt_now() - t0;
    cr_assert_null(c);
    cr_assert(took >= 0.9 && took < 8.0, "gave up after %.2f s", took);
    cr_assert(strstr(err, "cannot connect") && strstr(err, "timeout"), "unclear error: %s", err);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.open, 0, "a failed connect gives its slot back");
    close(fd);
    dbconf_config_free(cfg);
}

/* Terminates a server session from outside and waits until it is gone. */
static void terminate_backend(const char *pid)
{
    PGconn *admin = dbt_pg_admin();
    const char *vals[1] = {pid};
    PGresult *r = PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, vals, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(admin));
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    for (int i = 0; i < 500; i++) {
        r = PQexecParams(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1, NULL, vals, NULL,
                         NULL, 0);
        int gone = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0;
        PQclear(r);
        if (gone)
            break;
        usleep(10000);
    }
    PQfinish(admin);
}

Test(postgres, pre_ping_replaces_a_terminated_connection)
{
    dbconf_config *cfg = dbt_config(2, 0, 2.0);
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert_eq(connleak_track_pool(e), 0);
    dbconf_conn *c = dbt_checkout(e);
    char *pid = dbt_value(c, "SELECT pg_backend_pid()");
    dbconf_checkin(c);
    connleak_counts before, n;
    connleak_get_counts(&before);

    terminate_backend(pid);
    char err[512] = "";
    c = dbconf_checkout(e, err, sizeof err);
    cr_assert_not_null(c, "the caller never sees the dead connection: %s", err);
    char *pid2 = dbt_value(c, "SELECT pg_backend_pid()");
    cr_assert_str_neq(pid, pid2, "a new session");

    connleak_get_counts(&n);
    cr_assert_eq(n.closes - before.closes, 1, "the tracker counts the dead connection's close");
    cr_assert_eq(n.connects - before.connects, 1, "and its replacement's connect");
    cr_assert_eq(n.open, before.open, "one out, one in");
    cr_assert_eq(n.left_field_closes, 0);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.ping_failures, 1);
    cr_assert_eq(st.open, 1);
    dbconf_checkin(c);
    free(pid);
    free(pid2);
    dbconf_config_free(cfg);
}

Test(postgres, a_connection_broken_while_out_is_not_pooled)
{
    dbconf_config *cfg = dbt_config(2, 0, 2.0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    char *pid = dbt_value(c, "SELECT pg_backend_pid()");
    terminate_backend(pid);
    char err[512] = "";
    cr_assert_eq(dbconf_exec(c, "SELECT 1", err, sizeof err), -1);
    cr_assert(strstr(err, "PostgreSQL"), "%s", err);
    dbconf_checkin(c);
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.idle, 0);
    cr_assert_eq(st.open, 0);
    cr_assert_eq(st.closes, 1);
    c = dbt_checkout(e);
    cr_assert_eq(dbt_int(c, "SELECT 3"), 3);
    dbconf_checkin(c);
    free(pid);
    dbconf_config_free(cfg);
}

Test(postgres, create_and_drop_database)
{
    char name[64];
    dbt_pg_new_name(name, sizeof name, "cd");
    char *ci = dbt_pg_conninfo(name);
    dbconf_config *cfg = dbt_config_url(ci);
    char err[512] = "";
    cr_assert_eq(dbconf_db_exists(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_create_db(cfg, "CREATE TABLE a (x int PRIMARY KEY); CREATE TABLE b (y int REFERENCES a)",
                                  err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(dbconf_db_exists(cfg, err, sizeof err), 1, "%s", err);
    cr_assert_eq(dbconf_create_db(cfg, NULL, err, sizeof err), 0, "creating what exists is fine: %s", err);

    dbconf_conn *c = dbt_checkout(dbt_engine(cfg));
    cr_assert_eq(dbt_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 2);
    char *db = dbt_value(c, "SELECT current_database()");
    cr_assert_str_eq(db, name);
    free(db);
    dbconf_checkin(c); /* stays pooled: drop must dispose it first */

    cr_assert_eq(dbconf_drop_db(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_db_exists(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dbconf_engine_cache_size(), 0, "drop disposed the pooled engine");
    cr_assert_eq(dbconf_drop_db(cfg, err, sizeof err), 0, "dropping what is gone is fine: %s", err);

    /* a failing schema says why */
    cr_assert_eq(dbconf_create_db(cfg, "CREATE TABLE broken (", err, sizeof err), -1);
    cr_assert(strstr(err, "syntax error"), "%s", err);
    dbconf_drop_db(cfg, NULL, 0);
    free(ci);
    dbconf_config_free(cfg);
}

Test(postgres, url_forms)
{
    char *uri = dbt_pg_uri(dbt.dbname);
    char alt[2300];
    snprintf(alt, sizeof alt, "postgresql+asyncpg://%s", strstr(uri, "://") + 3);
    const char *urls[] = {uri, alt, dbt.url};
    for (size_t i = 0; i < 3; i++) {
        dbconf_config *cfg = dbt_config_url(urls[i]);
        cr_assert_eq(dbconf_config_kind(cfg), DBCONF_POSTGRES, "%s", urls[i]);
        cr_assert_not(dbconf_config_is_inmemory(cfg));
        dbconf_conn *c = dbt_checkout(dbt_engine(cfg));
        char *db = dbt_value(c, "SELECT current_database()");
        cr_assert_str_eq(db, dbt.dbname, "%s", urls[i]);
        free(db);
        char *app = dbt_value(c, "SHOW application_name");
        cr_assert_str_eq(app, "dbconf");
        free(app);
        dbconf_checkin(c);
        dbconf_config_free(cfg);
    }
    free(uri);
}

Test(postgres, url_options_are_kept_with_ours)
{
    char *uri = dbt_pg_uri(dbt.dbname);
    char url[2300];
    snprintf(url, sizeof url, "%s%soptions=-c%%20search_path%%3Dmyschema", uri, strchr(uri, '?') ? "&" : "?");
    dbconf_config *cfg = dbt_config_url(url);
    dbconf_config_set_timeout(cfg, 1);
    dbconf_conn *c = dbt_checkout(dbt_engine(cfg));
    char *sp = show(c, "search_path"), *st = show(c, "statement_timeout"), *jit = show(c, "jit");
    cr_assert_str_eq(sp, "myschema");
    cr_assert_str_eq(st, "1s");
    cr_assert_str_eq(jit, "off");
    free(sp);
    free(st);
    free(jit);
    dbconf_checkin(c);
    free(uri);
    dbconf_config_free(cfg);
}

Test(postgres, passwords_stay_out_of_targets_and_errors)
{
    /* port 1 on loopback refuses at once */
    dbconf_config *cfg = dbt_config_url("postgresql://someone:s3cret@127.0.0.1:1/app?sslmode=disable");
    dbconf_engine *e = dbt_engine(cfg);
    cr_assert(strstr(dbconf_engine_target(e), "someone@127.0.0.1:1/app"), "%s", dbconf_engine_target(e));
    cr_assert_null(strstr(dbconf_engine_target(e), "s3cret"));
    char err[512] = "";
    cr_assert_null(dbconf_checkout(e, err, sizeof err));
    cr_assert(strstr(err, "cannot connect to postgresql://someone@127.0.0.1:1/app"), "%s", err);
    cr_assert_null(strstr(err, "s3cret"), "%s", err);
    cr_assert_null(dbconf_config_new("host=x port=notaport= dbname", err, sizeof err));
    dbconf_config_free(cfg);
}

Test(postgres, a_forked_child_leaves_the_parents_connections_alone)
{
    dbconf_config *cfg = dbt_config(1, 0, 2.0);
    dbconf_engine *e = dbt_engine(cfg);
    dbconf_conn *c = dbt_checkout(e);
    char *pid = dbt_value(c, "SELECT pg_backend_pid()");
    void *handle = dbconf_conn_handle(c);
    dbconf_checkin(c);

    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        /* what the child's exit handler does (exit() itself would also run
         * Criterion's): its cache starts empty, so the parent's pooled
         * session is not finished from here */
        int inherited = (int)dbconf_engine_cache_size();
        dbconf_dispose_all_engines();
        _exit(inherited == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child started with an empty cache");

    c = dbt_checkout(e);
    cr_assert_eq(dbconf_conn_handle(c), handle);
    char *pid2 = dbt_value(c, "SELECT pg_backend_pid()");
    cr_assert_str_eq(pid, pid2, "the same session survived the child");
    dbconf_pool_stats st;
    dbconf_engine_stats(e, &st);
    cr_assert_eq(st.ping_failures, 0);
    dbconf_checkin(c);
    free(pid);
    free(pid2);
    dbconf_config_free(cfg);
}
