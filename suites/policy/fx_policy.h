/* fx_policy.h — the fixture's openers that live in another file and in a shared library. */
#ifndef FX_POLICY_H
#define FX_POLICY_H

#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

void fx_fail(const char *what);
void open_elsewhere(void);
void plugin_open(void);

#endif
