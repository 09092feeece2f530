/* duration.h — "500ms", "1.5s", "2m", "1500" (milliseconds): one parser for the CLI's --held-longer-than and the library's held_longer_than=. */
#ifndef CONNLEAK_DURATION_H
#define CONNLEAK_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The duration in the len bytes at s, in milliseconds (a bare number is milliseconds; units
 * ms, s, m, h; a fraction is allowed: 1.5s). 0 on success, -1 when it is no duration or
 * longer than 24 hours. */
int clk_parse_duration_ms(const char *s, size_t len, uint64_t *ms);

#endif
