/* criterion_check.c — per-test leak check behind connleak_criterion.h: remember what is open when a test starts, describe what it left open. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "connleak.h"
#define CONNLEAK_TEST_API_ONLY /* the declarations, not the Criterion part */
#include "connleak_criterion.h"

/* This file only calls the public API, through the PLT: when the preloaded
 * library is in the process, connleak_* resolve to its tracker (which sees the
 * wrapped sqlite3/libpq calls), otherwise to this library's own. */

#define EXPORT __attribute__((visibility("default")))
#define FRAMES_SHOWN 16

/* What was open (or checked out) when the test began; matched by handle and
 * opening stack, so a handle reused at the same address by a new open counts
 * as new. */
struct seen {
    const void *conn;
    const void *const *frames;
    int checked_out;
};
static struct seen *begin_open, *begin_left;
static size_t begin_nopen, begin_nleft;
static uint64_t begin_doubles;

static connleak_conn *snapshot(size_t (*list)(connleak_conn *, size_t), size_t *n)
{
    for (size_t cap = 64;; cap *= 2) {
        connleak_conn *v = calloc(cap, sizeof *v);
        if (!v) {
            *n = 0;
            return NULL;
        }
        size_t got = list(v, cap);
        if (got <= cap) {
            *n = got;
            return v;
        }
        free(v); /* it grew meanwhile: retry larger */
    }
}

static struct seen *remember(size_t (*list)(connleak_conn *, size_t), struct seen *old, size_t *n)
{
    connleak_conn *v = snapshot(list, n);
    free(old);
    struct seen *s = calloc(*n ? *n : 1, sizeof *s);
    if (!s)
        *n = 0;
    for (size_t i = 0; i < *n; i++)
        s[i] = (struct seen){v[i].conn, v[i].frames, v[i].checked_out};
    free(v);
    return s;
}

static int seen_in(const struct seen *s, size_t n, const connleak_conn *c)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].conn == c->conn && s[i].frames == c->frames && s[i].checked_out == c->checked_out)
            return 1;
    return 0;
}

/* Without libconnleak-preload.so in the process nothing wraps sqlite3/libpq, and a check that
 * passes would say nothing: warn once, on stderr. Criterion runs each test in a worker process
 * (BXFI_MAP set there) started by the runner: the runner warns (CONNLEAK_TEST's constructors call
 * this there), its workers do not, so a run says it once. */
EXPORT void connleak_test_check_preload(void)
{
    static int checked;
    if (checked || getenv("BXFI_MAP"))
        return;
    checked = 1;
    /* the public API is reached through the PLT: the preloaded tracker's when it is there */
    Dl_info api, own;
    if (dladdr((const void *)connleak_get_counts, &api) && dladdr((const void *)&checked, &own) &&
        api.dli_fbase == own.dli_fbase) {
        static const char msg[] =
            "connleak: CONNLEAK_TEST: libconnleak-preload.so is not loaded: SQLite and libpq opens are not "
            "tracked, only connleak_record() events (run the tests under `connleak run --` or with "
            "LD_PRELOAD=$(connleak preload-path))\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
}

EXPORT void connleak_test_begin(void)
{
    connleak_test_check_preload();
    begin_open = remember(connleak_open_connections, begin_open, &begin_nopen);
    begin_left = remember(connleak_left_field_closes, begin_left, &begin_nleft);
    connleak_counts c;
    connleak_get_counts(&c);
    begin_doubles = c.double_closes;
}

/* A bounded appender: output is truncated with "..." rather than overflowing. */
struct out {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (!o->cap || o->len >= o->cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k >= o->cap - o->len) {
        o->len = o->cap - 1;
        if (o->cap > 4)
            memcpy(o->buf + o->cap - 4, "...", 4);
    } else {
        o->len += (size_t)k;
    }
}

static const char *backend_name(connleak_backend b)
{
    return b == CONNLEAK_BACKEND_SQLITE ? "sqlite" : b == CONNLEAK_BACKEND_POSTGRES ? "postgres" : "database";
}

/* The module's short name. The main program's is its file's: its argv[0],
 * which dladdr reports, is "boxfort-worker" in a Criterion worker. */
static const char *module_name(const Dl_info *info)
{
    static char exe[4096];
    static const void *exe_base;
    if (!exe_base) {
        Dl_info ei;
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        if (dladdr((const void *)getauxval(AT_ENTRY), &ei))
            exe_base = ei.dli_fbase;
    }
    const char *path = info->dli_fbase == exe_base && exe[0] ? exe : info->dli_fname;
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The frames up to the test framework's own (Criterion's runner below the
 * test body is noise): names by dladdr, else module+offset for addr2line. */
static void put_stack(struct out *o, const void *const *frames, int n)
{
    for (int i = 0; i < n && i < FRAMES_SHOWN; i++) {
        const char *fn = connleak_frame_function(frames[i]);
        if (strncmp(fn, "criterion_internal_test_", 24) == 0)
            break;
        Dl_info info;
        if (dladdr((const char *)frames[i] - 1, &info) && info.dli_fname) {
            put(o, "    #%d %s (%s+0x%lx)\n", i, fn, module_name(&info),
                (unsigned long)((const char *)frames[i] - (const char *)info.dli_fbase));
        } else {
            put(o, "    #%d %s (%p)\n", i, fn, frames[i]);
        }
    }
}

EXPORT size_t connleak_test_end(char *buf, size_t cap)
{
    struct out o = {buf, cap, 0};
    if (cap)
        buf[0] = 0;
    size_t nopen, nleft = 0, found = 0;
    connleak_conn *open = snapshot(connleak_open_connections, &nopen);
    connleak_counts c;
    connleak_get_counts(&c);
    uint64_t doubles = c.double_closes >= begin_doubles ? c.double_closes - begin_doubles : c.double_closes;

    size_t leaks = 0;
    for (size_t i = 0; i < nopen; i++)
        leaks += !(seen_in(begin_open, begin_nopen, &open[i]));
    if (leaks)
        put(&o, "connleak: %zu connection%s opened during this test %s still open\n", leaks, leaks == 1 ? "" : "s",
            leaks == 1 ? "is" : "are");
    for (size_t i = 0; i < nopen; i++) {
        if (seen_in(begin_open, begin_nopen, &open[i]))
            continue;
        if (open[i].checked_out)
            put(&o, "  %s connection checked out of its pool and never checked in, at:\n",
                backend_name(open[i].backend));
        else
            put(&o, "  %s connection to %s, opened at:\n", backend_name(open[i].backend),
                open[i].target ? open[i].target : "(unknown)");
        put_stack(&o, open[i].frames, open[i].nframes);
        found++;
    }
    free(open);

    if (doubles) {
        /* the left-field table keeps the latest close per handle: show those */
        connleak_conn *left = snapshot(connleak_left_field_closes, &nleft);
        put(&o, "connleak: %llu double close%s during this test; closes of connections that were not open:\n",
            (unsigned long long)doubles, doubles == 1 ? "" : "s");
        for (size_t i = 0; i < nleft; i++) {
            if (seen_in(begin_left, begin_nleft, &left[i]))
                continue;
            put(&o, "  %s connection closed again (or never opened) at:\n", backend_name(left[i].backend));
            put_stack(&o, left[i].frames, left[i].nframes);
        }
        free(left);
        found += doubles;
    }
    return found;
}
