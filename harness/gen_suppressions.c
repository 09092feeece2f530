/* gen_suppressions.c — --gen-suppressions: after the report, one suppression rule per finding (as Valgrind's
 * --gen-suppressions=all), in the format suppress.c reads, each matching its finding and no other where any
 * frame name tells them apart. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "common/output_path.h"

/* How many findings of a kind have a frame named so: a rule "KIND:^NAME$" matches exactly those. */
struct name_count {
    uint64_t findings;
    size_t last; /* index + 1 of the last finding counted, so a name repeated in one finding counts once */
};

/* The stacks suppress.c matches a finding of each kind on. */
static int stacks_of(const struct clk_finding *f, const struct clk_stack *out[3])
{
    switch (f->kind) {
    case CLK_LEAK:
        out[0] = &f->opened_at;
        return 1;
    case CLK_DOUBLE_CLOSE:
        out[0] = &f->closed_at;
        out[1] = &f->first_closed_at;
        out[2] = &f->opened_at;
        return 3;
    case CLK_UNKNOWN_CLOSE:
        out[0] = &f->closed_at;
        return 1;
    }
    return 0;
}

static uint64_t name_key(enum clk_kind kind, const char *name)
{
    unsigned char k = (unsigned char)kind;
    uint64_t h = clk_fnv1a(clk_fnv1a(CLK_FNV_INIT, &k, 1), name, strlen(name));
    return h ? h : 1;
}

static void count_name(struct clk_map *m, enum clk_kind kind, const char *name, size_t idx)
{
    if (!name || !*name)
        return;
    void **slot = clk_map_slot(m, name_key(kind, name), 1);
    struct name_count *c = *slot;
    if (!c)
        *slot = c = clk_xcalloc(1, sizeof *c);
    if (c->last != idx + 1) {
        c->last = idx + 1;
        c->findings++;
    }
}

/* A name a pattern "^NAME$" matches as written: no glob star, nothing the line format would trim or split. */
static int usable(const char *name)
{
    if (!name || !*name || name[0] == ' ' || name[0] == '\t' || name[strlen(name) - 1] == ' ')
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '*' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* The names suppress.c compares a pattern with, for one frame: each name and its base name. */
static int frame_names(const struct clk_frame *fr, const char *names[6])
{
    int n = 0;
    const char *full[3] = {fr->function, fr->file, fr->module};
    for (int i = 0; i < 3; i++) {
        if (!full[i] || !*full[i])
            continue;
        names[n++] = full[i];
        const char *base = clk_basename(full[i]);
        if (base != full[i] && *base)
            names[n++] = base;
    }
    return n;
}

/* Untrusted text (targets, names) in a comment line: control bytes become '?'. */
static void comment_text(struct clk_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : "?"); *p; p++)
        clk_buf_putc(b, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
}

static void describe(struct clk_buf *b, const struct clk_finding *f)
{
    clk_buf_puts(b, "# ");
    clk_buf_puts(b, f->kind == CLK_LEAK ? "leak" : f->kind == CLK_DOUBLE_CLOSE ? "double close" : "unknown close");
    clk_buf_printf(b, " of %s%s connection", f->count > 1 ? "" : "a ", f->backend ? f->backend : "?");
    if (f->count > 1)
        clk_buf_printf(b, "s (%llu)", (unsigned long long)f->count);
    if (f->target) {
        clk_buf_puts(b, " to ");
        comment_text(b, f->target);
    }
    if (f->test) {
        clk_buf_puts(b, ", test ");
        comment_text(b, f->test);
    }
    const struct clk_stack *s = f->kind == CLK_LEAK ? &f->opened_at : &f->closed_at;
    clk_buf_puts(b, f->kind == CLK_LEAK ? ", opened at " : ", closed at ");
    if (!s->n)
        clk_buf_puts(b, "?");
    for (int i = 0; i < s->n && i < 3; i++) {
        if (i)
            clk_buf_puts(b, " <- ");
        comment_text(b, s->f[i].function);
    }
    clk_buf_printf(b, "; fingerprint %s\n", f->fingerprint);
}

/* One finding's rule: the first name of its stacks (innermost frame first; a function before its file and
 * module) that no other finding of its kind has, else the first usable name with a comment saying what else
 * it matches. */
static void rule(struct clk_buf *b, const struct clk_map *counts, const struct clk_finding *f)
{
    const struct clk_stack *st[3];
    int ns = stacks_of(f, st);
    const char *first = NULL;
    uint64_t first_count = 0;
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < st[s]->n; i++) {
            const struct clk_frame *fr = &st[s]->f[i];
            const char *cands[3] = {fr->function, fr->file ? clk_basename(fr->file) : NULL,
                                    fr->module ? clk_basename(fr->module) : NULL};
            for (int c = 0; c < 3; c++) {
                if (!usable(cands[c]))
                    continue;
                const struct name_count *nc = clk_map_get(counts, name_key(f->kind, cands[c]));
                uint64_t n = nc ? nc->findings : 0;
                if (n == 1) {
                    clk_buf_printf(b, "%s:^%s$\n", clk_kind_name(f->kind), cands[c]);
                    return;
                }
                if (!first) {
                    first = cands[c];
                    first_count = n;
                }
            }
        }
    if (!first) {
        clk_buf_puts(b, "# (no rule: this finding has no frame with a name a pattern can hold)\n");
        return;
    }
    clk_buf_printf(b, "# (no frame name of this finding is in no other: this rule also matches %llu other %s%s)\n",
                   (unsigned long long)(first_count ? first_count - 1 : 0), clk_kind_name(f->kind),
                   first_count == 2 ? "" : "s");
    clk_buf_printf(b, "%s:^%s$\n", clk_kind_name(f->kind), first);
}

static int write_file(const char *path, const char *text, size_t len)
{
    int through = clk_output_writes_through(path);
    char tmp[PATH_MAX + 32] = "";
    int fd;
    if (through) {
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(tmp, sizeof tmp, "%.*s/.%s.XXXXXX", slash ? (int)(slash - path) : 1, slash ? path : ".",
                 slash ? slash + 1 : path);
        fd = mkstemp(tmp); /* never through a planted link */
        mode_t um = umask(0); /* mkstemp makes 0600: rules are no secret, the umask decides */
        umask(um);
        if (fd >= 0)
            fchmod(fd, 0666 & ~um);
    }
    int rc = fd < 0 ? -1 : 0;
    for (size_t off = 0; !rc && off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = -1, e = errno;
    if (!rc && !through && rename(tmp, path) != 0)
        rc = -1, e = errno;
    if (rc) {
        if (tmp[0])
            unlink(tmp);
        clk_err("--gen-suppressions: cannot write %s: %s", path, strerror(e));
    }
    return rc;
}

int clk_gen_suppressions(const struct clk_report *r, const char *path)
{
    struct clk_map counts = {0};
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        const struct clk_stack *st[3];
        int ns = stacks_of(f, st);
        for (int s = 0; s < ns; s++)
            for (int k = 0; k < st[s]->n; k++) {
                const char *names[6];
                int nn = frame_names(&st[s]->f[k], names);
                for (int j = 0; j < nn; j++)
                    count_name(&counts, f->kind, names[j], i);
            }
    }
    struct clk_buf b = {0};
    size_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        n += !r->findings[i]->suppressed;
    clk_buf_printf(&b, "# connleak --gen-suppressions: %zu rule%s, one per finding; use with --suppressions FILE\n", n,
                   n == 1 ? "" : "s");
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed)
            continue;
        describe(&b, f);
        rule(&b, &counts, f);
    }
    for (size_t i = 0; i < counts.cap; i++)
        if (counts.keys[i])
            free(counts.vals[i]);
    clk_map_free(&counts);
    int rc = 0;
    if (path && *path) {
        rc = write_file(path, b.p, b.n);
    } else {
        fflush(stderr);
        rc = fwrite(b.p, 1, b.n, stderr) == b.n ? 0 : -1;
    }
    free(b.p);
    return rc;
}
