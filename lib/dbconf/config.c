/* config.c — the configuration object: URL, echo, timeouts, pool settings, test mode, and what follows from them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "internal.h"

DBC_PUBLIC dbconf_config *dbconf_config_new(const char *url, char *err, size_t errlen)
{
    if (!url || !*url) {
        dbc_fail(err, errlen, "dbconf: empty connection URL");
        return NULL;
    }
    dbconf_kind kind;
    if (dbc_url_kind(url, &kind, err, errlen) != 0)
        return NULL;
    dbconf_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    cfg->kind = kind;
    cfg->url = dbc_strdup(url);
    cfg->key = dbc_printf("%s %s", kind == DBCONF_SQLITE ? "sqlite" : "postgresql", url);
    /* only SQLite has in-memory databases: "mode=memory" in a PostgreSQL
     * conninfo would be some option value, not a storage mode */
    cfg->inmemory = kind == DBCONF_SQLITE && dbc_url_is_inmemory(url);
    cfg->pool_size = DBCONF_DEFAULT_POOL_SIZE;
    cfg->max_overflow = DBCONF_DEFAULT_MAX_OVERFLOW;
    cfg->pool_timeout = DBCONF_DEFAULT_POOL_TIMEOUT;
    cfg->test_mode = DBCONF_TEST_MODE_ENV;
    if (!cfg->url || !cfg->key) {
        dbconf_config_free(cfg);
        dbc_fail(err, errlen, "dbconf: out of memory");
        return NULL;
    }
    if (kind == DBCONF_SQLITE) {
        /* reject a URL we could not open now rather than at the first checkout */
        char *fn = dbc_sqlite_filename(url, err, errlen);
        if (!fn) {
            dbconf_config_free(cfg);
            return NULL;
        }
        /* "sqlite://" names no file: SQLite gets ":memory:" */
        if (dbc_url_is_inmemory(fn))
            cfg->inmemory = 1;
        free(fn);
    } else {
        char *ci = dbc_pg_conninfo(url);
        char *perr = NULL;
        PQconninfoOption *opts = ci ? PQconninfoParse(ci, &perr) : NULL;
        free(ci);
        if (!opts) {
            /* libpq's message names what is wrong, never the password */
            size_t n = perr ? strcspn(perr, "\n") : 0;
            dbc_fail(err, errlen, "dbconf: invalid PostgreSQL URL: %.*s", (int)n, perr ? perr : "out of memory");
            PQfreemem(perr);
            dbconf_config_free(cfg);
            return NULL;
        }
        PQconninfoFree(opts);
    }
    return cfg;
}

DBC_PUBLIC dbconf_config *dbconf_config_copy(const dbconf_config *cfg)
{
    if (!cfg)
        return NULL;
    dbconf_config *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *cfg;
    c->url = dbc_strdup(cfg->url);
    c->key = dbc_strdup(cfg->key);
    if (!c->url || !c->key) {
        dbconf_config_free(c);
        return NULL;
    }
    return c;
}

DBC_PUBLIC void dbconf_config_free(dbconf_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->url);
    free(cfg->key);
    free(cfg);
}

static int invalid(void)
{
    errno = EINVAL;
    return -1;
}

DBC_PUBLIC int dbconf_config_set_echo(dbconf_config *cfg, int echo)
{
    if (!cfg)
        return invalid();
    cfg->echo = echo != 0;
    return 0;
}

static int set_seconds(double *field, double seconds, int allow_none)
{
    if (isnan(seconds) || isinf(seconds))
        return invalid();
    if (seconds <= 0) {
        if (!allow_none)
            return invalid();
        seconds = 0;
    }
    *field = seconds;
    return 0;
}

DBC_PUBLIC int dbconf_config_set_timeout(dbconf_config *cfg, double seconds)
{
    return cfg ? set_seconds(&cfg->timeout, seconds, 1) : invalid();
}

DBC_PUBLIC int dbconf_config_set_connect_timeout(dbconf_config *cfg, double seconds)
{
    return cfg ? set_seconds(&cfg->connect_timeout, seconds, 1) : invalid();
}

DBC_PUBLIC int dbconf_config_set_pool_timeout(dbconf_config *cfg, double seconds)
{
    return cfg ? set_seconds(&cfg->pool_timeout, seconds, 0) : invalid();
}

DBC_PUBLIC int dbconf_config_set_pool_size(dbconf_config *cfg, int n)
{
    if (!cfg || n < 1)
        return invalid();
    cfg->pool_size = n;
    return 0;
}

DBC_PUBLIC int dbconf_config_set_max_overflow(dbconf_config *cfg, int n)
{
    if (!cfg || n < -1)
        return invalid();
    cfg->max_overflow = n;
    return 0;
}

DBC_PUBLIC int dbconf_config_set_test_mode(dbconf_config *cfg, dbconf_test_mode mode)
{
    if (!cfg || (mode != DBCONF_TEST_MODE_ENV && mode != DBCONF_TEST_MODE_OFF && mode != DBCONF_TEST_MODE_ON))
        return invalid();
    cfg->test_mode = mode;
    return 0;
}

DBC_PUBLIC dbconf_kind dbconf_config_kind(const dbconf_config *cfg) { return cfg->kind; }
DBC_PUBLIC const char *dbconf_config_url(const dbconf_config *cfg) { return cfg->url; }
DBC_PUBLIC int dbconf_config_echo(const dbconf_config *cfg) { return cfg->echo; }
DBC_PUBLIC double dbconf_config_timeout(const dbconf_config *cfg) { return cfg->timeout; }
DBC_PUBLIC double dbconf_config_connect_timeout(const dbconf_config *cfg) { return cfg->connect_timeout; }
DBC_PUBLIC double dbconf_config_pool_timeout(const dbconf_config *cfg) { return cfg->pool_timeout; }
DBC_PUBLIC int dbconf_config_is_inmemory(const dbconf_config *cfg) { return cfg->inmemory; }
DBC_PUBLIC const char *dbconf_config_unique_key(const dbconf_config *cfg) { return cfg->key; }

/* An in-memory database vanishes with its last connection, so its pool is
 * one connection kept for the engine's whole life. */
DBC_PUBLIC int dbconf_config_pool_size(const dbconf_config *cfg)
{
    return cfg->inmemory ? 1 : cfg->pool_size;
}

DBC_PUBLIC int dbconf_config_max_overflow(const dbconf_config *cfg)
{
    return cfg->inmemory ? 0 : cfg->max_overflow;
}

DBC_PUBLIC int dbconf_config_test_mode(const dbconf_config *cfg, char *err, size_t errlen)
{
    if (cfg->test_mode != DBCONF_TEST_MODE_ENV)
        return cfg->test_mode;
    const char *v = getenv(DBCONF_TEST_MODE_VAR);
    if (!v || !*v)
        return 0;
    static const char *const on[] = {"1", "true", "yes", "on"};
    static const char *const off[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, on[i]) == 0)
            return 1;
        if (strcasecmp(v, off[i]) == 0)
            return 0;
    }
    return dbc_fail(err, errlen, "dbconf: %s=%.40s is not a boolean (use 1/0, true/false, yes/no or on/off)",
                    DBCONF_TEST_MODE_VAR, v);
}

DBC_PUBLIC int dbconf_config_busy_timeout_ms(const dbconf_config *cfg, char *err, size_t errlen)
{
    int t = dbconf_config_test_mode(cfg, err, errlen);
    if (t < 0)
        return -1;
    /* tests want a lock wait to fail fast; a server would rather wait than fail */
    return t ? 5000 : 60000;
}

DBC_PUBLIC int dbconf_sqlite_check_version(int version_number, char *err, size_t errlen)
{
    if (version_number >= DBCONF_MIN_SQLITE_VERSION_NUMBER)
        return 0;
    return dbc_fail(err, errlen, "dbconf: SQLite %s or newer is required, but the SQLite library in use is %d.%d.%d",
                    DBCONF_MIN_SQLITE_VERSION, version_number / 1000000, version_number / 1000 % 1000,
                    version_number % 1000);
}
