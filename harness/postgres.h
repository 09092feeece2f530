/* postgres.h — a throwaway PostgreSQL cluster for the command's lifetime (`run --postgres`, `postgres --`). */
#ifndef CONNLEAK_POSTGRES_H
#define CONNLEAK_POSTGRES_H

#include <sys/types.h>

struct clk_pg {
    char dir[4096];      /* private temp dir holding data/ and the socket */
    char host[4096];     /* the socket directory, for PGHOST */
    int port;            /* names the socket, and the loopback TCP port when tcp_host is set */
    char tcp_host[32];   /* "127.0.0.1" when the server also listens on loopback TCP, else "" */
    int tls;             /* 1: TLS offered on TCP (a throwaway self-signed certificate) */
    char user[64];       /* "postgres" */
    char database[64];   /* "postgres" */
    char url[8192];      /* postgresql://user@/db?host=...&port=... (libpq-accepted URL for DATABASE_URL) */
    int running;
    pid_t pid;           /* the postmaster; it is OUR child, so wait for specific pids, never waitpid(-1) */
    char bindir[4096];   /* where initdb and postgres were found */
    char log[4096];      /* initdb and server output: <dir>/postgres.log */
    char version[32];    /* contents of data/PG_VERSION, e.g. "15" */
    double start_seconds;/* wall time clk_pg_start took */
};

/* Creates and starts the cluster; prints progress ("connleak: starting PostgreSQL ...") only when verbose, on stderr.
 * On failure prints ONE clear line on stderr ("connleak: cannot start PostgreSQL: <why>") and returns -1, leaving nothing behind.
 * CONNLEAK_PG_BINDIR, when set, is the only place searched for initdb and postgres.
 * Call it from the main thread: the server gets SIGQUIT when the thread that started it ends (PR_SET_PDEATHSIG),
 * so a SIGKILLed connleak leaves no server running (its directory does remain then). */
int clk_pg_start(struct clk_pg *pg, int verbose);

/* setenv PGHOST, PGPORT, PGUSER, PGDATABASE, DATABASE_URL, CONNLEAK_PG_TCP_HOST and CONNLEAK_PG_TLS (and unsetenv PGPASSWORD, PGSERVICE, PGHOSTADDR which could redirect clients). */
void clk_pg_export(const struct clk_pg *pg);

/* Stops the server (immediate shutdown) and removes the directory. Idempotent; safe after a failed start
 * (pg must have been zeroed or passed through clk_pg_start). Call it from the main flow, not a signal handler. */
void clk_pg_stop(struct clk_pg *pg);

#endif
