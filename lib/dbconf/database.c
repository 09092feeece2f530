/* database.c — create, drop and probe the database a configuration names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Runs the schema in one transaction on a connection of the thread's engine. */
static int apply_schema(const dbconf_config *cfg, const char *schema_sql, char *err, size_t errlen)
{
    dbconf_engine *e = dbconf_engine_get(cfg, err, errlen);
    if (!e)
        return -1;
    dbconf_conn *c = dbconf_checkout(e, err, errlen);
    if (!c)
        return -1;
    int rc = 0;
    if (schema_sql && *schema_sql) {
        rc = dbconf_begin(c, 1, err, errlen);
        if (rc == 0)
            rc = dbconf_exec(c, schema_sql, err, errlen);
        if (rc == 0)
            rc = dbconf_commit(c, err, errlen);
        /* on failure the checkin rolls back */
    }
    dbconf_checkin(c);
    return rc;
}

DBC_PUBLIC int dbconf_create_db(const dbconf_config *cfg, const char *schema_sql, char *err, size_t errlen)
{
    if (!cfg)
        return dbc_fail(err, errlen, "dbconf: create_db needs a configuration");
    if (cfg->kind == DBCONF_POSTGRES) {
        if (dbc_pg_create_db(cfg, err, errlen) != 0)
            return -1;
        return schema_sql && *schema_sql ? apply_schema(cfg, schema_sql, err, errlen) : 0;
    }
    /* SQLite creates the file when it opens it; an in-memory database
     * exists while its engine's connection does */
    return apply_schema(cfg, schema_sql, err, errlen);
}

static int unlink_if_there(const char *path, char *err, size_t errlen)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    return dbc_fail(err, errlen, "dbconf: cannot remove %s: %s", path, strerror(errno));
}

DBC_PUBLIC int dbconf_drop_db(const dbconf_config *cfg, char *err, size_t errlen)
{
    if (!cfg)
        return dbc_fail(err, errlen, "dbconf: drop_db needs a configuration");
    /* our own pooled connections would keep it open (and PostgreSQL refuses
     * to drop a database with sessions) */
    dbc_dispose_key(cfg->key);
    if (cfg->kind == DBCONF_POSTGRES)
        return dbc_pg_drop_db(cfg, err, errlen);
    char *fn = dbc_sqlite_filename(cfg->url, err, errlen);
    if (!fn)
        return -1;
    char *path = dbc_sqlite_disk_path(fn);
    free(fn);
    if (!path)
        return 0; /* in memory: gone with its engine */
    int rc = 0;
    static const char *const suffixes[] = {"-wal", "-shm", "-journal", ""};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0] && rc == 0; i++) {
        char *p = dbc_printf("%s%s", path, suffixes[i]);
        rc = p ? unlink_if_there(p, err, errlen) : dbc_fail(err, errlen, "dbconf: out of memory");
        free(p);
    }
    free(path);
    return rc;
}

DBC_PUBLIC int dbconf_db_exists(const dbconf_config *cfg, char *err, size_t errlen)
{
    if (!cfg)
        return dbc_fail(err, errlen, "dbconf: db_exists needs a configuration");
    if (cfg->kind == DBCONF_POSTGRES)
        return dbc_pg_db_exists(cfg, err, errlen);
    char *fn = dbc_sqlite_filename(cfg->url, err, errlen);
    if (!fn)
        return -1;
    char *path = dbc_sqlite_disk_path(fn);
    free(fn);
    if (!path)
        return dbc_cache_has_key(cfg->key);
    int rc = access(path, F_OK) == 0;
    free(path);
    return rc;
}
