/* model.c — the merged report: findings keyed by what they are and where, counts summed, pids united. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void clk_report_init(struct clk_report *r)
{
    memset(r, 0, sizeof *r);
}

const char *clk_kind_name(enum clk_kind k)
{
    return k == CLK_LEAK ? "leak" : k == CLK_DOUBLE_CLOSE ? "double_close" : "unknown_close";
}

/* A finding is hashed twice over, in one pass over its frames:
 * - its fingerprint: FNV-1a with two seeds over function names and module base names only,
 *   stable across builds, machines and address-space layouts, so baselines and shards can
 *   compare (the bytes hashed and their order must not change: baselines hold the results);
 * - its merge key: everything that makes two findings the same one (files, lines, targets
 *   too); it never leaves the process, so it is hashed a word at a time, not a byte, and
 *   takes what the fingerprint covers from the fingerprint's states. */
#define FNV_PRIME 1099511628211ull
#define FP_SEED_B 0x9e3779b97f4a7c15ull

struct hasher {
    uint64_t a, b; /* the fingerprint's two FNV-1a states */
    uint64_t key;
};

static void fp_bytes(struct hasher *h, const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t a = h->a, b = h->b;
    for (size_t i = 0; i < n; i++) {
        a = (a ^ c[i]) * FNV_PRIME;
        b = (b ^ c[i]) * FNV_PRIME;
    }
    h->a = a;
    h->b = b;
}

/* A string with its NUL, or "\1" for none. */
static void fp_str(struct hasher *h, const char *s, size_t n)
{
    if (s)
        fp_bytes(h, s, n + 1);
    else
        fp_bytes(h, "\1", 1);
}

/* Each step is a bijection of the state for a given word, so no word can wipe out what came before. */
static void key_word(struct hasher *h, uint64_t w)
{
    uint64_t k = (h->key ^ w) * 0xff51afd7ed558ccdull;
    h->key = k ^ (k >> 29);
}

static void key_str(struct hasher *h, const char *s, size_t n)
{
    if (!s) {
        key_word(h, 0x6e756c6cull); /* unlike any length below */
        return;
    }
    key_word(h, (uint64_t)n << 32 | 0x5354u);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        key_word(h, w);
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        key_word(h, w);
    }
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

/* ---- Python findings ----
 * CPython 3.11+ specializes bytecode as it runs, so the interpreter's C frames between and under the Python frames
 * change from one call of the same line to the next (_PyObject_MakeTpCall alone, then through PyObject_Vectorcall
 * or cfunction_vectorcall_*); a stack truncated at --stack-depth then also loses a varying number of outer C frames.
 * A finding with a Python frame in any of its stacks is therefore merged and fingerprinted on what stays: the
 * Python frames (function, file, line: a .py file is a Python frame's module) and the C frames before the first
 * interpreter frame of each stack, i.e. the code the innermost Python frame called (the C extension's own frames,
 * _sqlite3's, _ctypes' and libffi's) down to the database call. Findings without Python frames are hashed as they
 * always were: their fingerprints are in baselines. */

static int starts_with(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

/* libpython, or a program that holds the interpreter itself (python3.11, pyenv's python3.12). */
static int interpreter_object(const char *module)
{
    const char *base = module ? clk_basename(module) : NULL;
    return starts_with(base, "libpython") || starts_with(base, "python");
}

/* The evaluation loop and the call machinery: interpreter frames whatever object holds them (an interpreter
 * linked statically into a program of another name). */
static int interpreter_function(const char *fn)
{
    static const char *const prefixes[] = {"_PyEval_", "PyEval_", "_PyObject_", "PyObject_", "_PyFunction_",
                                           "PyVectorcall_", "_PyRun_", "PyRun_", "Py_RunMain", "Py_BytesMain"};
    for (size_t i = 0; fn && i < sizeof prefixes / sizeof *prefixes; i++)
        if (starts_with(fn, prefixes[i]))
            return 1;
    return 0;
}

int clk_frame_is_interpreter(const struct clk_frame *f)
{
    return !f->language && (interpreter_object(f->module) || interpreter_function(f->function));
}

static int stack_has_python(const struct clk_stack *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->f[i].language)
            return 1;
    return 0;
}

int clk_finding_has_python(const struct clk_finding *f)
{
    return stack_has_python(&f->opened_at) || stack_has_python(&f->closed_at) ||
           stack_has_python(&f->first_closed_at) || stack_has_python(&f->thread_created_at);
}

/* The frames of a Python finding's stack that its key and fingerprint take, marked in keep[] (s->n of them);
 * returns how many. The object that holds the evaluation loop is the interpreter's wherever it is named. */
static int python_kept(const struct clk_stack *s, unsigned char *keep)
{
    const char *loop_module = NULL;
    for (int i = 0; i < s->n && !loop_module; i++)
        if (!s->f[i].language && s->f[i].module && interpreter_function(s->f[i].function))
            loop_module = s->f[i].module;
    int n = 0, in_interpreter = 0;
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        if (!f->language && !in_interpreter &&
            (clk_frame_is_interpreter(f) || (loop_module && f->module == loop_module)))
            in_interpreter = 1;
        keep[i] = f->language || !in_interpreter;
        n += keep[i];
    }
    return n;
}

/* fingerprint: whether the stack is part of the fingerprint (the first close is not); python: the finding has
 * Python frames (above). */
static void hash_stack(struct hasher *h, const struct clk_stack *s, int fingerprint, int python)
{
    unsigned char keep_small[256], *keep = NULL;
    int n = s->n;
    if (python && s->n) {
        keep = s->n <= (int)sizeof keep_small ? keep_small : clk_xmalloc((size_t)s->n);
        n = python_kept(s, keep);
    }
    if (fingerprint)
        fp_bytes(h, &n, sizeof n);
    key_word(h, (uint64_t)(unsigned)n);
    for (int i = 0; i < s->n; i++) {
        const struct clk_frame *f = &s->f[i];
        if (keep && !keep[i])
            continue;
        /* a Python frame's module is its .py file */
        const char *base = clk_basename(f->language && python ? f->file : f->module);
        size_t nfn = len_of(f->function), nbase = len_of(base);
        if (fingerprint) { /* the fingerprint's states go into the key at the end */
            fp_str(h, f->function, nfn);
            fp_str(h, base, nbase);
        } else {
            key_str(h, f->function, nfn);
            key_str(h, base, nbase);
        }
        key_str(h, f->file, len_of(f->file));
        /* without a name, the address is all there is */
        key_word(h, (uint64_t)(unsigned)f->line << 32 | (f->function ? 0 : 1));
        if (!f->function)
            key_word(h, f->offset);
    }
    if (keep != keep_small)
        free(keep);
}

/* The merge key, and the fingerprint into fp when fp is not NULL. */
static uint64_t finding_hashes(const struct clk_finding *f, char fp[33])
{
    struct hasher h = {CLK_FNV_INIT, FP_SEED_B, CLK_FNV_INIT};
    int python = clk_finding_has_python(f);
    fp_bytes(&h, &f->kind, sizeof f->kind);
    fp_bytes(&h, &f->checkout, sizeof f->checkout);
    fp_str(&h, f->backend, len_of(f->backend));
    fp_str(&h, f->test, len_of(f->test));
    hash_stack(&h, &f->opened_at, 1, python);
    hash_stack(&h, &f->closed_at, 1, python);
    /* the fingerprint leaves out targets (temporary paths differ per run) and lines */
    key_str(&h, f->target, len_of(f->target));
    hash_stack(&h, &f->first_closed_at, 0, python);
    /* a thread's creator tells leaks apart but stays out of the fingerprint (and out of the key when
     * there is none: main-thread findings merge as before) */
    if (f->thread_created_at.n)
        hash_stack(&h, &f->thread_created_at, 0, python);
    key_word(&h, h.a);
    key_word(&h, h.b);
    if (fp)
        snprintf(fp, 33, "%016llx%016llx", (unsigned long long)h.a, (unsigned long long)h.b);
    return h.key;
}

void clk_finding_fingerprint(struct clk_finding *f)
{
    finding_hashes(f, f->fingerprint);
}

static struct clk_stack copy_stack(const struct clk_stack *s)
{
    struct clk_stack c = {NULL, s->n};
    if (s->n) {
        c.f = clk_xmalloc((size_t)s->n * sizeof *c.f);
        memcpy(c.f, s->f, (size_t)s->n * sizeof *c.f);
    }
    return c;
}

static void add_pid(struct clk_finding *f, int pid)
{
    for (size_t i = 0; i < f->npids; i++)
        if (f->pids[i] == pid)
            return;
    f->pids = clk_xrealloc(f->pids, (f->npids + 1) * sizeof *f->pids);
    f->pids[f->npids++] = pid;
}

const struct clk_finding *clk_report_add(struct clk_report *r, const struct clk_finding *in)
{
    char fp[33];
    uint64_t key = finding_hashes(in, in->fingerprint[0] ? NULL : fp);
    void **slot = clk_map_slot(&r->index, key, 1);
    struct clk_finding *f = *slot;
    if (f) {
        f->count += in->count;
        for (size_t i = 0; i < in->npids; i++)
            add_pid(f, in->pids[i]);
        return f;
    }
    f = clk_xcalloc(1, sizeof *f);
    *f = *in;
    f->pids = NULL;
    f->npids = 0;
    for (size_t i = 0; i < in->npids; i++)
        add_pid(f, in->pids[i]);
    f->opened_at = copy_stack(&in->opened_at);
    f->first_closed_at = copy_stack(&in->first_closed_at);
    f->closed_at = copy_stack(&in->closed_at);
    f->thread_created_at = copy_stack(&in->thread_created_at);
    if (!f->fingerprint[0])
        memcpy(f->fingerprint, fp, sizeof fp);
    if (r->nfindings == r->capfindings) {
        r->capfindings = r->capfindings ? r->capfindings * 2 : 16;
        r->findings = clk_xrealloc(r->findings, r->capfindings * sizeof *r->findings);
    }
    r->findings[r->nfindings++] = f;
    *slot = f;
    return f;
}

void clk_report_note(struct clk_report *r, enum clk_note_kind kind, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t n = strlen(buf);
    char *note = clk_xmalloc(n + 2);
    memcpy(note, buf, n + 1);
    note[n + 1] = (char)kind; /* read back by clk_note_kind */
    r->notes = clk_xrealloc(r->notes, (r->nnotes + 1) * sizeof *r->notes);
    r->notes[r->nnotes++] = note;
}

static const char *const note_kind_names[] = {
    [CLK_NOTE_INFO] = "info", [CLK_NOTE_UNSEEN] = "unseen", [CLK_NOTE_INCOMPLETE] = "incomplete"};

const char *clk_note_kind_name(enum clk_note_kind k)
{
    return (unsigned)k < sizeof note_kind_names / sizeof *note_kind_names ? note_kind_names[k] : "info";
}

enum clk_note_kind clk_note_kind_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof note_kind_names / sizeof *note_kind_names; i++)
        if (!strcmp(name, note_kind_names[i]))
            return (enum clk_note_kind)i;
    return CLK_NOTE_INFO;
}

int clk_fail_on_parse(const char *list, size_t len, unsigned *mask)
{
    const char *end = list + len;
    for (;;) {
        const char *comma = memchr(list, ',', (size_t)(end - list));
        size_t n = (size_t)((comma ? comma : end) - list);
        if (n == 6 && !strncmp(list, "unseen", 6))
            *mask |= CLK_FAIL_UNSEEN;
        else if (n == 9 && !strncmp(list, "finalizer", 9))
            *mask |= CLK_FAIL_FINALIZER;
        else
            return -1;
        if (!comma)
            return 0;
        list = comma + 1;
    }
}

int clk_note_fails(const struct clk_report *r, size_t i)
{
    return (r->fail_on & CLK_FAIL_UNSEEN) && clk_note_kind(r->notes[i]) == CLK_NOTE_UNSEEN;
}

uint64_t clk_report_failing_finalized(const struct clk_report *r)
{
    return (r->fail_on & CLK_FAIL_FINALIZER) ? r->summary.closed_by_finalizer : 0;
}

uint64_t clk_report_failing_notes(const struct clk_report *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->nnotes; i++)
        n += (uint64_t)clk_note_fails(r, i);
    return n;
}

uint64_t clk_report_failing(const struct clk_report *r)
{
    uint64_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (!f->suppressed && !f->baselined && (f->kind == CLK_LEAK || f->kind == CLK_DOUBLE_CLOSE))
            n += f->count;
    }
    return n;
}

static int by_importance(const void *a, const void *b)
{
    const struct clk_finding *x = *(struct clk_finding *const *)a, *y = *(struct clk_finding *const *)b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return memcmp(x->fingerprint, y->fingerprint, sizeof x->fingerprint); /* always 32 digits and a NUL */
}

void clk_report_sort(struct clk_report *r)
{
    if (r->nfindings > 1) /* findings is NULL in a clean report: qsort's base must not be */
        qsort(r->findings, r->nfindings, sizeof *r->findings, by_importance);
}

/* Summary figures that follow from the findings. */
void clk_report_finish(struct clk_report *r)
{
    r->summary.leaks = r->summary.double_closes = r->summary.unknown_closes = r->summary.suppressed = 0;
    r->summary.baselined = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct clk_finding *f = r->findings[i];
        if (f->baselined && !f->suppressed)
            r->summary.baselined += f->count;
        if (f->suppressed)
            r->summary.suppressed += f->count;
        else if (f->kind == CLK_LEAK)
            r->summary.leaks += f->count;
        else if (f->kind == CLK_DOUBLE_CLOSE)
            r->summary.double_closes += f->count;
        else
            r->summary.unknown_closes += f->count;
    }
    clk_report_sort(r);
}
