/* demo.c — the bundled example for `connleak demo`: leaks a SQLite and a PostgreSQL connection and double-closes one. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>

/* A cache that opens its database and forgets to close it. */
__attribute__((noinline)) static sqlite3 *open_settings_cache(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "create table if not exists settings(k text primary key, v text)", NULL, NULL, NULL);
    return db;
}

/* A report job that connects to PostgreSQL and returns early on the happy path. */
__attribute__((noinline)) static int count_orders(void)
{
    PGconn *conn = PQconnectdb(""); /* PGHOST, PGPORT, ... from `connleak run --postgres` */
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "demo: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PGresult *res = PQexec(conn, "select 42");
    int n = PQntuples(res);
    PQclear(res);
    return n; /* conn is never finished */
}

/* Cleanup code that closes what an error path already closed. */
__attribute__((noinline)) static void close_audit_log(sqlite3 *db)
{
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/connleak-demo-settings.db", dir);
    open_settings_cache(path);
    count_orders();
    sqlite3 *audit = NULL;
    sqlite3_open(":memory:", &audit);
    sqlite3_close(audit); /* the error path */
    close_audit_log(audit);
    fprintf(stderr, "demo: done; the program itself exits 0\n");
    return 0;
}
