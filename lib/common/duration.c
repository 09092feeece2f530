/* duration.c — parses durations like "500ms" or "1.5s" into milliseconds (no locale, no allocation: the library calls it at start-up). */
#include "duration.h"

int clk_parse_duration_ms(const char *s, size_t len, uint64_t *ms)
{
    size_t i = 0;
    uint64_t whole = 0, frac = 0, scale = 1;
    int digits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        whole = whole * 10 + (uint64_t)(s[i] - '0');
        if (whole > 86400000ull)
            return -1;
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                scale *= 10;
            }
    }
    if (!digits)
        return -1;
    const char *u = s + i;
    size_t ul = len - i;
    uint64_t unit; /* milliseconds per unit */
    if (ul == 0 || (ul == 2 && u[0] == 'm' && u[1] == 's'))
        unit = 1;
    else if (ul == 1 && u[0] == 's')
        unit = 1000;
    else if (ul == 1 && u[0] == 'm')
        unit = 60000;
    else if (ul == 1 && u[0] == 'h')
        unit = 3600000;
    else
        return -1;
    uint64_t v = whole * unit + frac * unit / scale;
    if (v > 86400000ull)
        return -1;
    *ms = v;
    return 0;
}
