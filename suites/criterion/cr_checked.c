/* cr_checked.c — a Criterion test binary using connleak_criterion.h: CONNLEAK_TEST fails the tests that leave a connection open or close one twice. */
#include <sqlite3.h>

#include <connleak_criterion.h>

/* Openers are non-static and the binary is linked with export_dynamic, so the
 * check's dladdr-based stacks can name them. */
__attribute__((noinline)) sqlite3 *checked_open_orders(void)
{
    sqlite3 *db = NULL;
    sqlite3_open(":memory:", &db);
    return db;
}

__attribute__((noinline)) sqlite3 *checked_open_users(void)
{
    sqlite3 *db = NULL;
    sqlite3_open_v2("file:checked_users?mode=memory", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    return db;
}

/* A pool that reports to the tracker (as dbconf does): seen with or without the preload. */
static int pool_conns[4];

__attribute__((noinline)) void checked_pool_checkout(int i)
{
    connleak_record(CONNLEAK_EVENT_CHECKOUT, CONNLEAK_BACKEND_POSTGRES, &pool_conns[i], NULL);
}

__attribute__((noinline)) void checked_pool_close(int i)
{
    connleak_record(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_POSTGRES, &pool_conns[i], "postgresql://app@db/orders");
}

static void pool_connect(int i)
{
    connleak_record(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_POSTGRES, &pool_conns[i], "postgresql://app@db/orders");
}

CONNLEAK_TEST(raw, leaks_open)
{
    cr_assert_not_null(checked_open_orders());
}

CONNLEAK_TEST(raw, leaks_open_v2)
{
    cr_assert_not_null(checked_open_users());
}

CONNLEAK_TEST(raw, closes)
{
    sqlite3 *db = checked_open_orders();
    cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

CONNLEAK_TEST(pool, leaks_checkout)
{
    pool_connect(0);
    checked_pool_checkout(0); /* never checked in */
    checked_pool_close(0);
}

CONNLEAK_TEST(pool, double_close)
{
    pool_connect(1);
    checked_pool_close(1);
    checked_pool_close(1);
}

CONNLEAK_TEST(pool, checks_in)
{
    pool_connect(2);
    checked_pool_checkout(2);
    connleak_record(CONNLEAK_EVENT_CHECKIN, CONNLEAK_BACKEND_POSTGRES, &pool_conns[2], NULL);
    checked_pool_close(2);
}

/* A fixture-owned connection is open when the body starts: not the body's. */
static sqlite3 *managed;

static void managed_open(void)
{
    managed = checked_open_orders();
}

static void managed_close(void)
{
    sqlite3_close(managed);
}

CONNLEAK_TEST(fixture, balanced, .init = managed_open, .fini = managed_close)
{
    cr_assert_eq(sqlite3_exec(managed, "select 1", NULL, NULL, NULL), SQLITE_OK);
}
