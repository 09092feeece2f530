/* formats_common.c — runs connleak for the format suites, normalises what varies between runs, compares with golden files. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "formats_common.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d, "out of memory");
    return d;
}

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    cr_assert(asprintf(&s, "%s%s", a, b) >= 0, "out of memory");
    return s;
}

/* argv = connleak VERB [pre...] --json J --format F --output O [post...] */
static int invoke(const char *verb, const char *format, const char *const *pre, const char *const *post,
                  const char *const *env, const char *cwd, struct fmt_run *r)
{
    const char *argv[128];
    size_t k = 0;
    char *json_path = clk_test_path(r->dir, "report.json");
    char *out_path = clk_test_path(r->dir, "out.txt");
    argv[k++] = clk_test_cli();
    argv[k++] = verb;
    for (size_t i = 0; pre && pre[i] && k < 100; i++)
        argv[k++] = pre[i];
    argv[k++] = "--json";
    argv[k++] = json_path;
    argv[k++] = "--format";
    argv[k++] = format;
    argv[k++] = "--output";
    argv[k++] = out_path;
    for (size_t i = 0; post && post[i] && k < 126; i++)
        argv[k++] = post[i];
    argv[k] = NULL;
    clk_test_exec(argv, env, cwd, 0, &r->proc);
    r->out = clk_test_read_file(out_path, &r->out_len);
    char *json = clk_test_read_file(json_path, NULL);
    if (json) {
        r->report = json_loads(json, 0, NULL);
        free(json);
    }
    free(json_path);
    free(out_path);
    return r->proc.status;
}

/* The suites never run preloaded, and paths must not depend on the CI's own checkout. */
#define CLEAN_ENV "LD_PRELOAD", "CONNLEAK_OPTIONS", "CONNLEAK_RUN_DIR"

int fmt_run_command(const char *format, const char *const *opts, const char *const *cmd, struct fmt_run *r)
{
    memset(r, 0, sizeof *r);
    r->dir = clk_test_mkdtemp();
    r->root = xstrdup(clk_test_source_root());
    const char *pre[64], *post[64];
    size_t np = 0, nq = 0;
    for (size_t i = 0; opts && opts[i] && np < 60; i++)
        pre[np++] = opts[i];
    pre[np] = NULL;
    post[nq++] = "--";
    for (size_t i = 0; cmd[i] && nq < 62; i++)
        post[nq++] = strcmp(cmd[i], "@DIR") ? cmd[i] : r->dir;
    post[nq] = NULL;
    return invoke("run", format, pre, post, ARGS(CLEAN_ENV, "GITHUB_WORKSPACE"), r->root, r);
}

int fmt_run_fixture(const char *format, const char *const *args, struct fmt_run *r)
{
    const char *cmd[64];
    size_t k = 0;
    cmd[k++] = FX_FORMATS;
    for (size_t i = 0; args[i] && k < 63; i++)
        cmd[k++] = args[i];
    cmd[k] = NULL;
    /* three frames end every fixture stack at main: no libc frames, whose lines differ between machines */
    return fmt_run_command(format, ARGS("--stack-depth", "3"), cmd, r);
}

int fmt_report(const char *format, const char *input, const char *root, struct fmt_run *r)
{
    memset(r, 0, sizeof *r);
    r->dir = clk_test_mkdtemp();
    r->root = xstrdup(root);
    char *ws = join("GITHUB_WORKSPACE=", root);
    /* --quiet: no text report on stderr (the cap test has 25,001 findings) */
    int rc = invoke("report", format, ARGS("--quiet", input), NULL, ARGS(CLEAN_ENV, ws), NULL, r);
    free(ws);
    return rc;
}

void fmt_run_free(struct fmt_run *r)
{
    clk_test_proc_free(&r->proc);
    if (r->report)
        json_decref(r->report);
    if (r->dir)
        clk_test_rmtree(r->dir);
    free(r->dir);
    free(r->out);
    free(r->root);
    memset(r, 0, sizeof *r);
}

void fmt_assert_ran(const struct fmt_run *r, int status)
{
    cr_assert_eq(r->proc.status, status, "connleak exit status %d, expected %d%s\n--- stdout:\n%s\n--- stderr:\n%s",
                 r->proc.status, status, r->proc.timed_out ? " (timed out)" : "", clk_test_excerpt(r->proc.out),
                 clk_test_excerpt(r->proc.err));
    cr_assert_not_null(r->out, "connleak wrote no output file\n--- stderr:\n%s", clk_test_excerpt(r->proc.err));
    cr_assert_not_null(r->report, "connleak wrote no JSON report\n--- stderr:\n%s", clk_test_excerpt(r->proc.err));
}

char *fmt_input(const char *name)
{
    char *dir = join(FORMATS_DIR, "/input/");
    char *p = join(dir, name);
    free(dir);
    return p;
}

/* ---- normalisation ---- */

static void replace_all(char **text, const char *from, const char *to)
{
    if (!from || !from[0])
        return;
    size_t nf = strlen(from), nt = strlen(to);
    struct {
        char *p;
        size_t n, cap;
    } b = {0};
    for (const char *s = *text;;) {
        const char *hit = strstr(s, from);
        size_t keep = hit ? (size_t)(hit - s) : strlen(s);
        size_t need = b.n + keep + nt + 1;
        if (need > b.cap) {
            b.cap = need * 2;
            b.p = realloc(b.p, b.cap);
            cr_assert_not_null(b.p, "out of memory");
        }
        memcpy(b.p + b.n, s, keep);
        b.n += keep;
        if (!hit)
            break;
        memcpy(b.p + b.n, to, nt);
        b.n += nt;
        s = hit + nf;
    }
    b.p[b.n] = 0;
    free(*text);
    *text = b.p;
}

/* After each `prefix`, a run of characters from `set` (repeated while "sep"+more follows) becomes `mask`. */
static void mask_after(char **text, const char *prefix, const char *set, const char *sep, const char *mask)
{
    size_t np = strlen(prefix), ns = sep ? strlen(sep) : 0, nm = strlen(mask);
    size_t len = strlen(*text);
    char *out = malloc(len * (nm + 1) + 1);
    cr_assert_not_null(out, "out of memory");
    size_t o = 0;
    for (const char *s = *text; *s;) {
        if (strncmp(s, prefix, np) || !s[np] || !strchr(set, s[np])) {
            out[o++] = *s++;
            continue;
        }
        memcpy(out + o, s, np);
        o += np;
        s += np;
        for (;;) {
            while (*s && strchr(set, *s))
                s++;
            memcpy(out + o, mask, nm);
            o += nm;
            if (!sep || strncmp(s, sep, ns) || !s[ns] || !strchr(set, s[ns]))
                break;
            memcpy(out + o, sep, ns);
            o += ns;
            s += ns;
        }
    }
    out[o] = 0;
    free(*text);
    *text = out;
}

char *fmt_normalize(const struct fmt_run *r)
{
    char *t = xstrdup(r->out ? r->out : "");
    replace_all(&t, r->dir, "$TMP");
    /* the fixture binary, absolute or as the renderers show it under the source root */
    replace_all(&t, FX_FORMATS, "$FIXTURE");
    size_t nr = strlen(r->root);
    if (!strncmp(FX_FORMATS, r->root, nr) && FX_FORMATS[nr] == '/')
        replace_all(&t, FX_FORMATS + nr + 1, "$FIXTURE");
    replace_all(&t, r->root, "$ROOT");
    replace_all(&t, CLK_PROJECT_VERSION, "$VERSION");
    mask_after(&t, "$FIXTURE+0x", "0123456789abcdef", NULL, "$OFF");
    mask_after(&t, "pid ", "0123456789", NULL, "$PID");
    mask_after(&t, "pids ", "0123456789", ", ", "$PID");
    return t;
}

/* ---- golden files ---- */

static void first_difference(const char *want, const char *got, char *msg, size_t cap)
{
    int line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        if (*w == '\n') {
            line++;
            want = w + 1;
            got = g + 1;
        }
        w++;
        g++;
    }
    int wl = (int)strcspn(want, "\n"), gl = (int)strcspn(got, "\n");
    snprintf(msg, cap, "first difference at line %d:\n  golden: %.*s%s\n  actual: %.*s%s", line, wl > 400 ? 400 : wl,
             want, *want ? "" : "(end of file)", gl > 400 ? 400 : gl, got, *got ? "" : "(end of file)");
}

void fmt_golden(const char *name, const char *actual)
{
    char *dir = join(FORMATS_DIR, "/golden/");
    char *path = join(dir, name);
    free(dir);
    const char *update = getenv("CONNLEAK_UPDATE_GOLDEN");
    if (update && !strcmp(update, "1")) {
        cr_assert_eq(clk_test_write_file(path, actual, strlen(actual)), 0, "cannot write %s", path);
        cr_log_warn("golden file %s rewritten", path);
        free(path);
        return;
    }
    char *want = clk_test_read_file(path, NULL);
    cr_assert_not_null(want, "no golden file %s (CONNLEAK_UPDATE_GOLDEN=1 meson test formats-... writes it)", path);
    if (strcmp(want, actual)) {
        char msg[2048];
        first_difference(want, actual, msg, sizeof msg);
        cr_assert_fail("output differs from %s\n%s\n--- whole output (normalised):\n%s\n"
                       "(if the change is intended: CONNLEAK_UPDATE_GOLDEN=1 meson test formats-...)",
                       path, msg, clk_test_excerpt(actual));
    }
    free(want);
    free(path);
}

json_t *fmt_finding(const struct fmt_run *r, const char *kind, size_t i)
{
    int leak = !strcmp(kind, "leak");
    json_t *list = json_object_get(r->report, leak ? "leaks" : "left_field_closes");
    size_t k = 0, n = json_array_size(list);
    for (size_t j = 0; j < n; j++) {
        json_t *e = json_array_get(list, j);
        if (!leak && strcmp(clk_test_str(e, "kind"), kind))
            continue;
        if (k++ == i)
            return e;
    }
    return NULL;
}
