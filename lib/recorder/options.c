/* options.c — CONNLEAK_OPTIONS, sanitizer style: key=value pairs separated by ':'. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "host.h"

struct clk_options clk_opts = {.stack_depth = CLK_DEFAULT_DEPTH, .report = 1, .follow_children = 1};
int clk_opts_exitcode_given;

static int parse_int(const char *v, size_t len, long lo, long hi, long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long x = strtol(buf, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int set_path(char *dst, size_t cap, const char *v, size_t len)
{
    if (len == 0 || len >= cap)
        return -1;
    memcpy(dst, v, len);
    dst[len] = 0;
    return 0;
}

#define KNOWN "exitcode, stack_depth, report, output, log_path, suppressions, verbosity, follow_children, held_longer_than"

int clk_options_parse(const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    while (p && *p) {
        size_t len = strcspn(p, ":");
        const char *eq = memchr(p, '=', len);
        if (len == 0) {
            p++;
            continue;
        }
        if (!eq) {
            snprintf(err, errlen, "connleak: CONNLEAK_OPTIONS: '%.*s' is not key=value", (int)len, p);
            return -1;
        }
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = len - klen - 1;
        long x;
        int bad = 0;
#define KEY(name) (klen == sizeof(name) - 1 && strncmp(p, name, klen) == 0)
        if (KEY("exitcode")) {
            bad = parse_int(v, vlen, 0, 255, &x);
            if (!bad) {
                clk_opts.exitcode = (int)x;
                clk_opts_exitcode_given = 1;
            }
        } else if (KEY("stack_depth")) {
            bad = parse_int(v, vlen, 1, CLK_MAX_DEPTH, &x);
            if (!bad)
                clk_opts.stack_depth = (int)x;
        } else if (KEY("report")) {
            bad = parse_int(v, vlen, 0, 1, &x);
            if (!bad)
                clk_opts.report = (int)x;
        } else if (KEY("follow_children")) {
            bad = parse_int(v, vlen, 0, 1, &x);
            if (!bad)
                clk_opts.follow_children = (int)x;
        } else if (KEY("verbosity")) {
            bad = parse_int(v, vlen, 0, 2, &x);
            if (!bad)
                clk_opts.verbosity = (int)x;
        } else if (KEY("output") || KEY("log_path")) {
            bad = set_path(clk_opts.output, sizeof clk_opts.output, v, vlen);
        } else if (KEY("held_longer_than")) {
            uint64_t ms;
            bad = clk_parse_duration_ms(v, vlen, &ms) != 0 || ms == 0;
            if (!bad)
                clk_opts.held_longer_than_ms = ms;
        } else if (KEY("suppressions")) {
            bad = set_path(clk_opts.suppressions, sizeof clk_opts.suppressions, v, vlen);
        } else {
            snprintf(err, errlen, "connleak: CONNLEAK_OPTIONS: unknown key '%.*s' (known: " KNOWN ")", (int)klen, p);
            return -1;
        }
#undef KEY
        if (bad) {
            snprintf(err, errlen, "connleak: CONNLEAK_OPTIONS: bad value '%.*s' for %.*s", (int)vlen, v, (int)klen,
                     p);
            return -1;
        }
        p += len;
    }
    return 0;
}
