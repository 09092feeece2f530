/* redact.h — removes passwords from connection strings and URLs (used by the recorder and the CLI). */
#ifndef CONNLEAK_REDACT_H
#define CONNLEAK_REDACT_H

#include <stddef.h>

/* Copies `in` into `out` (always NUL-terminated, truncated to cap) with every
 * password removed: URL userinfo passwords (scheme://user:secret@host) become
 * user@host, and `password=...` in conninfo strings or URL queries is dropped.
 * Returns the length written. Never allocates. */
size_t clk_redact(const char *in, char *out, size_t cap) __attribute__((visibility("hidden")));

#endif
