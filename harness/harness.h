/* harness.h — the CLI's private model: frames, findings, the merged report, and the parts that build it. */
#ifndef CONNLEAK_HARNESS_H
#define CONNLEAK_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
/* Makes room for n more bytes and the terminating NUL. */
void clk_buf_reserve(struct clk_buf *b, size_t n);
/* Inline: renderers call these for every token of reports with millions of frames. */
static inline void clk_buf_add(struct clk_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap)
        clk_buf_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static inline void clk_buf_puts(struct clk_buf *b, const char *s)
{
    clk_buf_add(b, s, strlen(s));
}
static inline void clk_buf_putc(struct clk_buf *b, char c)
{
    clk_buf_add(b, &c, 1);
}
void clk_buf_int(struct clk_buf *b, long long v); /* decimal, as %lld */
void clk_buf_printf(struct clk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Renderers gather output in a buffer and write it in large pieces: writes it to out
 * and empties it once it holds more than over bytes (0: whatever it holds). */
void clk_buf_flush(struct clk_buf *b, FILE *out, size_t over);
#define CLK_FLUSH_AT (1u << 16)

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
    const char *module;   /* interned path */
    const char *language; /* interned "python" for an interpreter's frame; NULL for native code */
    uint64_t offset;      /* return address minus the module's load bias */
    int line;             /* 0 when unknown */
    int has_offset;       /* (the ints last: no padding in reports of millions of frames) */
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
    const char *via;       /* "libsqlite3", "libpq", "wire" (seen on its socket), "api"; NULL when unknown */
    const char *unfinalized[4]; /* a leak whose close returned SQLITE_BUSY: the SQL of the statements
                                 * that kept it open (interned), nunfinalized of them */
    int nunfinalized;
    const char *target;    /* interned, NULL when unknown */
    const char *test;      /* "suite::name", NULL outside tests */
    uint64_t count;
    int *pids;
    size_t npids;
    struct clk_stack opened_at, first_closed_at, closed_at;
    struct clk_stack thread_created_at; /* leaks: what created the opening thread (empty: the main thread) */
    char fingerprint[33];
    int suppressed; /* matched a suppression: counted, not reported */
    int baselined;  /* its fingerprint is in the baseline: reported, does not fail the run */
};

struct clk_report {
    char **command;
    int ncommand;
    struct {
        uint64_t processes, connects, closes, leaks, double_closes, unknown_closes, suppressed, baselined;
        /* the most connections one process had open at once: [0] any backend, [1] sqlite,
         * [2] postgres (CONNLEAK_RAW_*); the largest over the processes */
        uint64_t peak_open[3];
        uint64_t closed_by_finalizer; /* closes the runtime's garbage collector made (finalizer.c) */
    } summary;
    struct clk_finding **findings;
    size_t nfindings, capfindings;
    uint64_t held_threshold_ms;     /* --held-longer-than (0: off): long_held is filled while loading */
    struct clk_long_held *long_held; /* in load order; long_held.c */
    size_t nlong_held, caplong_held;
    struct clk_report *finalized; /* connections closed by a garbage collector, merged as findings are;
                                   * NULL when none (finalizer.c) */
    struct clk_map index;   /* merge key -> finding */
    struct clk_map sources; /* content hash of each input: the same file twice is merged once */
    char **notes;           /* things the reader must know: crashed processes, corrupt files, lost events;
                             * each note's kind is stored after its text's NUL (clk_note_kind) */
    size_t nnotes;
    unsigned fail_on;       /* CLK_FAIL_*: which notes fail the run (--fail-on) */
    int live;               /* journals of a run that has just ended (run, not report): their processes
                             * may still be alive */
    int recorded;           /* --write-baseline recorded the failing findings: they do not fail this run */
};

/* model.c */
void clk_report_init(struct clk_report *r);
/* Adds one finding (copied), merging with an equal one: counts summed, pids united.
 * Returns the report's finding it went into (valid while the report lives). */
const struct clk_finding *clk_report_add(struct clk_report *r, const struct clk_finding *f);
/* What a note is about: the reader's category, and what --fail-on unseen acts on. */
enum clk_note_kind {
    CLK_NOTE_INFO = 0,       /* suppressions and baselines used, a report merged once */
    CLK_NOTE_UNSEEN = 1,     /* a database client the detector cannot see: a copy of its own, a static or Go
                              * program, a dlmopen namespace, a process that never journaled */
    CLK_NOTE_INCOMPLETE = 2, /* an input read only in part: damaged or cut short, lost events, still running */
};
#define CLK_NOTE_KINDS "info, unseen, incomplete"
void clk_report_note(struct clk_report *r, enum clk_note_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A note's kind. Kept in the note's own allocation, after its NUL: notes stay plain strings that
 * their users (the fuzz bodies among them) read and free as such. */
static inline enum clk_note_kind clk_note_kind(const char *note)
{
    return (enum clk_note_kind)(unsigned char)note[strlen(note) + 1];
}
const char *clk_note_kind_name(enum clk_note_kind k);
/* The kind named (as in note_details' "kind"), CLK_NOTE_INFO when unknown. */
enum clk_note_kind clk_note_kind_from_name(const char *name);
/* --fail-on: notes, beyond leaks and double closes, that fail the run. */
#define CLK_FAIL_UNSEEN 1u    /* notes of kind unseen */
#define CLK_FAIL_FINALIZER 2u /* connections closed by a garbage collector (closed_by_finalizer) */
/* Parses "unseen,finalizer" into *mask (ORed in); -1 when a word is unknown or empty. */
int clk_fail_on_parse(const char *list, size_t len, unsigned *mask);
/* Whether note i fails the run under r->fail_on. */
int clk_note_fails(const struct clk_report *r, size_t i);
uint64_t clk_report_failing_notes(const struct clk_report *r);
/* Connections closed by a garbage collector that fail the run (--fail-on finalizer). */
uint64_t clk_report_failing_finalized(const struct clk_report *r);
void clk_finding_fingerprint(struct clk_finding *f);
/* Whether any of f's stacks holds a Python frame: such findings are merged and fingerprinted on their Python
 * frames and the C frames before the interpreter's (model.c). */
int clk_finding_has_python(const struct clk_finding *f);
/* A C frame of the Python interpreter (libpython, a python3.X program, the evaluation loop and call machinery). */
int clk_frame_is_interpreter(const struct clk_frame *f);
const char *clk_kind_name(enum clk_kind k);
/* Findings that fail the run: unsuppressed leaks and double closes. */
uint64_t clk_report_failing(const struct clk_report *r);
void clk_report_sort(struct clk_report *r);
void clk_report_finish(struct clk_report *r);

/* long_held.c: a connection open longer than r->held_threshold_ms (its finding holds opened_at,
 * target, test and the pid; closed: 0 when it was still open when its process ended). */
struct clk_long_held {
    struct clk_finding f;
    uint64_t held_ms;
    int closed;
};
void clk_long_held_add(struct clk_report *r, const struct clk_finding *f, uint64_t held_ms, int closed);

/* finalizer.c: was a connection a Python program opened closed by its garbage collector? flags: the close
 * event's (CONNLEAK_RAWF_FINALIZER or _EXPLICIT when the recorder knew; else the stacks tell). */
int clk_closed_by_finalizer(const struct clk_stack *opened, const struct clk_stack *closed, unsigned flags);
void clk_report_add_finalized(struct clk_report *r, const struct clk_finding *f);

/* load_raw.c: one per-process journal (or every *.raw in a directory) into the report. */
int clk_load_raw(struct clk_report *r, const char *path);
/* Every *.raw journal in dir; only_run != 0 reads only that run's (header run_id). */
int clk_load_run_dir(struct clk_report *r, const char *dir, uint64_t only_run);
int clk_is_raw_file(const char *path);

/* static_check.c: "SQLite" or "libpq" when the object at path defines them itself
 * (statically linked, invisible to the wrappers), else NULL. Cached per path. */
const char *clk_own_copy_of(const char *path);
/* 1 when path is an ELF program with no dynamic loader (LD_PRELOAD cannot reach it). */
int clk_is_static_exe(const char *path);
/* 1 when the object at path holds Go code (a .go.buildinfo section, or runtime.main or
 * runtime.goexit defined): Go makes its system calls itself, past the wrappers. Cached per path. */
int clk_is_go_object(const char *path);

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
int clk_render_html(const struct clk_report *r, FILE *out, const struct clk_render_opts *o);
/* The renderer for a format name, NULL when unknown. */
clk_renderer clk_renderer_for(const char *format);
#define CLK_FORMATS "text, json, junit, sarif, github, html"
/* The first frame's function, NULL when unknown. */
const char *clk_first_function(const struct clk_stack *s);
/* " (FIRST, 2 times, test s::t, pids 1, 2)": the parenthesis messages end with;
 * empty when there is nothing to say. */
void clk_render_details(struct clk_buf *b, const struct clk_finding *f, const char *first, int with_test);
/* A path relative to o->source_root when under it, else as is. */
const char *clk_relative_path(const struct clk_render_opts *o, const char *path);
/* Each renderer's text of a frame, remembered: a report repeats a program's few call sites
 * millions of times. Bounded (a later frame may take an earlier one's place), and keyed by
 * the frame's fields as they are: a report's strings do not change while it renders.
 * Zero-initialise; one per renderer call. */
struct clk_frame_memo {
    struct clk_memo_entry *e;
};
/* The text remembered for f, NULL when none: then render it and clk_frame_memo_put it. */
const char *clk_frame_memo_get(struct clk_frame_memo *m, const struct clk_frame *f, size_t *len);
void clk_frame_memo_put(struct clk_frame_memo *m, const struct clk_frame *f, const char *text, size_t len);
/* Appends f's remembered text to out, else renders it there with render(out, f, ctx) and remembers it. */
void clk_frame_memo_add(struct clk_frame_memo *m, struct clk_buf *out, const struct clk_frame *f,
                        void (*render)(struct clk_buf *out, const struct clk_frame *f, const void *ctx),
                        const void *ctx);
void clk_frame_memo_free(struct clk_frame_memo *m);

/* json_out.c: JSON written as it goes, laid out as jansson's JSON_COMPACT (indent 0) or
 * JSON_INDENT(n) dumps are; a report's findings never become a tree of objects. */
struct clk_json {
    struct clk_buf b; /* pending output, written to out in large pieces */
    FILE *out;
    int indent;       /* spaces per level; 0: compact */
    int depth;
    int empty;        /* the innermost open container has nothing in it yet */
    int after_key;    /* a key was written: its value comes next, without a comma */
    const char *bad_byte; /* what a byte that is not well-formed UTF-8 becomes ("?", U+FFFD) */
};
void clk_json_init(struct clk_json *j, FILE *out, int indent, const char *bad_byte);
void clk_json_open(struct clk_json *j, char bracket); /* '{' or '[' */
void clk_json_close(struct clk_json *j, char bracket);
/* A name of ours: plain ASCII, not escaped; inline so that a literal's length is known. */
void clk_json_key_n(struct clk_json *j, const char *key, size_t n);
static inline void clk_json_key(struct clk_json *j, const char *key)
{
    clk_json_key_n(j, key, strlen(key));
}
void clk_json_str(struct clk_json *j, const char *s); /* null when s is NULL */
void clk_json_int(struct clk_json *j, long long v);
/* A member: its key and value. */
static inline void clk_json_key_str(struct clk_json *j, const char *key, const char *s)
{
    clk_json_key(j, key);
    clk_json_str(j, s);
}
static inline void clk_json_key_int(struct clk_json *j, const char *key, long long v)
{
    clk_json_key(j, key);
    clk_json_int(j, v);
}
void clk_json_bool(struct clk_json *j, int v);
void clk_json_null(struct clk_json *j);
/* Text written as it is, outside the writer's layout (the JSON report's hand-laid top level). */
void clk_json_raw(struct clk_json *j, const char *s);
/* The separator before a value, alone; returns where the value that follows (written with
 * the calls above) starts in j->b, so that its text can be taken and reused. */
size_t clk_json_value_start(struct clk_json *j);
/* A whole value's text, taken that way earlier (memoized frames). */
void clk_json_value_text(struct clk_json *j, const char *text, size_t n);
/* Writes out what is pending once it is large: call between values (findings), never inside
 * one whose text is being taken from the buffer. */
void clk_json_flush(struct clk_json *j);
/* Writes what is pending and frees the buffer; -1 when out has an error. */
int clk_json_end(struct clk_json *j);
/* Length of the well-formed UTF-8 sequence at p (1 for ASCII), 0 when it is not one. */
int clk_utf8_len(const unsigned char *p);
/* render.c: the summary object the JSON report and SARIF's run properties share. */
/* with_peak: also peak_open and peak_open_by_backend (the JSON report's; SARIF's properties keep SPEC's) */
void clk_render_summary_json(struct clk_json *j, const struct clk_report *r, int with_peak);

/* suppress.c: LeakSanitizer-style suppressions (leak:, double_close:, unknown_close: with * globs). */
struct clk_suppressions;
/* Reads a file; on a malformed line prints "connleak: FILE:LINE: ..." and returns NULL. */
struct clk_suppressions *clk_suppressions_load(const char *path);
/* Marks matching findings suppressed (a finding matches when any frame's function,
 * file or module matches a pattern of its kind). */
void clk_suppressions_apply(struct clk_report *r, const struct clk_suppressions *s);
void clk_suppressions_free(struct clk_suppressions *s);
/* gen_suppressions.c: --gen-suppressions, one rule per unsuppressed finding, to path ("" or NULL: stderr). */
int clk_gen_suppressions(const struct clk_report *r, const char *path);

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
