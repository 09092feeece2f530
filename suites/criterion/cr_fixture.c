/* cr_fixture.c — a Criterion test binary whose fixtures open connections: leaks in a suite's .init, a test's .init and .fini, and a balanced fixture. */
#include <criterion/criterion.h>
#include <sqlite3.h>

static sqlite3 *shared, *managed;

__attribute__((noinline)) static sqlite3 *open_db(const char *name)
{
    sqlite3 *db = NULL;
    sqlite3_open(name, &db);
    return db;
}

/* suite-level .init that never closes what it opens */
__attribute__((noinline)) static void suite_open_shared(void)
{
    shared = open_db("file:suite_shared?mode=memory");
}

TestSuite(suitefix, .init = suite_open_shared);

Test(suitefix, body_is_clean)
{
    cr_assert_not_null(shared);
}

/* test-level .init leaking, plus a leak of the body's own */
__attribute__((noinline)) static void test_open_in_init(void)
{
    shared = open_db("file:test_init?mode=memory");
}

__attribute__((noinline)) static void body_open(void)
{
    cr_assert_not_null(open_db("file:test_body?mode=memory"));
}

Test(testfix, init_and_body_leak, .init = test_open_in_init)
{
    body_open();
}

/* .fini that opens and forgets */
__attribute__((noinline)) static void fini_open_late(void)
{
    open_db("file:test_fini?mode=memory");
}

Test(testfix, fini_leaks, .fini = fini_open_late)
{
}

/* .init opens, .fini closes: no leak */
__attribute__((noinline)) static void managed_open(void)
{
    managed = open_db("file:managed?mode=memory");
}

__attribute__((noinline)) static void managed_close(void)
{
    sqlite3_close(managed);
}

Test(testfix, balanced_fixture, .init = managed_open, .fini = managed_close)
{
    cr_assert_eq(sqlite3_exec(managed, "select 1", NULL, NULL, NULL), SQLITE_OK);
}
