/* connleak.h — public tracker API: record connection lifecycles from in-process pools and query them. */
#ifndef CONNLEAK_H
#define CONNLEAK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CONNLEAK_VERSION "0.1.0"

/* Which database a connection talks to. */
typedef enum connleak_backend {
    CONNLEAK_BACKEND_UNKNOWN = 0,
    CONNLEAK_BACKEND_SQLITE = 1,
    CONNLEAK_BACKEND_POSTGRES = 2
} connleak_backend;

/* Pool events, as a pool reports them (see dbconf_pool_subscribe). */
typedef enum connleak_event {
    CONNLEAK_EVENT_CONNECT = 1,        /* the pool opened a new connection */
    CONNLEAK_EVENT_CHECKOUT = 2,       /* a caller took a connection from the pool */
    CONNLEAK_EVENT_CHECKIN = 3,        /* the caller gave it back */
    CONNLEAK_EVENT_CLOSE = 4,          /* the pool closed a connection */
    CONNLEAK_EVENT_CLOSE_DETACHED = 5  /* a connection detached from its pool was closed */
} connleak_event;

/* Records one pool event for the connection identified by `conn` (any pointer
 * unique while the connection lives). `target` names the database (a path or a
 * URL; passwords are removed before it is stored) and may be NULL. The stack of
 * the caller is captured. Thread-safe; never allocates under a lock.
 * Connect and close feed the tracker's figures; a checkout without its checkin
 * is reported as a leak with the checkout's stack. Returns 0, or -1 for a NULL
 * conn or an unknown event. */
int connleak_record(connleak_event event, connleak_backend backend,
                    const void *conn, const char *target);

/* The tracker's figures since the start or the last connleak_clear(). */
typedef struct connleak_counts {
    uint64_t connects;          /* connections opened (preloaded wrappers and pools) */
    uint64_t closes;            /* closes of open connections */
    uint64_t open;              /* connections open now */
    uint64_t left_field_closes; /* closes of a connection that was not open (double or unknown) */
    uint64_t double_closes;     /* of which: closed before */
    uint64_t unknown_closes;    /* of which: never seen open */
    uint64_t checkouts;         /* pool checkouts */
    uint64_t checkins;          /* pool checkins */
    uint64_t checked_out;       /* checked out now */
} connleak_counts;

void connleak_get_counts(connleak_counts *out);

/* One connection the tracker knows, for connleak_open_connections() and
 * connleak_left_field_closes(). `frames` are raw return addresses (symbolize
 * with connleak_symbolize_frame or the connleak CLI); they stay valid until
 * the process exits. */
typedef struct connleak_conn {
    const void *conn;
    connleak_backend backend;
    int checked_out;             /* 1: a pool checkout not yet checked in */
    const char *target;          /* NULL when unknown */
    const void *const *frames;   /* where it was opened (or closed, for left-field closes) */
    int nframes;
} connleak_conn;

/* Fill up to `max` entries; return how many exist in all (may exceed max). */
size_t connleak_open_connections(connleak_conn *out, size_t max);
size_t connleak_left_field_closes(connleak_conn *out, size_t max);

/* Forget every connection, close and figure (the page's tracker clear()). */
void connleak_clear(void);

/* Best-effort name of a frame's function ("?" when unknown), via dladdr:
 * for tests and quick diagnostics; the CLI symbolizes properly. */
const char *connleak_frame_function(const void *frame);

#ifdef __cplusplus
}
#endif
#endif
