/* options.c — CONNLEAK_OPTIONS, sanitizer style: key=value pairs separated by ':'. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "host.h"

struct clk_options clk_opts = {.stack_depth = CLK_DEFAULT_DEPTH, .report = 1, .follow_children = 1};
int clk_opts_exitcode_given;
int clk_opts_log_path;
int clk_opts_symbolize = 1;
char clk_opts_symbolizer[512];

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

#define KNOWN                                                                                                      \
    "exitcode, stack_depth, report, output, log_path, suppressions, verbosity, follow_children, held_longer_than, " \
    "symbolize, symbolizer"

/* The values each key allows, for errors and help=1. */
static const char *const allowed[][2] = {
    {"exitcode", "0 to 255"},
    {"stack_depth", "1 to " CLK_STR(CLK_MAX_DEPTH)},
    {"report", "0 or 1"},
    {"follow_children", "0 or 1"},
    {"verbosity", "0 to 2"},
    {"output", "a path"},
    {"log_path", "a path"},
    {"suppressions", "a path"},
    {"held_longer_than", "a duration such as 500ms, 2s or 1.5m, up to 24h"},
    {"symbolize", "0 or 1"},
    {"symbolizer", "the path of the connleak CLI"},
    {"help", "1"},
};

static const char *allowed_values(const char *key, size_t klen)
{
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strlen(allowed[i][0]) == klen && !strncmp(allowed[i][0], key, klen))
            return allowed[i][1];
    return "?";
}

int clk_options_parse(const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    int help = 0;
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
        if (KEY("help")) {
            bad = parse_int(v, vlen, 0, 1, &x);
            if (!bad)
                help = (int)x;
        } else if (KEY("exitcode")) {
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
            if (!bad) /* log_path=P: P.PID, one file per process (the sanitizers' log_path) */
                clk_opts_log_path = KEY("log_path");
        } else if (KEY("symbolize")) {
            bad = parse_int(v, vlen, 0, 1, &x);
            if (!bad)
                clk_opts_symbolize = (int)x;
        } else if (KEY("symbolizer")) {
            bad = set_path(clk_opts_symbolizer, sizeof clk_opts_symbolizer, v, vlen);
        } else if (KEY("held_longer_than")) {
            uint64_t ms;
            bad = clk_parse_duration_ms(v, vlen, &ms) != 0 || ms == 0;
            if (!bad)
                clk_opts.held_longer_than_ms = ms;
        } else if (KEY("suppressions")) {
            bad = set_path(clk_opts.suppressions, sizeof clk_opts.suppressions, v, vlen);
        } else {
            snprintf(err, errlen, "connleak: CONNLEAK_OPTIONS: unknown key '%.*s' (known: " KNOWN ", help; fail_on under "
                     "connleak run; help=1 lists their values)",
                     (int)klen, p);
            return -1;
        }
#undef KEY
        if (bad) {
            snprintf(err, errlen, "connleak: CONNLEAK_OPTIONS: bad value '%.*s' for %.*s (allowed: %s)", (int)vlen, v,
                     (int)klen, p, allowed_values(p, klen));
            return -1;
        }
        p += len;
    }
    if (help)
        clk_options_help(err, errlen);
    return help;
}

/* help=1: every key with the values it allows, on one line (fail_on is the CLI's). */
void clk_options_help(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "connleak: CONNLEAK_OPTIONS: keys (key=value, ':' between):");
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, " %s (%s)%s", allowed[i][0], allowed[i][1],
                              i + 1 < sizeof allowed / sizeof *allowed ? ";" : "");
    if (n < cap)
        snprintf(out + n, cap - n, "; fail_on (unseen, finalizer: read by connleak run and report)");
}
