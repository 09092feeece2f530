/* seed_pool.c — run by fuzz/make_journal_seeds under the recorder: pool records (connleak_record) next to a wrapper event. */
#include <dlfcn.h>
#include <sqlite3.h>

#include "connleak.h"

typedef int (*record_fn)(connleak_event, connleak_backend, const void *, const char *);

int main(void)
{
    /* the preloaded recorder's copy, looked up so this program needs no link to libconnleak */
    record_fn rec = (record_fn)dlsym(RTLD_DEFAULT, "connleak_record");
    if (!rec)
        return 1;
    static int a, b, c;
    rec(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_SQLITE, &a, "file:pool.db");
    rec(CONNLEAK_EVENT_CHECKOUT, CONNLEAK_BACKEND_SQLITE, &a, "file:pool.db");
    rec(CONNLEAK_EVENT_CHECKIN, CONNLEAK_BACKEND_SQLITE, &a, NULL);
    rec(CONNLEAK_EVENT_CHECKOUT, CONNLEAK_BACKEND_SQLITE, &a, "file:pool.db"); /* never checked in */
    rec(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_POSTGRES, &b, "postgresql://u:secret@h/db");
    rec(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_POSTGRES, &b, NULL);
    rec(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_POSTGRES, &b, NULL); /* closed twice */
    rec(CONNLEAK_EVENT_CLOSE, CONNLEAK_BACKEND_SQLITE, &c, NULL);   /* never opened */
    rec(CONNLEAK_EVENT_CONNECT, CONNLEAK_BACKEND_SQLITE, &c, "leaked.db");
    sqlite3 *db;
    sqlite3_open(":memory:", &db); /* a wrapper event too, left open */
    return 0;
}
