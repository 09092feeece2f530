/* wrap_libpq.c — interposed libpq connects and PQfinish. */
#include <libpq-fe.h>
#include <string.h>

#include "recorder.h"

static const char *const pq_libs[] = {"libpq.so.5", "libpq.so", NULL};
/* the functions wrapped here: their real ones, shared with dlsym.c through clk_pq_wrapped[] */
CLK_REAL_SLOT(PQconnectdb);
CLK_REAL_SLOT(PQconnectStart);
CLK_REAL_SLOT(PQconnectdbParams);
CLK_REAL_SLOT(PQconnectStartParams);
CLK_REAL_SLOT(PQsetdbLogin);
CLK_REAL_SLOT(PQfinish);

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
static void describe(PGconn *c, char *out, size_t cap)
{
    accessor_fn user = CLK_REAL(accessor_fn, PQuser, pq_libs);
    accessor_fn host = CLK_REAL(accessor_fn, PQhost, pq_libs);
    accessor_fn port = CLK_REAL(accessor_fn, PQport, pq_libs);
    accessor_fn db = CLK_REAL(accessor_fn, PQdb, pq_libs);
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
static PGconn *after_connect(PGconn *c, int synchronous, uint32_t stack)
{
    if (!c)
        return c; /* out of memory: nothing to finish */
    status_fn status = CLK_REAL(status_fn, PQstatus, pq_libs);
    int failed = synchronous && status && status(c) == CONNECTION_BAD;
    char target[1024];
    describe(c, target, sizeof target);
    clk_track_open(CONNLEAK_RAW_POSTGRES, (uint64_t)(uintptr_t)c, target, failed, failed ? -1 : 0, stack);
    return c;
}

/* libpq's synchronous connects call the Start variants through the PLT: the
 * re-entry guard makes the inner call pass straight through, so one connect. */
#define WRAP_CONNECT(type, name, synchronous, args, call_args)                                   \
    __attribute__((visibility("default"))) PGconn *name args                                     \
    {                                                                                            \
        type real = CLK_REAL_WRAPPED(type, name, pq_libs);                                       \
        if (!real)                                                                               \
            return NULL;                                                                         \
        if (clk_in_wrapper)                                                                      \
            return real call_args;                                                               \
        clk_in_wrapper++;                                                                        \
        clk_ensure_init();                                                                       \
        uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);                                \
        PGconn *c = after_connect(real call_args, synchronous, stack);                           \
        clk_in_wrapper--;                                                                        \
        return c;                                                                                \
    }

WRAP_CONNECT(connectdb_fn, PQconnectdb, 1, (const char *conninfo), (conninfo))
WRAP_CONNECT(connectdb_fn, PQconnectStart, 0, (const char *conninfo), (conninfo))
WRAP_CONNECT(params_fn, PQconnectdbParams, 1,
             (const char *const *keywords, const char *const *values, int expand_dbname),
             (keywords, values, expand_dbname))
WRAP_CONNECT(params_fn, PQconnectStartParams, 0,
             (const char *const *keywords, const char *const *values, int expand_dbname),
             (keywords, values, expand_dbname))
WRAP_CONNECT(setdb_fn, PQsetdbLogin, 1,
             (const char *pghost, const char *pgport, const char *pgoptions, const char *pgtty, const char *dbName,
              const char *login, const char *pwd),
             (pghost, pgport, pgoptions, pgtty, dbName, login, pwd))

__attribute__((visibility("default"))) void PQfinish(PGconn *conn)
{
    finish_fn real = CLK_REAL_WRAPPED(finish_fn, PQfinish, pq_libs);
    if (!real)
        return;
    if (!conn || clk_in_wrapper) {
        real(conn);
        return;
    }
    clk_in_wrapper++;
    clk_ensure_init();
    uint32_t stack = clk_stack_here(clk_opts.stack_depth, 0);
    struct clk_pending p;
    /* a second PQfinish would free freed memory: recorded, not passed on */
    if (clk_track_close_begin(CONNLEAK_RAW_POSTGRES, (uint64_t)(uintptr_t)conn, stack, &p) == CLK_CLOSE_PASS) {
        real(conn);
        clk_track_close_done(&p, 1, 0);
    }
    clk_in_wrapper--;
}

CLK_OWN(PQconnectdb);
CLK_OWN(PQconnectStart);
CLK_OWN(PQconnectdbParams);
CLK_OWN(PQconnectStartParams);
CLK_OWN(PQsetdbLogin);
CLK_OWN(PQfinish);
const struct clk_wrapped clk_pq_wrapped[] = {
    CLK_WRAPPED(PQconnectdb, pq_libs),          CLK_WRAPPED(PQconnectStart, pq_libs),
    CLK_WRAPPED(PQconnectdbParams, pq_libs),    CLK_WRAPPED(PQconnectStartParams, pq_libs),
    CLK_WRAPPED(PQsetdbLogin, pq_libs),         CLK_WRAPPED(PQfinish, pq_libs),
    {NULL, NULL, NULL, NULL},
};
