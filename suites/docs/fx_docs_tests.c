/* fx_docs_tests.c — a Criterion test binary for suites/docs: 3 tests, 2 backends (SQLite and PostgreSQL) and a double close. */
#include <stdio.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#define NOINLINE __attribute__((noinline))

NOINLINE static sqlite3 *open_settings_cache(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    return db;
}

/* A PGconn is open whether or not the server answered: PQfinish is still owed. */
NOINLINE static PGconn *connect_orders_db(void)
{
    PGconn *c = PQconnectdb("connect_timeout=5");
    cr_assert_not_null(c);
    return c;
}

NOINLINE static sqlite3 *open_session(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    return db;
}

NOINLINE static void end_session(sqlite3 *db) { sqlite3_close(db); }
NOINLINE static void end_session_again(sqlite3 *db) { sqlite3_close(db); }

Test(settings, cache_leaks)
{
    (void)open_settings_cache();
}

Test(orders, connection_leaks)
{
    (void)connect_orders_db();
}

Test(session, closed_twice)
{
    sqlite3 *db = open_session();
    end_session(db);
    end_session_again(db);
}
