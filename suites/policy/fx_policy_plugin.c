/* fx_policy_plugin.c — fixture: an opener in a shared library of its own, for suppressions that name a module. */
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "fx_policy.h"

NOINLINE void plugin_open(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "fx_policy: plugin_open failed\n");
        exit(3);
    }
}
