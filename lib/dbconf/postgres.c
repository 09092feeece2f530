/* postgres.c — the PostgreSQL backend over libpq: connection parameters with timeouts and jit, pre-ping, statements, create/drop database. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Connection parameters as PQconnectdbParams takes them, built once per
 * engine from the URL and the configuration. */
struct pg_params {
    const char **kw;
    const char **val;
    char **owned;      /* strings we allocated (freed with the params) */
    int n, nowned;
    const char *dbname, *user, *host, *port; /* as the URL gave them, or NULL */
};

static void params_free(struct pg_params *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nowned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->kw);
    free(p->val);
    free(p);
}

static const char *own(struct pg_params *p, char *s)
{
    if (s)
        p->owned[p->nowned++] = s;
    return s;
}

/* Parses cfg's URL into parameters; `dbname` (may be NULL) replaces the
 * database (the maintenance connection of create/drop). */
static struct pg_params *params_build(const dbconf_config *cfg, const char *dbname, char *err, size_t errlen)
{
    char *conninfo = dbc_pg_conninfo(cfg->url);
    if (!conninfo) {
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    free(conninfo);
    if (!opts) {
        /* libpq names what is wrong without echoing the string (and its password) */
        size_t n = perr ? strcspn(perr, "\n") : 0;
        dbc_fail(err, errlen, "dbconf: invalid PostgreSQL URL: %.*s", (int)n, perr ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    int nopts = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        nopts++;
    struct pg_params *p = calloc(1, sizeof *p);
    int cap = nopts + 4;
    if (p) {
        p->kw = calloc((size_t)cap + 1, sizeof *p->kw);
        p->val = calloc((size_t)cap + 1, sizeof *p->val);
        p->owned = calloc((size_t)cap * 2 + 4, sizeof *p->owned);
    }
    if (!p || !p->kw || !p->val || !p->owned) {
        PQconninfoFree(opts);
        params_free(p);
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }

    const char *user_options = NULL, *user_connect_timeout = NULL;
    int has_app_name = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        if (strcmp(o->keyword, "options") == 0) {
            user_options = own(p, dbc_strdup(o->val));
            continue;
        }
        if (strcmp(o->keyword, "connect_timeout") == 0) {
            user_connect_timeout = own(p, dbc_strdup(o->val));
            continue;
        }
        if (strcmp(o->keyword, "dbname") == 0 && dbname)
            continue;
        if (strcmp(o->keyword, "application_name") == 0 || strcmp(o->keyword, "fallback_application_name") == 0)
            has_app_name = 1;
        const char *v = own(p, dbc_strdup(o->val));
        p->kw[p->n] = own(p, dbc_strdup(o->keyword));
        p->val[p->n++] = v;
        if (strcmp(o->keyword, "dbname") == 0)
            p->dbname = v;
        else if (strcmp(o->keyword, "user") == 0)
            p->user = v;
        else if (strcmp(o->keyword, "host") == 0)
            p->host = v;
        else if (strcmp(o->keyword, "port") == 0)
            p->port = v;
    }
    PQconninfoFree(opts);

    if (dbname) {
        p->kw[p->n] = "dbname";
        p->val[p->n++] = p->dbname = own(p, dbc_strdup(dbname));
    }
    if (!has_app_name) {
        /* lets pg_stat_activity show whose connections these are */
        p->kw[p->n] = "fallback_application_name";
        p->val[p->n++] = "dbconf";
    }

    /* Server settings ride in the startup packet, so they hold from the
     * first statement on. Ours come last: on a repeated -c the last wins. */
    char extra[256] = "";
    if (cfg->timeout > 0) {
        long ms = (long)ceil(cfg->timeout * 1000.0);
        snprintf(extra, sizeof extra, "-c statement_timeout=%ld", ms < 1 ? 1 : ms);
    }
    if (cfg->timeout > 0 || cfg->connect_timeout > 0)
        /* JIT compilation can cost more than a short timeout allows */
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s-c jit=off", extra[0] ? " " : "");
    if (user_options || extra[0]) {
        p->kw[p->n] = "options";
        p->val[p->n++] = user_options && extra[0] ? own(p, dbc_printf("%s %s", user_options, extra))
                         : user_options           ? user_options
                                                  : own(p, dbc_strdup(extra));
    }
    if (cfg->connect_timeout > 0) {
        /* libpq counts whole seconds (and treats 1 as 2) */
        p->kw[p->n] = "connect_timeout";
        p->val[p->n++] = own(p, dbc_printf("%ld", (long)ceil(cfg->connect_timeout)));
    } else if (user_connect_timeout) {
        p->kw[p->n] = "connect_timeout";
        p->val[p->n++] = user_connect_timeout;
    }
    p->kw[p->n] = NULL;
    p->val[p->n] = NULL;
    for (int i = 0; i < p->n; i++)
        if (!p->kw[i] || !p->val[i]) {
            params_free(p);
            dbc_fail(err, errlen, "dbconf: out of memory");
            return NULL;
        }
    return p;
}

static const char *env_or(const char *v, const char *var)
{
    if (v && *v)
        return v;
    v = getenv(var);
    return v && *v ? v : NULL;
}

/* postgresql://user@host:port/db, never with the password. */
static char *params_display(const struct pg_params *p)
{
    const char *user = env_or(p->user, "PGUSER");
    const char *host = env_or(p->host, "PGHOST");
    const char *port = env_or(p->port, "PGPORT");
    const char *db = env_or(p->dbname, "PGDATABASE");
    return dbc_printf("postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "", host ? host : "",
                      port ? ":" : "", port ? port : "", db ? db : (user ? user : ""));
}

static int pg_engine_init(dbconf_engine *e, char *err, size_t errlen)
{
    struct pg_params *p = params_build(e->cfg, NULL, err, errlen);
    if (!p)
        return -1;
    e->be_data = p;
    e->target = params_display(p);
    if (!e->target)
        return dbc_fail(err, errlen, "dbconf: out of memory");
    return 0;
}

static void pg_engine_free(dbconf_engine *e)
{
    params_free(e->be_data);
    free(e->target);
    e->be_data = NULL;
    e->target = NULL;
}

/* Opens a connection with `p`; on failure the PGconn is finished (libpq
 * requires it even then) and err says why. */
static PGconn *pg_open(const struct pg_params *p, const char *target, char *err, size_t errlen)
{
    PGconn *pg = PQconnectdbParams(p->kw, p->val, 0);
    if (!pg) {
        dbc_fail(err, errlen, "dbconf: cannot connect to %s: out of memory", target);
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        dbc_fail(err, errlen, "dbconf: cannot connect to %s: %s", target, PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static int pg_connect(dbconf_engine *e, void **handle, void **state, char *err, size_t errlen)
{
    PGconn *pg = pg_open(e->be_data, e->target, err, errlen);
    if (!pg)
        return -1;
    *handle = pg;
    *state = NULL;
    return 0;
}

static void pg_close(dbconf_engine *e, void *handle, void *state)
{
    PQfinish(handle);
}

/* Is the server still there? An empty query is the cheapest round trip. */
static int pg_ping(dbconf_engine *e, void *handle)
{
    PGconn *pg = handle;
    if (PQstatus(pg) != CONNECTION_OK)
        return 0;
    PGresult *r = PQexec(pg, "");
    int ok = r && PQresultStatus(r) == PGRES_EMPTY_QUERY && PQstatus(pg) == CONNECTION_OK;
    PQclear(r);
    return ok;
}

static int result_ok(PGresult *r)
{
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY;
}

static int pg_error(PGconn *pg, PGresult *r, char *err, size_t errlen)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(pg);
    return dbc_fail(err, errlen, "dbconf: PostgreSQL: %s", msg && *msg ? msg : "unknown error");
}

static int pg_exec(dbconf_conn *c, const char *sql, char *err, size_t errlen)
{
    dbc_echo(c->engine, sql);
    PGresult *r = PQexec(c->handle, sql);
    int rc = result_ok(r) ? 0 : pg_error(c->handle, r, err, errlen);
    PQclear(r);
    return rc;
}

static int pg_query_value(dbconf_conn *c, const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
    dbc_echo(c->engine, sql);
    PGresult *r = PQexec(c->handle, sql);
    if (!result_ok(r)) {
        pg_error(c->handle, r, err, errlen);
        PQclear(r);
        return -1;
    }
    int got = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0;
    if (out && outlen)
        snprintf(out, outlen, "%s", got && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return got;
}

static int pg_in_transaction(const dbconf_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->handle);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pg_usable(const dbconf_conn *c)
{
    return PQstatus(c->handle) == CONNECTION_OK && PQtransactionStatus(c->handle) != PQTRANS_UNKNOWN;
}

/* PostgreSQL has no BEGIN IMMEDIATE: callers lock rows with SELECT ... FOR UPDATE. */
static const char *pg_begin_sql(int with_for_update)
{
    return "BEGIN";
}

const struct dbc_backend dbc_pg_backend = {
    .name = "postgresql",
    .engine_init = pg_engine_init,
    .engine_free = pg_engine_free,
    .connect = pg_connect,
    .close = pg_close,
    .ping = pg_ping,
    .exec = pg_exec,
    .query_value = pg_query_value,
    .in_transaction = pg_in_transaction,
    .usable = pg_usable,
    .begin_sql = pg_begin_sql,
};

/* ---- create / drop / exists, through a maintenance database ---- */

struct maint {
    PGconn *pg;
    char *dbname; /* the configured database */
};

static void maint_echo(const dbconf_config *cfg, const char *sql)
{
    if (cfg->echo)
        fprintf(stderr, "dbconf[postgresql]: %s\n", sql);
}

static void quiet_notices(void *arg, const char *message) {}

/* Connects to "postgres" (or "template1" when the target is "postgres" or
 * "postgres" is missing) and works out the configured database's name. */
static int maint_open(const dbconf_config *cfg, struct maint *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof m[0]);
    struct pg_params *own_p = params_build(cfg, NULL, err, errlen);
    if (!own_p)
        return -1;
    char *target = params_display(own_p);
    const char *db = env_or(own_p->dbname, "PGDATABASE");
    m->dbname = dbc_strdup(db);
    params_free(own_p);

    /* the first error is the telling one; template1 is only a fallback */
    const char *candidates[2] = {"postgres", "template1"};
    char scratch[512];
    int tried = 0;
    for (int i = 0; i < 2 && !m->pg; i++) {
        if (m->dbname && strcmp(m->dbname, candidates[i]) == 0)
            continue;
        struct pg_params *p = params_build(cfg, candidates[i], err, errlen);
        if (!p)
            break;
        m->pg = pg_open(p, target ? target : "PostgreSQL", tried ? scratch : err, tried ? sizeof scratch : errlen);
        params_free(p);
        tried = 1;
    }
    free(target);
    if (!m->pg) {
        free(m->dbname);
        m->dbname = NULL;
        return -1;
    }
    /* "does not exist, skipping" and the like are expected here */
    if (!cfg->echo)
        PQsetNoticeProcessor(m->pg, quiet_notices, NULL);
    if (!m->dbname) /* libpq's default database is the user's name */
        m->dbname = dbc_strdup(PQuser(m->pg));
    return 0;
}

static void maint_close(struct maint *m)
{
    PQfinish(m->pg);
    free(m->dbname);
    m->pg = NULL;
    m->dbname = NULL;
}

static int maint_exists(const dbconf_config *cfg, struct maint *m, char *err, size_t errlen)
{
    const char *sql = "SELECT 1 FROM pg_database WHERE datname = $1";
    maint_echo(cfg, sql);
    const char *vals[1] = {m->dbname};
    PGresult *r = PQexecParams(m->pg, sql, 1, NULL, vals, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) > 0 : pg_error(m->pg, r, err, errlen);
    PQclear(r);
    return rc;
}

/* Runs CREATE/DROP DATABASE <name>; `ok_state` is an SQLSTATE that counts as success. */
static int maint_db_statement(const dbconf_config *cfg, struct maint *m, const char *verb, const char *ok_state,
                              char *err, size_t errlen)
{
    char *ident = PQescapeIdentifier(m->pg, m->dbname, strlen(m->dbname));
    if (!ident)
        return pg_error(m->pg, NULL, err, errlen);
    char *sql = dbc_printf("%s %s", verb, ident);
    PQfreemem(ident);
    if (!sql)
        return dbc_fail(err, errlen, "dbconf: out of memory");
    maint_echo(cfg, sql);
    PGresult *r = PQexec(m->pg, sql);
    free(sql);
    int rc = 0;
    if (!result_ok(r)) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!(ok_state && state && strcmp(state, ok_state) == 0))
            rc = pg_error(m->pg, r, err, errlen);
    }
    PQclear(r);
    return rc;
}

int dbc_pg_create_db(const dbconf_config *cfg, char *err, size_t errlen)
{
    struct maint m;
    if (maint_open(cfg, &m, err, errlen) != 0)
        return -1;
    int rc = maint_exists(cfg, &m, err, errlen);
    if (rc == 0) /* 42P04: created meanwhile by someone else, which is what we wanted */
        rc = maint_db_statement(cfg, &m, "CREATE DATABASE", "42P04", err, errlen);
    else if (rc == 1)
        rc = 0;
    maint_close(&m);
    return rc;
}

int dbc_pg_drop_db(const dbconf_config *cfg, char *err, size_t errlen)
{
    struct maint m;
    if (maint_open(cfg, &m, err, errlen) != 0)
        return -1;
    int rc = maint_db_statement(cfg, &m, "DROP DATABASE IF EXISTS", NULL, err, errlen);
    maint_close(&m);
    return rc;
}

int dbc_pg_db_exists(const dbconf_config *cfg, char *err, size_t errlen)
{
    struct maint m;
    if (maint_open(cfg, &m, err, errlen) != 0)
        return -1;
    int rc = maint_exists(cfg, &m, err, errlen);
    maint_close(&m);
    return rc;
}
