/* conn.c — what a caller does with a checked-out connection: statements, one-value queries, transactions. */
#include "internal.h"

DBC_PUBLIC int dbconf_exec(dbconf_conn *c, const char *sql, char *err, size_t errlen)
{
    if (!c || !sql)
        return dbc_fail(err, errlen, "dbconf: exec needs a connection and a statement");
    return c->engine->be->exec(c, sql, err, errlen);
}

DBC_PUBLIC int dbconf_query_value(dbconf_conn *c, const char *sql, char *out, size_t outlen, char *err,
                                  size_t errlen)
{
    if (!c || !sql)
        return dbc_fail(err, errlen, "dbconf: query needs a connection and a statement");
    return c->engine->be->query_value(c, sql, out, outlen, err, errlen);
}

/* SQLite connections autocommit; a transaction starts only here, with the
 * BEGIN mode the caller asked for, instead of implicitly at the first write. */
DBC_PUBLIC int dbconf_begin(dbconf_conn *c, int with_for_update, char *err, size_t errlen)
{
    if (!c)
        return dbc_fail(err, errlen, "dbconf: begin needs a connection");
    return c->engine->be->exec(c, c->engine->be->begin_sql(with_for_update), err, errlen);
}

DBC_PUBLIC int dbconf_commit(dbconf_conn *c, char *err, size_t errlen)
{
    if (!c)
        return dbc_fail(err, errlen, "dbconf: commit needs a connection");
    return c->engine->be->exec(c, "COMMIT", err, errlen);
}

DBC_PUBLIC int dbconf_rollback(dbconf_conn *c, char *err, size_t errlen)
{
    if (!c)
        return dbc_fail(err, errlen, "dbconf: rollback needs a connection");
    return c->engine->be->exec(c, "ROLLBACK", err, errlen);
}

DBC_PUBLIC int dbconf_in_transaction(const dbconf_conn *c)
{
    return c ? c->engine->be->in_transaction(c) : 0;
}
