/* baseline.c — known finding fingerprints: written from a run, then findings they name are reported but do not fail it. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* Disappeared known findings named one by one; beyond this, a count (a shard
 * that runs a tenth of the tests must not print the other nine tenths). */
#define MAX_GONE_NOTES 20

static int records(const struct clk_finding *f)
{
    return !f->suppressed && (f->kind == CLK_LEAK || f->kind == CLK_DOUBLE_CLOSE);
}

static int by_fingerprint(const void *a, const void *b)
{
    const struct clk_finding *x = *(struct clk_finding *const *)a, *y = *(struct clk_finding *const *)b;
    return strcmp(x->fingerprint, y->fingerprint);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Temp file beside the target, then rename: a reader (or a crash) never sees half a baseline. */
static int write_atomically(const char *path, const char *text)
{
    const char *base = clk_basename(path);
    size_t dirlen = (size_t)(base - path);
    size_t n = strlen(path) + 16;
    char *tmp = clk_xmalloc(n);
    snprintf(tmp, n, "%.*s.%s.XXXXXX", (int)dirlen, path, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        clk_err("cannot write baseline %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    mode_t um = umask(0); /* mkstemp makes 0600; a baseline is a shared file like any other */
    umask(um);
    fchmod(fd, 0666 & ~um);
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    if (close(fd) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0) {
        clk_err("cannot write baseline %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int clk_baseline_write(const struct clk_report *r, const char *path)
{
    /* sorted by fingerprint, one entry each: reruns give identical files and small diffs */
    struct clk_finding **v = clk_xcalloc(r->nfindings, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        if (records(r->findings[i]))
            v[n++] = r->findings[i];
    qsort(v, n, sizeof *v, by_fingerprint);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct clk_finding *f = v[i];
        if (i && !strcmp(f->fingerprint, v[i - 1]->fingerprint))
            continue; /* same code, another target: the fingerprint leaves targets out */
        const char *opener = f->opened_at.n ? f->opened_at.f[0].function : NULL;
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "fingerprint", f->fingerprint, "kind",
                                              clk_kind_name(f->kind), "backend", f->backend ? f->backend : "unknown",
                                              "target", str_or_null(f->target), "test", str_or_null(f->test),
                                              "opened_by", str_or_null(opener)));
    }
    free(v);
    json_t *root = json_pack("{s:i, s:o}", "version", 1, "fingerprints", list);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t tl = strlen(text);
    text = clk_xrealloc(text, tl + 2); /* a final newline, as text files have */
    memcpy(text + tl, "\n", 2);
    int rc = write_atomically(path, text);
    free(text);
    return rc;
}

/* One entry of the baseline file. */
struct known {
    const char *fingerprint, *kind, *backend, *opened_by;
    int seen;
};

static int known_cmp(const void *a, const void *b)
{
    return strcmp(((const struct known *)a)->fingerprint, ((const struct known *)b)->fingerprint);
}

static const char *member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void note_once(struct clk_report *r, const char *text)
{
    for (size_t i = 0; i < r->nnotes; i++)
        if (!strcmp(r->notes[i], text))
            return;
    clk_report_note(r, CLK_NOTE_INFO, "%s", text);
}

/* Reads the file into known[] (strings borrowed from root). -1 with a message when unusable. */
static int load(const char *path, json_t **rootp, struct known **out, size_t *nout)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        clk_err("cannot read baseline %s: %s", path, strerror(errno));
        return -1;
    }
    json_error_t e;
    json_t *root = json_loadf(fp, 0, &e);
    fclose(fp);
    if (!root) {
        clk_err("baseline %s is not valid JSON: %s (line %d)", path, e.text, e.line);
        return -1;
    }
    *rootp = root;
    json_t *ver = json_object_get(root, "version"), *list = json_object_get(root, "fingerprints");
    if (!json_is_object(root) || !json_is_integer(ver) || !json_is_array(list)) {
        clk_err("baseline %s is not a connleak baseline (want {\"version\": 1, \"fingerprints\": [...]}, "
                "as --write-baseline writes)",
                path);
        return -1;
    }
    if (json_integer_value(ver) != 1) {
        clk_err("baseline %s has version %lld; this connleak reads version 1", path,
                (long long)json_integer_value(ver));
        return -1;
    }
    size_t n = json_array_size(list);
    struct known *k = clk_xcalloc(n, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        json_t *e1 = json_array_get(list, i);
        /* a bare string is a fingerprint too: hand-edited baselines stay short */
        const char *fp1 = json_is_string(e1) ? json_string_value(e1) : json_is_object(e1) ? member(e1, "fingerprint") : NULL;
        if (!fp1 || !*fp1) {
            clk_err("baseline %s: entry %zu of \"fingerprints\" has no fingerprint", path, i + 1);
            free(k);
            return -1;
        }
        k[i].fingerprint = fp1;
        if (json_is_object(e1)) {
            k[i].kind = member(e1, "kind");
            k[i].backend = member(e1, "backend");
            k[i].opened_by = member(e1, "opened_by");
        }
    }
    *out = k;
    *nout = n;
    return 0;
}

int clk_baseline_apply(struct clk_report *r, const char *path)
{
    json_t *root = NULL;
    struct known *k = NULL;
    size_t n = 0;
    if (load(path, &root, &k, &n) != 0) {
        json_decref(root);
        return -1;
    }
    /* k keeps file order for the notes; a sorted copy is what findings are looked up in */
    struct known *keys = clk_xcalloc(n, sizeof *keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = k[i];
    qsort(keys, n, sizeof *keys, known_cmp);
    size_t nkeys = 0; /* one key per fingerprint, so "seen" cannot land on a twin */
    for (size_t i = 0; i < n; i++)
        if (!nkeys || strcmp(keys[i].fingerprint, keys[nkeys - 1].fingerprint))
            keys[nkeys++] = keys[i];
    uint64_t skipped = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        struct clk_finding *f = r->findings[i];
        struct known probe = {.fingerprint = f->fingerprint};
        struct known *hit = nkeys ? bsearch(&probe, keys, nkeys, sizeof *keys, known_cmp) : NULL;
        if (!hit)
            continue;
        hit->seen = 1; /* seen even when suppressed now: it has not disappeared */
        if (records(f)) {
            f->baselined = 1;
            skipped += f->count;
        }
    }
    char text[1024];
    snprintf(text, sizeof text, "baseline %s: %llu finding(s) baselined (reported, not failing)", path, (unsigned long long)skipped);
    note_once(r, text);
    size_t gone = 0;
    for (size_t i = 0; i < n; i++) {
        struct known probe = {.fingerprint = k[i].fingerprint};
        struct known *s = bsearch(&probe, keys, nkeys, sizeof *keys, known_cmp);
        if (s->seen)
            continue;
        s->seen = 1; /* a fingerprint listed twice is named once */
        if (++gone > MAX_GONE_NOTES)
            continue;
        snprintf(text, sizeof text, "baseline %s: baselined finding no longer seen: %s %s opened by %s (%s)", path,
                 k[i].kind ? k[i].kind : "finding", k[i].backend ? k[i].backend : "?",
                 k[i].opened_by ? k[i].opened_by : "??", k[i].fingerprint);
        note_once(r, text);
    }
    if (gone > MAX_GONE_NOTES) {
        snprintf(text, sizeof text, "baseline %s: ... and %zu more baselined finding(s) no longer seen", path,
                 gone - MAX_GONE_NOTES);
        note_once(r, text);
    }
    free(keys);
    free(k);
    json_decref(root);
    return 0;
}
