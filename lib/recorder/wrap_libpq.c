/* wrap_libpq.c — interposed libpq connects and PQfinish. */
#include <libpq-fe.h>
#include <string.h>

#include "recorder.h"

/* The family's names (real.c): the wrapped functions, then the helpers they call. */
enum {
    P_CONNECTDB, P_CONNECTSTART, P_CONNECTDBPARAMS, P_CONNECTSTARTPARAMS, P_SETDBLOGIN, P_FINISH, P_NWRAPPED,
    P_USER = P_NWRAPPED, P_HOST, P_PORT, P_DB, P_STATUS
};
static const char *const pq_libs[] = {"libpq.so.5", "libpq.so", NULL};
static const char *const pq_names[] = {"PQconnectdb", "PQconnectStart", "PQconnectdbParams", "PQconnectStartParams",
                                       "PQsetdbLogin", "PQfinish", "PQuser", "PQhost", "PQport", "PQdb", "PQstatus",
                                       NULL};
static struct clk_family pq_family = {.libs = pq_libs, .names = pq_names, .nwrapped = P_NWRAPPED};

typedef PGconn *(*connectdb_fn)(const char *);
typedef PGconn *(*params_fn)(const char *const *, const char *const *, int);
typedef PGconn *(*setdb_fn)(const char *, const char *, const char *, const char *, const char *, const char *,
                            const char *);
typedef void (*finish_fn)(PGconn *);
typedef char *(*accessor_fn)(const PGconn *);
typedef ConnStatusType (*status_fn)(const PGconn *);

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Appends s to out (length *n, capacity cap, kept NUL-terminated): snprintf
 * costs ~1,500 instructions a connect, more than everything else we do. */
static void append(char *out, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = 0;
}

/* The target is rebuilt from what libpq settled on, so no password can be in it:
 * postgresql://USER@HOST:PORT/DB, or postgresql://USER@:PORT/DB?host=DIR for a socket. */
static void describe(const struct clk_copy *copy, PGconn *c, char *out, size_t cap)
{
    accessor_fn user = (accessor_fn)clk_copy_fn(copy, P_USER);
    accessor_fn host = (accessor_fn)clk_copy_fn(copy, P_HOST);
    accessor_fn port = (accessor_fn)clk_copy_fn(copy, P_PORT);
    accessor_fn db = (accessor_fn)clk_copy_fn(copy, P_DB);
    const char *h = host ? or_empty(host(c)) : "";
    const char *u = user ? or_empty(user(c)) : "", *p = port ? or_empty(port(c)) : "", *d = db ? or_empty(db(c)) : "";
    size_t n = 0;
    int socket_dir = h[0] == '/';
    const char *parts[] = {"postgresql://", u, "@", socket_dir ? "" : h, ":", p, "/", d, socket_dir ? "?host=" : "",
                           socket_dir ? h : ""};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        append(out, cap, &n, parts[i]);
}

/* `synchronous`: the connect call has finished, so CONNECTION_BAD means it failed. */
static void after_connect(const struct clk_copy *copy, PGconn *c, int synchronous, uint32_t stack)
{
    if (!c)
        return; /* out of memory: nothing to finish */
    status_fn status = (status_fn)clk_copy_fn(copy, P_STATUS);
    int failed = synchronous && status && status(c) == CONNECTION_BAD;
    char target[1024];
    describe(copy, c, target, sizeof target);
    clk_track_open(CONNLEAK_RAW_POSTGRES, (uint64_t)(uintptr_t)c, target, failed, failed ? -1 : 0, stack);
}

/* Each wrapper: the real function for this caller (real.c); straight to it
 * when this thread is inside our own bookkeeping or libpq calls itself (its
 * synchronous connects call the Start variants through the PLT: one connect);
 * else the stack, the real call, the record. clk_busy is set around our own
 * work only, never across the real call: a longjmp out of it (an alarm-based
 * connect timeout) leaves nothing behind. */
#define WRAP_CONNECT(type, name, index, synchronous, args, call_args)                            \
    __attribute__((visibility("default"))) PGconn *name args                                     \
    {                                                                                            \
        void *ra = __builtin_return_address(0);                                                  \
        struct clk_copy own;                                                                     \
        const struct clk_copy *copy;                                                             \
        type real = (type)clk_real_for(&pq_family, index, ra, &own, &copy);                      \
        if (clk_busy || clk_self_call(copy, index, ra))                                          \
            return real call_args;                                                               \
        clk_busy = 1;                                                                            \
        clk_ensure_init();                                                                       \
        uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);                                \
        clk_busy = 0;                                                                            \
        PGconn *c = real call_args;                                                              \
        clk_busy = 1;                                                                            \
        after_connect(copy, c, synchronous, stack);                                              \
        clk_busy = 0;                                                                            \
        return c;                                                                                \
    }

WRAP_CONNECT(connectdb_fn, PQconnectdb, P_CONNECTDB, 1, (const char *conninfo), (conninfo))
WRAP_CONNECT(connectdb_fn, PQconnectStart, P_CONNECTSTART, 0, (const char *conninfo), (conninfo))
WRAP_CONNECT(params_fn, PQconnectdbParams, P_CONNECTDBPARAMS, 1,
             (const char *const *keywords, const char *const *values, int expand_dbname),
             (keywords, values, expand_dbname))
WRAP_CONNECT(params_fn, PQconnectStartParams, P_CONNECTSTARTPARAMS, 0,
             (const char *const *keywords, const char *const *values, int expand_dbname),
             (keywords, values, expand_dbname))
WRAP_CONNECT(setdb_fn, PQsetdbLogin, P_SETDBLOGIN, 1,
             (const char *pghost, const char *pgport, const char *pgoptions, const char *pgtty, const char *dbName,
              const char *login, const char *pwd),
             (pghost, pgport, pgoptions, pgtty, dbName, login, pwd))

__attribute__((visibility("default"))) void PQfinish(PGconn *conn)
{
    void *ra = __builtin_return_address(0);
    struct clk_copy own;
    const struct clk_copy *copy;
    finish_fn real = (finish_fn)clk_real_for(&pq_family, P_FINISH, ra, &own, &copy);
    if (!conn || clk_busy || clk_self_call(copy, P_FINISH, ra)) {
        real(conn);
        return;
    }
    clk_busy = 1;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    struct clk_pending p;
    /* a second PQfinish would free freed memory: recorded, not passed on */
    if (clk_track_close_begin(CONNLEAK_RAW_POSTGRES, (uint64_t)(uintptr_t)conn, stack, &p) == CLK_CLOSE_PASS) {
        clk_busy = 0;
        real(conn);
        clk_busy = 1;
        clk_track_close_done(&p, 1, 0);
    }
    clk_busy = 0;
}

CLK_OWN(PQconnectdb);
CLK_OWN(PQconnectStart);
CLK_OWN(PQconnectdbParams);
CLK_OWN(PQconnectStartParams);
CLK_OWN(PQsetdbLogin);
CLK_OWN(PQfinish);
const struct clk_wrapped clk_pq_wrapped[] = {
    CLK_WRAPPED(PQconnectdb, &pq_family, P_CONNECTDB),
    CLK_WRAPPED(PQconnectStart, &pq_family, P_CONNECTSTART),
    CLK_WRAPPED(PQconnectdbParams, &pq_family, P_CONNECTDBPARAMS),
    CLK_WRAPPED(PQconnectStartParams, &pq_family, P_CONNECTSTARTPARAMS),
    CLK_WRAPPED(PQsetdbLogin, &pq_family, P_SETDBLOGIN),
    CLK_WRAPPED(PQfinish, &pq_family, P_FINISH),
    {NULL, NULL, NULL, 0},
};
