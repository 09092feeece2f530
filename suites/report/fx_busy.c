/* fx_busy.c — a connection whose sqlite3_close returns SQLITE_BUSY (a statement left unfinalized) and stays open; and five open at once. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static sqlite3 *open_marker_db(void)
{
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "create table marker_table(x); insert into marker_table values (1)", 0, 0, 0);
    return db;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "five")) {
        sqlite3 *dbs[5];
        for (int i = 0; i < 5; i++)
            sqlite3_open(":memory:", &dbs[i]);
        for (int i = 0; i < 5; i++)
            sqlite3_close(dbs[i]);
        return 0;
    }
    sqlite3 *db = open_marker_db();
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "select * from marker_table", -1, &st, 0);
    sqlite3_step(st);
    printf("close rc=%d\n", sqlite3_close(db)); /* SQLITE_BUSY (5): the statement is still there */
    fflush(stdout);
    _exit(0); /* and the connection stays open */
}
