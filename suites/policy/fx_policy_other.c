/* fx_policy_other.c — fixture: an opener in a file of its own, for suppressions that name a source file. */
#include <sqlite3.h>

#include "fx_policy.h"

NOINLINE void open_elsewhere(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        fx_fail("open_elsewhere");
}
