/* leaky_fixture.c — a Criterion suite that leaks pooled connections on purpose; test_leak_cli.c runs it under `connleak run`. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "dbconf.h"

static dbconf_engine *engine(char *path, size_t n)
{
    /* test_leak_cli.c gives a directory it removes afterwards (a leaked
     * connection leaves its -wal and -shm files behind) */
    const char *dir = getenv("DBCONF_LEAKY_DIR");
    snprintf(path, n, "%s/dbconf-leaky-%d.db", dir && *dir ? dir : "/tmp", (int)getpid());
    char url[600], err[512] = "";
    snprintf(url, sizeof url, "sqlite:///%s", path);
    dbconf_config *cfg = dbconf_config_new(url, err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    dbconf_config_set_test_mode(cfg, DBCONF_TEST_MODE_ON);
    dbconf_engine *e = dbconf_engine_get(cfg, err, sizeof err);
    cr_assert_not_null(e, "%s", err);
    dbconf_config_free(cfg);
    return e;
}

Test(leaky, checkout_never_returned)
{
    char path[512];
    dbconf_engine *e = engine(path, sizeof path);
    cr_assert_eq(connleak_track_pool(e), 0);
    dbconf_conn *c = dbconf_checkout(e, NULL, 0);
    cr_assert_not_null(c);
    cr_assert_eq(dbconf_exec(c, "CREATE TABLE IF NOT EXISTS t (x)", NULL, 0), 0);
    /* never checked in: the leak connleak must name this function for */
}

Test(leaky, auto_tracked_checkout_never_returned)
{
    char path[512];
    dbconf_engine *e = engine(path, sizeof path);
    /* no connleak_track_pool: under the detector every engine is tracked */
    cr_assert(dbconf_engine_tracked(e), "engines are tracked under connleak run");
    dbconf_conn *c = dbconf_checkout(e, NULL, 0);
    cr_assert_not_null(c);
}

Test(leaky, returned_connection_is_no_leak)
{
    char path[512];
    dbconf_engine *e = engine(path, sizeof path);
    connleak_track_pool(e);
    dbconf_conn *c = dbconf_checkout(e, NULL, 0);
    cr_assert_not_null(c);
    dbconf_checkin(c);
}
