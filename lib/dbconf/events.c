/* events.c — pool events: anyone subscribes to an engine's connect, checkout, checkin, close and close_detached. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Listeners run with the engine's listener lock held for reading, so an
 * unsubscribe (which takes it for writing) waits for running listeners and
 * then none can start: after it returns, the listener's data may be freed.
 * glibc's default rwlock prefers readers, so a listener whose work emits
 * another event on the same engine (a checkout inside a listener) re-takes
 * the read side without deadlocking. What a listener must not do is
 * subscribe or unsubscribe on that engine: that would wait for itself. The
 * frames below let us refuse it with EDEADLK instead of hanging. */
struct emit_frame {
    const dbconf_engine *e;
    struct emit_frame *up;
};
/* initial-exec: one pointer, and no __tls_get_addr call on every event */
static __thread struct emit_frame *emit_top __attribute__((tls_model("initial-exec")));

static int inside_listener_of(const dbconf_engine *e)
{
    for (struct emit_frame *f = emit_top; f; f = f->up)
        if (f->e == e)
            return 1;
    return 0;
}

void dbc_events_init(struct dbc_events *ev)
{
    pthread_rwlock_init(&ev->lock, NULL);
    ev->list = NULL;
    ev->n = ev->cap = 0;
}

void dbc_events_free(struct dbc_events *ev)
{
    pthread_rwlock_destroy(&ev->lock);
    free(ev->list);
    ev->list = NULL;
    ev->n = ev->cap = 0;
}

void dbc_emit(dbconf_engine *e, dbconf_event ev, dbconf_conn *c)
{
    unsigned bit = DBCONF_EVENT_BIT(ev);
    pthread_rwlock_rdlock(&e->events.lock);
    if (e->events.n) {
        struct emit_frame f = {e, emit_top};
        emit_top = &f;
        for (size_t i = 0; i < e->events.n; i++)
            if (e->events.list[i].mask & bit)
                e->events.list[i].fn(ev, e, c, e->events.list[i].user);
        emit_top = f.up;
    }
    pthread_rwlock_unlock(&e->events.lock);
}

DBC_PUBLIC int dbconf_pool_subscribe(dbconf_engine *e, unsigned mask, dbconf_listener fn, void *user)
{
    if (!e || !fn || !(mask & DBCONF_EVENTS_ALL)) {
        errno = EINVAL;
        return -1;
    }
    if (inside_listener_of(e)) {
        errno = EDEADLK;
        return -1;
    }
    int rc = 0;
    pthread_rwlock_wrlock(&e->events.lock);
    struct dbc_events *ev = &e->events;
    size_t i;
    for (i = 0; i < ev->n; i++)
        if (ev->list[i].fn == fn && ev->list[i].user == user)
            break;
    if (i < ev->n) {
        ev->list[i].mask |= mask & DBCONF_EVENTS_ALL;
    } else {
        if (ev->n == ev->cap) {
            size_t cap = ev->cap ? ev->cap * 2 : 4;
            struct dbc_listener *l = realloc(ev->list, cap * sizeof *l);
            if (!l) {
                rc = -1;
                errno = ENOMEM;
                goto out;
            }
            ev->list = l;
            ev->cap = cap;
        }
        ev->list[ev->n++] = (struct dbc_listener){fn, user, mask & DBCONF_EVENTS_ALL};
    }
out:
    pthread_rwlock_unlock(&e->events.lock);
    return rc;
}

DBC_PUBLIC int dbconf_pool_unsubscribe(dbconf_engine *e, dbconf_listener fn, void *user)
{
    if (!e || !fn) {
        errno = EINVAL;
        return -1;
    }
    if (inside_listener_of(e)) {
        errno = EDEADLK;
        return -1;
    }
    int rc = -1;
    pthread_rwlock_wrlock(&e->events.lock);
    struct dbc_events *ev = &e->events;
    for (size_t i = 0; i < ev->n; i++)
        if (ev->list[i].fn == fn && ev->list[i].user == user) {
            /* keep the others in subscription order */
            memmove(&ev->list[i], &ev->list[i + 1], (ev->n - i - 1) * sizeof ev->list[0]);
            ev->n--;
            rc = 0;
            break;
        }
    pthread_rwlock_unlock(&e->events.lock);
    if (rc)
        errno = ENOENT;
    return rc;
}
