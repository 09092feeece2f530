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
    /* a Python stack by its Python frames: the interpreter's C frames say nothing of where */
    int python = 0;
    for (int i = 0; i < s->n && !python; i++)
        python = s->f[i].language != NULL;
    for (int i = 0, shown = 0; i < s->n && shown < 3; i++) {
        if (python && !s->f[i].language)
            continue;
        if (shown++)
            clk_buf_puts(b, " <- ");
        comment_text(b, s->f[i].function);
    }
    clk_buf_printf(b, "; fingerprint %s\n", f->fingerprint);
}

/* The C library's and the dynamic loader's frames: in every stack, never a finding's own. */
static int system_frame(const struct clk_frame *fr)
{
    static const char *const fns[] = {"_start", "__libc_start_main", "__libc_start_call_main", "__libc_start_main_impl",
                                      "start_thread", "clone", "clone3", "__clone", "__clone3"};
    for (size_t i = 0; fr->function && i < sizeof fns / sizeof *fns; i++)
        if (!strcmp(fr->function, fns[i]))
            return 1;
    const char *m = fr->module ? clk_basename(fr->module) : NULL;
    static const char *const libs[] = {"libc.so", "libc-", "ld-linux", "ld64.so", "ld.so", "libpthread", "libdl."};
    for (size_t i = 0; m && i < sizeof libs / sizeof *libs; i++)
        if (!strncmp(m, libs[i], strlen(libs[i])))
            return 1;
    return 0;
}

/* A .py file of the standard library or an installed package (site-packages, Debian's dist-packages, a frozen
 * module): not the user's own code. */
static int library_python_file(const char *path)
{
    if (!path || !strncmp(path, "<frozen ", 8) || strstr(path, "/site-packages/") || strstr(path, "/dist-packages/"))
        return 1;
    for (const char *p = path; (p = strstr(p, "/python")); p++) { /* .../lib/python3.12/, .../lib64/python3.11/ */
        if (!(p - path >= 4 && !strncmp(p - 4, "/lib", 4)) && !(p - path >= 6 && !strncmp(p - 6, "/lib64", 6)))
            continue;
        const char *v = p + 7;
        if (*v < '0' || *v > '9')
            continue;
        while ((*v >= '0' && *v <= '9') || *v == '.')
            v++;
        if (*v == '/')
            return 1;
    }
    return 0;
}

/* A name that says nothing of its own: <module>, <lambda>, <listcomp>, <genexpr>, "<string>" (python -c). */
static int generic_python_name(const char *name)
{
    return name && name[0] == '<';
}

/* The names a rule may use for one frame of a finding, in the order tried; returns how many.
 * python: the finding's matched stacks hold Python frames; user: only the user's own Python frames (not the
 * standard library's or an installed package's). A Python finding's rule names a Python function (a module's
 * top-level code by its file), never the interpreter's C frames, whose calls change as it specializes; no rule
 * names a frame of the C library or the dynamic loader. */
static int candidates(const struct clk_frame *fr, int python, int user, const char *out[3])
{
    int n = 0;
    if (python) {
        if (!fr->language || (user && library_python_file(fr->file)))
            return 0;
        if (!generic_python_name(fr->function))
            out[n++] = fr->function;
        else if (fr->file && !generic_python_name(clk_basename(fr->file)))
            out[n++] = clk_basename(fr->file);
        return n;
    }
    if (system_frame(fr))
        return 0;
    out[n++] = fr->function;
    out[n++] = fr->file ? clk_basename(fr->file) : NULL;
    out[n++] = fr->module ? clk_basename(fr->module) : NULL;
    return n;
}

struct chosen {
    const char *name; /* NULL: no rule */
    uint64_t matches; /* findings of its kind the rule "KIND:^NAME$" matches */
};

static int stacks_have_python(const struct clk_stack *const *st, int ns)
{
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < st[s]->n; i++)
            if (st[s]->f[i].language)
                return 1;
    return 0;
}

/* One finding's rule: the first name of its stacks (innermost frame first; a function before its file and module)
 * that no other finding of its kind has, else the first of those that the fewest others have. For a Python finding the names are its Python
 * frames', the user's own first; when it has none of the user's, any Python frame's; at the least its innermost
 * Python frame's function. */
static struct chosen choose(const struct clk_map *counts, const struct clk_finding *f)
{
    const struct clk_stack *st[3];
    int ns = stacks_of(f, st);
    int python = stacks_have_python(st, ns);
    struct chosen first = {NULL, 0};
    for (int pass = python ? 0 : 1; pass < 2; pass++) {
        for (int s = 0; s < ns; s++)
            for (int i = 0; i < st[s]->n; i++) {
                const char *cands[3];
                int nc = candidates(&st[s]->f[i], python, pass == 0, cands);
                for (int c = 0; c < nc; c++) {
                    if (!usable(cands[c]))
                        continue;
                    const struct name_count *cnt = clk_map_get(counts, name_key(f->kind, cands[c]));
                    uint64_t n = cnt ? cnt->findings : 0;
                    if (n == 1)
                        return (struct chosen){cands[c], 1};
                    if (!first.name || n < first.matches)
                        first = (struct chosen){cands[c], n};
                }
            }
        if (first.name) /* the user's own frames, when there are any, are where a Python rule points */
            return first;
    }
    for (int s = 0; python && s < ns; s++) /* only generic or unusable names: the innermost Python frame's */
        for (int i = 0; i < st[s]->n; i++)
            if (st[s]->f[i].language && usable(st[s]->f[i].function)) {
                const struct name_count *cnt = clk_map_get(counts, name_key(f->kind, st[s]->f[i].function));
                return (struct chosen){st[s]->f[i].function, cnt ? cnt->findings : 0};
            }
    return first;
}

static const char *kind_words(enum clk_kind k, uint64_t n)
{
    if (k == CLK_LEAK)
        return n == 1 ? "leak" : "leaks";
    if (k == CLK_DOUBLE_CLOSE)
        return n == 1 ? "double close" : "double closes";
    return n == 1 ? "unknown close" : "unknown closes";
}

/* The comment before a rule that matches more than the findings it was made for (ngroup of them, described
 * above it), then the rule. */
static void rule(struct clk_buf *b, enum clk_kind kind, const struct chosen *c, size_t ngroup)
{
    uint64_t others = c->matches > ngroup ? c->matches - ngroup : 0;
    if (ngroup > 1) {
        clk_buf_printf(b, "# (one rule for these %zu %s: the names a rule can use do not tell them apart", ngroup,
                       kind_words(kind, ngroup));
        if (others)
            clk_buf_printf(b, "; it also matches %llu other %s", (unsigned long long)others, kind_words(kind, others));
        clk_buf_puts(b, ")\n");
    } else if (others) {
        clk_buf_printf(b, "# (the names a rule can use for this finding are all in other findings too: this rule also "
                       "matches %llu other %s)\n", (unsigned long long)others, kind_words(kind, others));
    }
    clk_buf_printf(b, "%s:^%s$\n", clk_kind_name(kind), c->name);
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
    /* each finding's rule; findings that get the same one (no usable name tells them apart: the same stack with
     * other targets or lines) share it, written once after all of their descriptions */
    struct chosen *rules = clk_xcalloc(r->nfindings ? r->nfindings : 1, sizeof *rules);
    size_t nfindings = 0, nrules = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed)
            continue;
        nfindings++;
        rules[i] = choose(&counts, f);
        int again = 0;
        for (size_t k = 0; rules[i].name && k < i && !again; k++)
            again = rules[k].name && r->findings[k]->kind == f->kind && !strcmp(rules[k].name, rules[i].name);
        nrules += rules[i].name && !again;
    }
    struct clk_buf b = {0};
    if (nrules == nfindings)
        clk_buf_printf(&b, "# connleak --gen-suppressions: %zu rule%s, one per finding; use with --suppressions FILE\n",
                       nrules, nrules == 1 ? "" : "s");
    else
        clk_buf_printf(&b, "# connleak --gen-suppressions: %zu rule%s for %zu finding%s; use with --suppressions FILE\n",
                       nrules, nrules == 1 ? "" : "s", nfindings, nfindings == 1 ? "" : "s");
    char *done = clk_xcalloc(r->nfindings ? r->nfindings : 1, 1);
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->suppressed || done[i])
            continue;
        describe(&b, f);
        if (!rules[i].name) {
            clk_buf_puts(&b, "# (no rule: this finding has no frame with a name a pattern can hold)\n");
            continue;
        }
        size_t ngroup = 1;
        for (size_t k = i + 1; k < r->nfindings; k++)
            if (!r->findings[k]->suppressed && rules[k].name && r->findings[k]->kind == f->kind &&
                !strcmp(rules[k].name, rules[i].name)) {
                describe(&b, r->findings[k]);
                done[k] = 1;
                ngroup++;
            }
        rule(&b, f->kind, &rules[i], ngroup);
    }
    free(done);
    free(rules);
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
