/* cr_subject.c — the Criterion test binary the criterion suites run under connleak: three tests leak a SQLite connection, two close theirs. */
#include <criterion/criterion.h>
#include <sqlite3.h>

/* One opener per leaking test, so the report can name the opener as well as the test. */
__attribute__((noinline)) static sqlite3 *open_orders_db(void)
{
    sqlite3 *db = NULL;
    sqlite3_open(":memory:", &db);
    return db;
}

__attribute__((noinline)) static sqlite3 *open_users_db(void)
{
    sqlite3 *db = NULL;
    sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    return db;
}

__attribute__((noinline)) static sqlite3 *open_audit_db(void)
{
    sqlite3 *db = NULL;
    sqlite3_open("file:audit?mode=memory", &db);
    return db;
}

__attribute__((noinline)) static sqlite3 *open_clean_db(void)
{
    sqlite3 *db = NULL;
    sqlite3_open(":memory:", &db);
    return db;
}

Test(orders, leaks_connection)
{
    cr_assert_not_null(open_orders_db());
}

Test(orders, closes_connection)
{
    sqlite3 *db = open_clean_db();
    cr_assert_not_null(db);
    cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

Test(users, leaks_connection)
{
    cr_assert_not_null(open_users_db());
}

Test(users, closes_connection)
{
    sqlite3 *db = open_clean_db();
    cr_assert_eq(sqlite3_exec(db, "select 1", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_close_v2(db), SQLITE_OK);
}

Test(audit, leaks_on_early_return)
{
    sqlite3 *db = open_audit_db();
    if (sqlite3_exec(db, "select 1", NULL, NULL, NULL) == SQLITE_OK)
        return; /* the bug: the success path forgets to close */
    sqlite3_close(db);
}
