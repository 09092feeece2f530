/* finalizer.c — connections the program never closed but its runtime's garbage collector did (Python's sqlite3.Connection or a psycopg2 connection deallocated without close()).
 *
 * A close of a connection Python's sqlite3 module opened carries the
 * recorder's verdict (lib/recorder/pysqlite.c: the code that closed it was the
 * Connection's close method or its deallocator): CONNLEAK_RAWF_FINALIZER or
 * CONNLEAK_RAWF_EXPLICIT, taken as it is. Without one (psycopg2's PQfinish,
 * the wire route's socket close, other bindings, older journals) the close is
 * told apart at report time from its stack, for connections a Python
 * program opened (their opener stack holds Python frames):
 *  - no Python frame at the close: the interpreter was finalizing, or a
 *    collection ran from C — nobody's code called close();
 *  - else the innermost Python frame's source line, read from its file as
 *    Python's own tracebacks do (linecache): a line that calls a close is an
 *    explicit close (conn.close(), self._conn.close(), contextlib.closing's
 *    self.thing.close()); any other line (conn = None, del conn, a return, a
 *    gc.collect()) dropped the last reference and the deallocator closed it.
 * A file that cannot be read counts as an explicit close: never claimed
 * without evidence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rawfmt.h"

static int has_python_frame(const struct clk_stack *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->f[i].language)
            return 1;
    return 0;
}

/* A source file, whole (NULL when unreadable or over 16 MiB). */
static char *read_source(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = clk_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= (16u << 20)) {
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            buf = clk_xrealloc(buf, cap);
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The last file read, whole: closes come in runs from the same few lines. */
static struct {
    const char *path; /* interned */
    char *text;
    size_t len;
} cache;

/* Line `line` of `path` into out (NUL-terminated); 0 when it cannot be had. */
static int source_line(const char *path, int line, char *out, size_t cap)
{
    if (!path || line <= 0 || path[0] != '/')
        return 0;
    if (cache.path != path) {
        free(cache.text);
        cache.text = read_source(path, &cache.len);
        cache.path = path;
    }
    if (!cache.text)
        return 0;
    const char *p = cache.text, *end = cache.text + cache.len;
    for (int n = 1; n < line && p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    if (p >= end)
        return 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, p, len);
    out[len] = 0;
    return 1;
}

int clk_closed_by_finalizer(const struct clk_stack *opened, const struct clk_stack *closed, unsigned flags)
{
    if (flags & CONNLEAK_RAWF_EXPLICIT)
        return 0;
    if (flags & CONNLEAK_RAWF_FINALIZER)
        return 1;
    if (!has_python_frame(opened))
        return 0;
    const struct clk_frame *py = NULL;
    for (int i = 0; i < closed->n && !py; i++)
        if (closed->f[i].language)
            py = &closed->f[i];
    if (!py)
        return closed->n > 0; /* no Python code on the stack: the runtime closed it (a stack was recorded) */
    char text[4096];
    if (!source_line(py->file, py->line, text, sizeof text))
        return 0;
    return !strstr(text, "close") && !strstr(text, "__exit__") && !strstr(text, "dispose");
}

void clk_report_add_finalized(struct clk_report *r, const struct clk_finding *f)
{
    if (!r->finalized) {
        r->finalized = clk_xcalloc(1, sizeof *r->finalized);
        clk_report_init(r->finalized);
    }
    clk_report_add(r->finalized, f);
    r->summary.closed_by_finalizer += f->count;
}
