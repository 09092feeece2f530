/* redact.h — removes passwords from connection strings and URLs (used by the recorder and the CLI). */
#ifndef CONNLEAK_REDACT_H
#define CONNLEAK_REDACT_H

#include <stddef.h>

/* Copies `in` into `out` (always NUL-terminated, truncated to cap) with every
 * password removed: URL userinfo passwords (scheme://user:secret@host) become
 * user@host, `password=...` in conninfo strings or URL queries is dropped, and
 * anywhere else (a URL inside another value, --password=x, PGPASSWORD=x,
 * "password": "x") the value after the password word goes. Returns the
 * length written. Never allocates. */
size_t clk_redact(const char *in, char *out, size_t cap) __attribute__((visibility("hidden")));

/* One argument of a command line: clk_redact, and the whole argument is
 * "***" when the one before it is a bare password option (--password X,
 * --db-passwd X). prev is NULL for the first. cap >= 4 keeps all of "***". */
size_t clk_redact_arg(const char *arg, const char *prev, char *out, size_t cap) __attribute__((visibility("hidden")));
/* 1 when arg is a bare password option, whose value is the next argument. */
int clk_redact_takes_next(const char *arg) __attribute__((visibility("hidden")));

#endif
