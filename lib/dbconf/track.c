/* track.c — connleak_track_pool: feeds an engine's pool events to the connleak tracker. */
#include <errno.h>

#include "connleak.h"
#include "internal.h"

_Static_assert((int)DBCONF_EVENT_CONNECT == (int)CONNLEAK_EVENT_CONNECT, "event values differ");
_Static_assert((int)DBCONF_EVENT_CHECKOUT == (int)CONNLEAK_EVENT_CHECKOUT, "event values differ");
_Static_assert((int)DBCONF_EVENT_CHECKIN == (int)CONNLEAK_EVENT_CHECKIN, "event values differ");
_Static_assert((int)DBCONF_EVENT_CLOSE == (int)CONNLEAK_EVENT_CLOSE, "event values differ");
_Static_assert((int)DBCONF_EVENT_CLOSE_DETACHED == (int)CONNLEAK_EVENT_CLOSE_DETACHED, "event values differ");

/* Runs in the thread that checked out, checked in or closed, called straight
 * from that public dbconf function, so the stack the tracker captures goes
 * on into the caller's code. The driver handle identifies the connection:
 * the tracker keeps pool events apart from its wrappers' view of the same
 * handle and reports it once. */
static void track_listener(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user)
{
    connleak_backend b = e->cfg->kind == DBCONF_SQLITE ? CONNLEAK_BACKEND_SQLITE : CONNLEAK_BACKEND_POSTGRES;
    connleak_record((connleak_event)ev, b, c->handle, e->target);
}

DBC_PUBLIC int connleak_track_pool(dbconf_engine *e)
{
    if (!e) {
        errno = EINVAL;
        return -1;
    }
    if (__atomic_load_n(&e->tracked, __ATOMIC_ACQUIRE))
        return 0;
    /* subscribing the same (listener, data) twice is one subscription, so a
     * race between two first calls still tracks once */
    if (dbconf_pool_subscribe(e, DBCONF_EVENTS_ALL, track_listener, NULL) != 0)
        return -1;
    __atomic_store_n(&e->tracked, 1, __ATOMIC_RELEASE);
    return 0;
}

DBC_PUBLIC int dbconf_engine_tracked(dbconf_engine *e)
{
    return __atomic_load_n(&e->tracked, __ATOMIC_ACQUIRE);
}
