/* harness.h — the CLI's private model: frames, findings, the merged report, and the parts that build it. */
#ifndef CONNLEAK_HARNESS_H
#define CONNLEAK_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- util.c ---- */
void *clk_xmalloc(size_t n);
void *clk_xcalloc(size_t n, size_t size);
void *clk_xrealloc(void *p, size_t n);
char *clk_xstrdup(const char *s);
char *clk_xstrndup(const char *s, size_t n);
/* Interned string: equal strings share one pointer for the CLI's lifetime. */
const char *clk_intern(const char *s);
uint64_t clk_fnv1a(uint64_t h, const void *p, size_t n);
#define CLK_FNV_INIT 1469598103934665603ull
const char *clk_basename(const char *path);
/* One-line diagnostics on stderr, "connleak: ..." */
void clk_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int clk_quiet;

/* A growable byte buffer. */
struct clk_buf {
    char *p;
    size_t n, cap;
};
void clk_buf_add(struct clk_buf *b, const char *s, size_t n);
void clk_buf_printf(struct clk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An open-addressing map from 64-bit keys (never 0) to pointers. */
struct clk_map {
    uint64_t *keys;
    void **vals;
    size_t cap, used;
};
void **clk_map_slot(struct clk_map *m, uint64_t key, int create);
void *clk_map_get(const struct clk_map *m, uint64_t key);
void clk_map_free(struct clk_map *m);

/* ---- the model ---- */
struct clk_frame {
    const char *function; /* interned; NULL when unknown */
    const char *file;     /* interned */
    int line;             /* 0 when unknown */
    const char *module;   /* interned path */
    uint64_t offset;      /* return address minus the module's load bias */
    int has_offset;
};

struct clk_stack {
    struct clk_frame *f;
    int n;
};

enum clk_kind { CLK_LEAK = 0, CLK_DOUBLE_CLOSE = 1, CLK_UNKNOWN_CLOSE = 2 };

struct clk_finding {
    enum clk_kind kind;
    int checkout;          /* a pool checkout never checked in */
    const char *backend;   /* "sqlite", "postgres" */
    const char *target;    /* interned, NULL when unknown */
    const char *test;      /* "suite::name", NULL outside tests */
    uint64_t count;
    int *pids;
    size_t npids;
    struct clk_stack opened_at, first_closed_at, closed_at;
    char fingerprint[33];
    int suppressed; /* matched a suppression: counted, not reported */
    int baselined;  /* its fingerprint is in the baseline: reported, does not fail the run */
};

struct clk_report {
    char **command;
    int ncommand;
    struct {
        uint64_t processes, connects, closes, leaks, double_closes, unknown_closes, suppressed, baselined;
    } summary;
    struct clk_finding **findings;
    size_t nfindings, capfindings;
    struct clk_map index;   /* merge key -> finding */
    struct clk_map sources; /* content hash of each input: the same file twice is merged once */
    char **notes;           /* things the reader must know: crashed processes, corrupt files, lost events */
    size_t nnotes;
};

/* model.c */
void clk_report_init(struct clk_report *r);
/* Adds one finding (copied), merging with an equal one: counts summed, pids united. */
void clk_report_add(struct clk_report *r, const struct clk_finding *f);
void clk_report_note(struct clk_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clk_finding_fingerprint(struct clk_finding *f);
const char *clk_kind_name(enum clk_kind k);
/* Findings that fail the run: unsuppressed leaks and double closes. */
uint64_t clk_report_failing(const struct clk_report *r);
void clk_report_sort(struct clk_report *r);
void clk_report_finish(struct clk_report *r);

/* load_raw.c: one per-process journal (or every *.raw in a directory) into the report. */
int clk_load_raw(struct clk_report *r, const char *path);
int clk_load_run_dir(struct clk_report *r, const char *dir);
int clk_is_raw_file(const char *path);

/* static_check.c: "SQLite" or "libpq" when the object at path defines them itself
 * (statically linked, invisible to the wrappers), else NULL. Cached per path. */
const char *clk_own_copy_of(const char *path);

/* load_json.c: a JSON report (version 1) into the report. */
int clk_load_json(struct clk_report *r, const char *path);

/* symbolize.c: (module, offset) -> function, file, line with libdw; cached. */
void clk_symbolize(struct clk_frame *f);
void clk_symbolize_end(void);

/* renderers: one file each; all take the finished report (clk_report_finish) */
struct clk_render_opts {
    int verbose;             /* text: also list suppressed findings */
    const char *source_root; /* absolute; file paths under it are shown relative (SARIF, GitHub, JUnit) */
};
typedef int (*clk_renderer)(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
int clk_render_text(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
int clk_render_json(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
int clk_render_junit(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
int clk_render_sarif(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
int clk_render_github(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
/* The renderer for a format name, NULL when unknown. */
clk_renderer clk_renderer_for(const char *format);
#define CLK_FORMATS "text, json, junit, sarif, github"
/* The first frame's function, NULL when unknown. */
const char *clk_first_function(const struct clk_stack *s);
/* " (FIRST, 2 times, test s::t, pids 1, 2)": the parenthesis messages end with;
 * empty when there is nothing to say. */
void clk_render_details(struct clk_buf *b, const struct clk_finding *f, const char *first, int with_test);
/* A path relative to o->source_root when under it, else as is. */
const char *clk_relative_path(const struct clk_render_opts *o, const char *path);

/* suppress.c: LeakSanitizer-style suppressions (leak:, double_close:, unknown_close: with * globs). */
struct clk_suppressions;
/* Reads a file; on a malformed line prints "connleak: FILE:LINE: ..." and returns NULL. */
struct clk_suppressions *clk_suppressions_load(const char *path);
/* Marks matching findings suppressed (a finding matches when any frame's function,
 * file or module matches a pattern of its kind). */
void clk_suppressions_apply(struct clk_report *r, const struct clk_suppressions *s);
void clk_suppressions_free(struct clk_suppressions *s);

/* baseline.c: known fingerprints that do not fail the run. */
int clk_baseline_write(const struct clk_report *r, const char *path);
/* Marks findings whose fingerprint the baseline knows; notes how many were
 * skipped and which known ones have disappeared. -1 (with a message) when unreadable. */
int clk_baseline_apply(struct clk_report *r, const char *path);

/* run.c */
int clk_cmd_run(int argc, char **argv);
int clk_cmd_report(int argc, char **argv);
int clk_cmd_postgres(int argc, char **argv);
const char *clk_preload_path(void);

#endif
