/* run.c — `connleak run`, `report` and `postgres`: option parsing, the child under the detector, exit statuses. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "common/duration.h"
#include "common/output_path.h"
#include "common/redact.h"
#include "postgres.h"
#include "rawfmt.h"

/* lib/recorder/options.c, linked in: CONNLEAK_OPTIONS checked as the library reads it (-1: bad, 1: help=1) */
int clk_options_parse(const char *spec, char *err, size_t errlen);

#define STATUS_USAGE 2

#define MAX_OUTPUTS 16

/* One rendering: a format and where it goes (NULL: stderr). */
struct output {
    const char *format;
    const char *path;
};

struct opts {
    struct output outs[MAX_OUTPUTS];
    int nouts;
    int format_pending; /* the last --format has no --output yet */
    int exitcode, exitcode_given;
    int verbose, quiet, postgres, stack_depth, no_follow;
    unsigned fail_on; /* CLK_FAIL_* from --fail-on */
    uint64_t held_ms; /* --held-longer-than, 0: off */
    const char *keep_raw;
    const char *source_root; /* --source-root: what SARIF, GitHub and JUnit paths are relative to */
    const char *suppressions, *baseline, *write_baseline;
    const char *gen_suppressions; /* --gen-suppressions[=FILE]: "" for stderr */
    char **cmd; /* after "--" */
    int ncmd;
    char **files;
    int nfiles;
};

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Shared by run and report; `run` requires "--" before the command. */
static int parse(const char *verb, int argc, char **argv, struct opts *o, int want_cmd)
{
    memset(o, 0, sizeof *o);
    o->exitcode = 23;
    int i;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
#define NEEDS_VALUE()                                                          \
    do {                                                                       \
        if (i + 1 >= argc || !strcmp(argv[i + 1], "--")) {                     \
            clk_err("%s: option %s needs a value", verb, a);                   \
            return -1;                                                         \
        }                                                                      \
        val = argv[++i];                                                       \
    } while (0)
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "--json") || !strcmp(a, "--format") || !strcmp(a, "--output")) {
            /* --format F [--output FILE] pairs; --json FILE is --format json --output FILE;
             * an --output without its own --format writes text */
            NEEDS_VALUE();
            if (!strcmp(a, "--format") && !clk_renderer_for(val)) {
                clk_err("%s: unknown format '%s' (" CLK_FORMATS ")", verb, val);
                return -1;
            }
            if (!strcmp(a, "--output") && o->format_pending) {
                o->outs[o->nouts - 1].path = val;
                o->format_pending = 0;
                continue;
            }
            if (o->nouts == MAX_OUTPUTS) {
                clk_err("%s: at most %d outputs", verb, MAX_OUTPUTS);
                return -1;
            }
            struct output *out = &o->outs[o->nouts++];
            out->format = !strcmp(a, "--format") ? val : !strcmp(a, "--json") ? "json" : "text";
            out->path = !strcmp(a, "--format") ? NULL : val;
            o->format_pending = !strcmp(a, "--format");
        } else if (!strcmp(a, "--exitcode")) {
            NEEDS_VALUE();
            if (parse_int(val, 0, 255, &o->exitcode)) {
                clk_err("%s: --exitcode wants a number from 0 to 255, not '%s'", verb, val);
                return -1;
            }
            o->exitcode_given = 1;
        } else if (!strcmp(a, "--fail-on")) {
            NEEDS_VALUE();
            if (clk_fail_on_parse(val, strlen(val), &o->fail_on) != 0) {
                clk_err("%s: --fail-on wants unseen or finalizer (several: a comma list), not '%s'", verb, val);
                return -1;
            }
        } else if (!strcmp(a, "--suppressions")) {
            NEEDS_VALUE();
            o->suppressions = val;
        } else if (!strcmp(a, "--baseline")) {
            NEEDS_VALUE();
            o->baseline = val;
        } else if (!strcmp(a, "--write-baseline")) {
            NEEDS_VALUE();
            o->write_baseline = val;
        } else if (!strcmp(a, "--gen-suppressions") || !strncmp(a, "--gen-suppressions=", 19)) {
            /* =FILE, or stderr after the report (also =all and =yes, Valgrind's words) */
            const char *v = a[18] ? a + 19 : "";
            if (a[18] && !*v) {
                clk_err("%s: --gen-suppressions= needs a file name", verb);
                return -1;
            }
            o->gen_suppressions = !strcmp(v, "all") || !strcmp(v, "yes") ? "" : v;
        } else if (!strcmp(a, "--source-root")) {
            NEEDS_VALUE();
            struct stat st;
            if (stat(val, &st) != 0 || !S_ISDIR(st.st_mode)) {
                clk_err("%s: --source-root %s: not a directory", verb, val);
                return -1;
            }
            o->source_root = val;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
            clk_quiet = 1;
        } else if (want_cmd && !strcmp(a, "--postgres")) {
            o->postgres = 1;
        } else if (!strcmp(a, "--held-longer-than")) {
            NEEDS_VALUE();
            if (clk_parse_duration_ms(val, strlen(val), &o->held_ms) != 0 || !o->held_ms) {
                clk_err("%s: --held-longer-than wants a duration from 1ms to 24h (500ms, 1.5s, 2m), not '%s'", verb,
                        val);
                return -1;
            }
        } else if (want_cmd && !strcmp(a, "--stack-depth")) {
            NEEDS_VALUE();
            if (parse_int(val, 1, 128, &o->stack_depth)) {
                clk_err("%s: --stack-depth wants a number from 1 to 128, not '%s'", verb, val);
                return -1;
            }
        } else if (want_cmd && !strcmp(a, "--follow-children")) {
            o->no_follow = 0;
        } else if (want_cmd && !strcmp(a, "--no-follow-children")) {
            o->no_follow = 1;
        } else if (want_cmd && !strcmp(a, "--keep-raw")) {
            NEEDS_VALUE();
            o->keep_raw = val;
        } else if (a[0] == '-' && a[1]) {
            clk_err("%s: unknown option '%s' (see connleak --help)", verb, a);
            return -1;
        } else if (want_cmd) {
            clk_err("%s: put '--' before the command, as in: connleak run -- %s", verb, a);
            return -1;
        } else {
            o->files = clk_xrealloc(o->files, (size_t)(o->nfiles + 1) * sizeof *o->files);
            o->files[o->nfiles++] = argv[i];
        }
#undef NEEDS_VALUE
    }
    if (want_cmd) {
        if (i > argc || i == argc || (i > 0 && strcmp(argv[i - 1], "--") != 0)) {
            clk_err("%s: no command given (usage: connleak %s [OPTIONS] -- COMMAND [ARG...])", verb, verb);
            return -1;
        }
        o->cmd = argv + i;
        o->ncmd = argc - i;
    } else if (i < argc) {
        for (; i < argc; i++) {
            o->files = clk_xrealloc(o->files, (size_t)(o->nfiles + 1) * sizeof *o->files);
            o->files[o->nfiles++] = argv[i];
        }
    }
    return 0;
}

/* ---- where the preload library is ---- */

const char *clk_preload_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("CONNLEAK_PRELOAD");
    if (env && env[0] && access(env, R_OK) == 0)
        return realpath(env, path) ? path : NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    const char *candidates[] = {
        "%s/../lib/recorder/" CONNLEAK_PRELOAD_NAME, /* the build tree */
        "%s/../" CONNLEAK_LIBDIR "/" CONNLEAK_PRELOAD_NAME, /* installed beside bin/ */
        "%s/" CONNLEAK_PRELOAD_NAME,
    };
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char buf[PATH_MAX + 256];
        snprintf(buf, sizeof buf, candidates[i], exe);
        if (access(buf, R_OK) == 0 && realpath(buf, path))
            return path;
    }
    return NULL;
}

/* ---- rendering and the verdict ---- */

/* A report file is written to a temporary file beside it (O_EXCL, never
 * through a symlink) and renamed into place, so a planted link cannot redirect
 * it and a reader never sees half a report. Its mode follows the umask: a
 * report holds no secrets, and CI uploads it as another user. */
static FILE *open_output(const char *path, char *tmp, size_t cap)
{
    if (clk_output_writes_through(path)) {
        tmp[0] = 0;
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (fd >= 0 && !f)
            close(fd);
        return f;
    }
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    snprintf(tmp, cap, "%.*s/.%s.XXXXXX", dirlen, slash ? path : ".", slash ? slash + 1 : path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return NULL;
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
    }
    return f;
}

static int render_one(const struct clk_report *r, const struct output *out, const struct clk_render_opts *ro)
{
    char tmp[PATH_MAX + 32];
    FILE *f;
    if (out->path) {
        f = open_output(out->path, tmp, sizeof tmp);
    } else {
        /* stderr is unbuffered: a large report would be a write per token */
        fflush(stderr);
        int fd = dup(2);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (f)
            setvbuf(f, NULL, _IOFBF, 1 << 16);
        else
            f = stderr;
    }
    if (!f) {
        clk_err("cannot write %s: %s", out->path, strerror(errno));
        return -1;
    }
    int rc = clk_renderer_for(out->format)(r, f, ro);
    if (!out->path && f != stderr && fclose(f) != 0)
        rc = -1;
    if (out->path) {
        if (fclose(f) != 0)
            rc = -1;
        /* ext4 writes a file's data out before a rename replaces an existing
         * file with it (auto_da_alloc): seconds for a report of 100k leaks.
         * Unlinked first, a reader sees the old report, none, or the new one. */
        struct stat old;
        if (!rc && tmp[0] && lstat(out->path, &old) == 0 && S_ISREG(old.st_mode))
            unlink(out->path);
        if (!rc && tmp[0] && rename(tmp, out->path) != 0)
            rc = -1;
        if (rc) {
            clk_err("cannot write %s: %s", out->path, strerror(errno));
            if (tmp[0])
                unlink(tmp);
        }
    }
    return rc;
}

/* The suppressions file: --suppressions, else CONNLEAK_OPTIONS' suppressions=. */
static const char *suppressions_path(const struct opts *o)
{
    static char from_env[PATH_MAX];
    if (o->suppressions)
        return o->suppressions;
    const char *env = getenv("CONNLEAK_OPTIONS");
    for (const char *p = env; p && *p;) {
        size_t len = strcspn(p, ":");
        if (len > 13 && !strncmp(p, "suppressions=", 13) && len - 13 < sizeof from_env) {
            memcpy(from_env, p + 13, len - 13);
            from_env[len - 13] = 0;
            return from_env;
        }
        p += len + (p[len] == ':');
    }
    return NULL;
}

/* CONNLEAK_OPTIONS' fail_on=unseen,finalizer, ORed into o->fail_on; -1 with a message when it names
 * something else. With strip, the key leaves the environment the command gets: it is the CLI's, and
 * the preloaded library would refuse it as unknown in every process. */
static int fail_on_from_env(struct opts *o, const char *verb, int strip)
{
    const char *env = getenv("CONNLEAK_OPTIONS");
    if (!env || !strstr(env, "fail_on="))
        return 0;
    struct clk_buf rest = {0};
    int rc = 0;
    for (const char *p = env; *p;) {
        size_t len = strcspn(p, ":");
        if (len >= 8 && !strncmp(p, "fail_on=", 8)) {
            if (clk_fail_on_parse(p + 8, len - 8, &o->fail_on) != 0) {
                clk_err("%s: CONNLEAK_OPTIONS: fail_on wants unseen or finalizer (several: a comma list), not "
                        "'%.*s'", verb, (int)(len - 8), p + 8);
                rc = -1;
            }
        } else if (len) {
            if (rest.n)
                clk_buf_putc(&rest, ':');
            clk_buf_add(&rest, p, len);
        }
        p += len + (p[len] == ':');
    }
    if (strip && !rc) {
        if (rest.n)
            setenv("CONNLEAK_OPTIONS", rest.p, 1);
        else
            unsetenv("CONNLEAK_OPTIONS");
    }
    free(rest.p);
    return rc;
}

/* CONNLEAK_OPTIONS under `run`, checked once here with the library's own parser, so that every
 * key works or is refused before the command starts (not once per process): exitcode= is the
 * --exitcode, held_longer_than= the --held-longer-than and output= (log_path=) an --output for the
 * text report, unless the command line says otherwise; output= and help= (which prints the keys
 * here) leave the command's environment. -1 with one line for a bad key or value. */
static int options_from_env(struct opts *o)
{
    const char *env = getenv("CONNLEAK_OPTIONS");
    if (!env || !*env)
        return 0;
    char err[1024] = "";
    int rc = clk_options_parse(env, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s (connleak run did not start the command)\n", err);
        return -1;
    }
    if (rc > 0) /* help=1: asked for, so also under --quiet */
        fprintf(stderr, "%s\n", err);
    static char output[PATH_MAX];
    int held_given = o->held_ms != 0;
    struct clk_buf rest = {0};
    for (const char *p = env; *p;) {
        size_t len = strcspn(p, ":");
        /* the parser took the pairs in order: the last one of a key counts */
        int out = len >= 7 && !strncmp(p, "output=", 7), log = len >= 9 && !strncmp(p, "log_path=", 9);
        if (out || log)
            snprintf(output, sizeof output, "%.*s", (int)(len - (out ? 7 : 9)), p + (out ? 7 : 9));
        char num[16];
        if (len >= 9 && !strncmp(p, "exitcode=", 9) && !o->exitcode_given && len - 9 < sizeof num) {
            snprintf(num, sizeof num, "%.*s", (int)(len - 9), p + 9);
            parse_int(num, 0, 255, &o->exitcode);
        }
        /* held_longer_than= is --held-longer-than (the command line's wins): the report lists them */
        if (len >= 17 && !strncmp(p, "held_longer_than=", 17) && !held_given)
            clk_parse_duration_ms(p + 17, len - 17, &o->held_ms);
        if (len && !out && !log && strncmp(p, "help=", 5) != 0) {
            if (rest.n)
                clk_buf_putc(&rest, ':');
            clk_buf_add(&rest, p, len);
        }
        p += len + (p[len] == ':');
    }
    int text_given = 0;
    for (int i = 0; i < o->nouts; i++)
        text_given |= !strcmp(o->outs[i].format, "text");
    if (output[0] && !text_given && o->nouts < MAX_OUTPUTS)
        o->outs[o->nouts++] = (struct output){"text", output};
    if (rest.n)
        setenv("CONNLEAK_OPTIONS", rest.p, 1);
    else
        unsetenv("CONNLEAK_OPTIONS");
    free(rest.p);
    return 0;
}

/* What --fail-on asks the report to fail on besides leaks and double closes. */
static void apply_fail_on(struct clk_report *r, const struct opts *o)
{
    r->fail_on = o->fail_on;
}

/* Loads the suppressions and baseline once to tell bad ones early; -1 when one cannot be read. */
static int check_inputs(const struct opts *o)
{
    const char *sp = suppressions_path(o);
    if (sp) {
        struct clk_suppressions *s = clk_suppressions_load(sp);
        if (!s)
            return -1;
        clk_suppressions_free(s);
    }
    if (o->baseline) {
        struct clk_report empty;
        clk_report_init(&empty);
        int rc = clk_baseline_apply(&empty, o->baseline);
        /* a trial run on an empty report: all it gathers is notes */
        for (size_t i = 0; i < empty.nnotes; i++)
            free(empty.notes[i]); /* (a note's kind lives in its one allocation) */
        free(empty.notes);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* A file the report will be written to, checked before the command runs (a run of minutes must
 * not end in "cannot write"): its directory must exist and be writable, and it must not be a
 * directory. -1 with one line when it cannot be written. */
static int check_writable(const char *verb, const char *what, const char *path)
{
    struct stat st;
    if (clk_output_writes_through(path)) {
        if (access(path, W_OK) != 0) {
            clk_err("%s: cannot write %s %s: %s", verb, what, path, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        clk_err("%s: cannot write %s %s: it is a directory", verb, what, path);
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1, slash ? path : ".");
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        clk_err("%s: cannot write %s %s: no directory %s", verb, what, path, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        clk_err("%s: cannot write %s %s: %s: %s", verb, what, path, dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int check_outputs(const char *verb, const struct opts *o)
{
    for (int i = 0; i < o->nouts; i++)
        if (o->outs[i].path && check_writable(verb, "report", o->outs[i].path) != 0)
            return -1;
    if (o->write_baseline && check_writable(verb, "baseline", o->write_baseline) != 0)
        return -1;
    if (o->gen_suppressions && o->gen_suppressions[0] &&
        check_writable(verb, "suppressions", o->gen_suppressions) != 0)
        return -1;
    return 0;
}

/* Suppressions and the baseline decide what fails; -1 when one cannot be read. */
static int filter(struct clk_report *r, const struct opts *o)
{
    const char *sp = suppressions_path(o);
    if (sp) {
        struct clk_suppressions *s = clk_suppressions_load(sp);
        if (!s)
            return -1;
        clk_suppressions_apply(r, s);
        clk_suppressions_free(s);
    }
    if (o->baseline && clk_baseline_apply(r, o->baseline) != 0)
        return -1;
    if (o->write_baseline) {
        if (clk_baseline_write(r, o->write_baseline) != 0)
            return -1;
        r->recorded = 1;
        clk_report_note(r, CLK_NOTE_INFO, "baseline %s written: this run's unsuppressed leaks and double closes are "
                        "recorded in it and do not fail the run", o->write_baseline);
    }
    return 0;
}

/* Files first, then stderr: text there unless a --format without --output took it, or --quiet. */
static int render(struct clk_report *r, const struct opts *o)
{
    clk_report_finish(r);
    /* --source-root, else GitHub's checkout, else where connleak runs */
    char cwd[PATH_MAX], abs[2 * PATH_MAX];
    const char *root = o->source_root ? o->source_root : getenv("GITHUB_WORKSPACE");
    if (root && root[0] != '/' && o->source_root && getcwd(cwd, sizeof cwd)) {
        /* relative: to where connleak runs, as the compiler's paths are not resolved either */
        snprintf(abs, sizeof abs, "%s/%s", cwd, strcmp(root, ".") ? root : "");
        root = abs;
    }
    if (!root || root[0] != '/')
        root = getcwd(cwd, sizeof cwd);
    struct clk_render_opts ro = {o->verbose, root};
    int rc = 0, stderr_taken = 0;
    for (int i = 0; i < o->nouts; i++)
        if (o->outs[i].path)
            rc |= render_one(r, &o->outs[i], &ro);
    for (int i = 0; i < o->nouts; i++)
        if (!o->outs[i].path) {
            stderr_taken = 1;
            if (!o->quiet)
                rc |= render_one(r, &o->outs[i], &ro);
        }
    if (!stderr_taken && !o->quiet) {
        struct output text = {"text", NULL};
        rc |= render_one(r, &text, &ro);
    }
    return rc ? -1 : 0;
}

/* The command as reports show it: each argument without its passwords
 * (psql postgresql://app:secret@db ..., "host=db password=secret",
 * --url=postgres://u:secret@h, --password secret). */
static char **redacted_command(char **cmd, int n)
{
    char **out = calloc((size_t)n + 1, sizeof *out);
    if (!out)
        return cmd;
    for (int i = 0; i < n; i++) {
        size_t cap = strlen(cmd[i]) + 4; /* "***" for the value of a bare --password */
        out[i] = malloc(cap);
        if (!out[i])
            return cmd;
        clk_redact_arg(cmd[i], i ? cmd[i - 1] : NULL, out[i], cap);
    }
    return out;
}

/* The file execvp would run for name, or NULL. */
static const char *command_path(const char *name, char *buf, size_t cap)
{
    if (strchr(name, '/'))
        return name;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, cap, "%.*s/%s", (int)n, n ? p : ".", name);
        if (access(buf, X_OK) == 0)
            return buf;
        p += n;
        if (*p)
            p++;
    }
    return NULL;
}

/* Says so when the detector could not reach the command: a statically linked
 * program has no dynamic loader to preload into, and then nothing it opens is
 * seen (a report of no connections would read as a clean run). */
static void note_unreached(struct clk_report *r, const char *name)
{
    char buf[PATH_MAX];
    const char *path = command_path(name, buf, sizeof buf);
    path = path ? clk_intern(path) : NULL; /* clk_is_go_object caches by the interned pointer */
    if (path && clk_is_static_exe(path) && clk_is_go_object(path))
        clk_report_note(r, CLK_NOTE_UNSEEN, "%s is a statically linked Go program: the detector cannot be preloaded "
                        "into it, so connections it opens are not seen (and a Go program's network connections, "
                        "pure-Go PostgreSQL drivers such as pgx and lib/pq, bypass libc even where it can be)",
                        path);
    else if (path && clk_is_static_exe(path))
        clk_report_note(r, CLK_NOTE_UNSEEN, "%s is statically linked: the detector cannot be preloaded into it, so "
                        "connections it opens are not seen", path);
    else if (!r->summary.processes)
        clk_report_note(r, CLK_NOTE_UNSEEN, "no process ran under the detector (a statically linked or set-uid "
                        "program, one that clears LD_PRELOAD, or an AddressSanitizer program run with "
                        "ASAN_OPTIONS=verify_asan_link_order=1, is not seen)");
}

/* A dynamically linked command whose loader gave up before any of its code ran (a library not
 * found: the loader says so and exits 127): no journal, and nothing to report. */
static int loader_failed(const struct clk_report *r, const char *name, int status)
{
    char buf[PATH_MAX];
    const char *path = command_path(name, buf, sizeof buf);
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127 && !r->summary.processes && path &&
           !clk_is_static_exe(path);
}

/* ---- signals: forwarded to the command, which decides ---- */

static volatile sig_atomic_t got_signal;
static volatile pid_t child_pid;

static void forward(int sig)
{
    got_signal = sig;
    if (child_pid > 0)
        kill(child_pid, sig);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int make_run_dir(const struct opts *o, char *dir, size_t cap)
{
    if (o->keep_raw) {
        if (mkdir(o->keep_raw, 0700) != 0 && errno != EEXIST) {
            clk_err("run: cannot create %s: %s", o->keep_raw, strerror(errno));
            return -1;
        }
        struct stat st;
        /* a symlink planted in a shared place must not redirect our files
         * (lstat of "link/" follows it: the trailing slashes go first) */
        char bare[PATH_MAX];
        snprintf(bare, sizeof bare, "%s", o->keep_raw);
        for (size_t n = strlen(bare); n > 1 && bare[n - 1] == '/'; n--)
            bare[n - 1] = 0;
        if (lstat(bare, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
            clk_err("run: %s is not a directory of ours", o->keep_raw);
            return -1;
        }
        if (st.st_mode & S_IWOTH) { /* anyone could replace the journals in it */
            clk_err("run: %s is writable by others: keep journals in a directory only you can write to",
                    o->keep_raw);
            return -1;
        }
        if (access(o->keep_raw, W_OK | X_OK) != 0) {
            clk_err("run: cannot write to %s: %s", o->keep_raw, strerror(errno));
            return -1;
        }
        if (!realpath(o->keep_raw, dir)) {
            clk_err("run: %s: %s", o->keep_raw, strerror(errno));
            return -1;
        }
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0] || access(tmp, W_OK) != 0)
        tmp = "/tmp";
    snprintf(dir, cap, "%s/connleak-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        clk_err("run: cannot create a run directory in %s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Runs argv with extra environment set; returns the wait status, or -1. When the command
 * could not be started at all (not found, not executable), *exec_errno says why (else 0): a
 * close-on-exec pipe carries the child's errno, and a successful exec closes it unwritten. */
static int spawn_and_wait(char **cmd, int *exec_errno)
{
    *exec_errno = 0;
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
        errpipe[0] = errpipe[1] = -1;
    struct sigaction sa = {0}, old_int, old_term, old_hup;
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        clk_err("run: cannot fork: %s", strerror(errno));
        if (errpipe[0] >= 0) {
            close(errpipe[0]);
            close(errpipe[1]);
        }
        return -1;
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        execvp(cmd[0], cmd);
        int e = errno;
        if (e == ENOENT && strchr(cmd[0], '/') && access(cmd[0], F_OK) == 0) /* as bash says it */
            clk_err("%s: cannot execute: required file not found (its #! interpreter or dynamic loader)", cmd[0]);
        else
            clk_err("%s: %s", cmd[0], e == ENOENT ? "command not found" : strerror(e));
        if (errpipe[1] >= 0 && write(errpipe[1], &e, sizeof e) < 0) {
            /* the parent then reads no errno: the exit status below still says it */
        }
        _exit(e == ENOENT ? 127 : 126);
    }
    child_pid = pid;
    if (errpipe[0] >= 0) {
        close(errpipe[1]);
        int e = 0;
        ssize_t n;
        while ((n = read(errpipe[0], &e, sizeof e)) < 0 && errno == EINTR)
            ;
        if (n == (ssize_t)sizeof e)
            *exec_errno = e ? e : ENOEXEC;
        close(errpipe[0]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            clk_err("run: waiting for the command: %s", strerror(errno));
            status = -1;
            break;
        }
    }
    child_pid = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    return status;
}

static int command_status(int status)
{
    if (status < 0)
        return 125;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 125;
}

/* gcc's AddressSanitizer runtime (libasan.so) refuses to start unless it is the first library
 * loaded, and LD_PRELOAD puts the detector first ("ASan runtime does not come first in initial
 * library list"); that check is all that stops it, and ASan's own documentation turns it off for
 * preloads. The user's ASAN_OPTIONS are kept, a verify_asan_link_order of theirs too. TSan, UBSan
 * and MSan, and clang's ASan (its runtime is linked in), need nothing. */
static void let_sanitizers_start(void)
{
    const char *old = getenv("ASAN_OPTIONS");
    if (old && strstr(old, "verify_asan_link_order"))
        return;
    if (!old || !old[0]) {
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
        return;
    }
    size_t n = strlen(old) + sizeof ":verify_asan_link_order=0";
    char *both = clk_xmalloc(n);
    snprintf(both, n, "%s:verify_asan_link_order=0", old);
    setenv("ASAN_OPTIONS", both, 1);
    free(both);
}

static void prepend_env(const char *name, const char *value, char sep)
{
    const char *old = getenv(name);
    if (!old || !old[0]) {
        setenv(name, value, 1);
        return;
    }
    size_t n = strlen(value) + strlen(old) + 2;
    char *both = clk_xmalloc(n);
    snprintf(both, n, "%s%c%s", value, sep, old);
    setenv(name, both, 1);
    free(both);
}

int clk_cmd_run(int argc, char **argv)
{
    struct opts o;
    if (parse("run", argc, argv, &o, 1) != 0 || fail_on_from_env(&o, "run", 1) != 0 || options_from_env(&o) != 0)
        return STATUS_USAGE;
    const char *preload = clk_preload_path();
    if (!preload) {
        clk_err("run: libconnleak-preload.so not found next to this connleak (set CONNLEAK_PRELOAD)");
        return STATUS_USAGE;
    }
    /* a bad suppressions file or baseline is refused before the command runs, as LSan does */
    if (check_inputs(&o) != 0 || check_outputs("run", &o) != 0)
        return STATUS_USAGE;
    char dir[PATH_MAX];
    if (make_run_dir(&o, dir, sizeof dir) != 0)
        return STATUS_USAGE;
    struct clk_pg pg;
    memset(&pg, 0, sizeof pg);
    if (o.postgres) {
        if (clk_pg_start(&pg, o.verbose) != 0) {
            if (!o.keep_raw)
                rmdir(dir);
            return STATUS_USAGE;
        }
        clk_pg_export(&pg);
    }
    prepend_env("LD_PRELOAD", preload, ':');
    setenv(CONNLEAK_RUN_DIR_ENV, dir, 1);
    /* journals carry this run's id: a --keep-raw directory other runs share
     * (meson's test setups run tests in parallel) holds theirs too */
    uint64_t run_id = 0;
    while (!run_id && getrandom(&run_id, sizeof run_id, 0) != (ssize_t)sizeof run_id)
        run_id = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
    char id[32];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)run_id);
    setenv(CONNLEAK_RUN_ID_ENV, id, 1);
    if (o.stack_depth) {
        char opt[64];
        snprintf(opt, sizeof opt, "stack_depth=%d", o.stack_depth);
        prepend_env("CONNLEAK_OPTIONS", opt, ':');
    }
    if (o.no_follow)
        prepend_env("CONNLEAK_OPTIONS", "follow_children=0", ':');
    if (o.held_ms) { /* the processes time their opens and closes */
        char opt[64];
        snprintf(opt, sizeof opt, "held_longer_than=%llums", (unsigned long long)o.held_ms);
        prepend_env("CONNLEAK_OPTIONS", opt, ':');
    }
    let_sanitizers_start();
    if (o.exitcode_given) {
        /* last, so it wins: a process that cannot journal reports itself and exits with it */
        const char *old = getenv("CONNLEAK_OPTIONS");
        char opt[PATH_MAX];
        snprintf(opt, sizeof opt, "%s%sexitcode=%d", old ? old : "", old && *old ? ":" : "", o.exitcode);
        setenv("CONNLEAK_OPTIONS", opt, 1);
    }
    int exec_errno;
    int status = spawn_and_wait(o.cmd, &exec_errno);
    unsetenv("LD_PRELOAD");
    if (o.postgres)
        clk_pg_stop(&pg);
    if (exec_errno) {
        /* nothing ran: the child said why in one line; a report of nothing would read as a clean run */
        if (!o.keep_raw)
            nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return exec_errno == ENOENT ? 127 : 126;
    }

    /* static: the report lives until exit and is never freed (the process ends
     * right after rendering); reachable, so LeakSanitizer does not count it */
    static struct clk_report r;
    clk_report_init(&r);
    r.command = redacted_command(o.cmd, o.ncmd);
    r.ncommand = o.ncmd;
    unsetenv(CONNLEAK_RUN_ID_ENV);
    r.live = 1;
    r.held_threshold_ms = o.held_ms;
    int load_rc = clk_load_run_dir(&r, dir, run_id);
    if (loader_failed(&r, o.cmd[0], status) && !load_rc) {
        clk_err("run: %s did not start (its dynamic loader gave up, exit status 127: see its message above); "
                "nothing ran under the detector", o.cmd[0]);
        if (!o.keep_raw)
            nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 127;
    }
    note_unreached(&r, o.cmd[0]);
    apply_fail_on(&r, &o);
    if (!o.keep_raw)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    int filter_rc = filter(&r, &o);
    int render_rc = render(&r, &o);
    if (o.gen_suppressions && clk_gen_suppressions(&r, o.gen_suppressions) != 0)
        render_rc = -1;
    clk_symbolize_end();
    int own = command_status(status);
    if (own)
        return own;
    if (got_signal)
        return 128 + got_signal;
    if (filter_rc)
        return STATUS_USAGE;
    /* --write-baseline records the findings as known: they do not fail the run that recorded them */
    if ((clk_report_failing(&r) && !o.write_baseline) || clk_report_failing_notes(&r) ||
        clk_report_failing_finalized(&r))
        return o.exitcode;
    if (render_rc || load_rc)
        return STATUS_USAGE;
    return 0;
}

int clk_cmd_report(int argc, char **argv)
{
    static struct opts o; /* static as the report below: o.files lives until exit */
    if (parse("report", argc, argv, &o, 0) != 0 || fail_on_from_env(&o, "report", 0) != 0)
        return STATUS_USAGE;
    if (!o.nfiles) {
        clk_err("report: no input (usage: connleak report [OPTIONS] FILE...)");
        return STATUS_USAGE;
    }
    static struct clk_report r; /* lives until exit, never freed: see clk_cmd_run */
    clk_report_init(&r);
    r.held_threshold_ms = o.held_ms;
    /* an input that cannot be read is said, and the others are still reported
     * (as `run` does with a damaged journal); only when none can be read is
     * there no report */
    int bad = 0;
    for (int i = 0; i < o.nfiles; i++) {
        const char *f = o.files[i];
        struct stat st;
        if (stat(f, &st) != 0) {
            clk_err("report: cannot read %s: %s", f, strerror(errno));
            clk_report_note(&r, CLK_NOTE_INCOMPLETE, "cannot read %s: %s (not read; the other inputs are)", f,
                            strerror(errno));
            bad++;
            continue;
        }
        int rc;
        uint64_t before = r.summary.processes;
        if (S_ISDIR(st.st_mode)) {
            rc = clk_load_run_dir(&r, f, 0);
            if (!rc && r.summary.processes == before) /* a shard that never ran must not pass as clean */
                clk_report_note(&r, CLK_NOTE_UNSEEN, "%s holds no journals: nothing ran under the detector there", f);
        } else if (clk_is_raw_file(f)) {
            rc = clk_load_raw(&r, f);
        } else {
            rc = clk_load_json(&r, f);
        }
        if (rc) {
            if (!S_ISDIR(st.st_mode))
                clk_report_note(&r, CLK_NOTE_INCOMPLETE, "%s could not be read (not read; the other inputs are)", f);
            bad++;
        }
    }
    if (bad == o.nfiles && !r.summary.processes)
        return STATUS_USAGE;
    apply_fail_on(&r, &o);
    if (filter(&r, &o) != 0)
        return STATUS_USAGE;
    int render_rc = render(&r, &o);
    if (o.gen_suppressions && clk_gen_suppressions(&r, o.gen_suppressions) != 0)
        render_rc = -1;
    clk_symbolize_end();
    /* --write-baseline records the findings as known: they do not fail the run that recorded them */
    if ((clk_report_failing(&r) && !o.write_baseline) || clk_report_failing_notes(&r) ||
        clk_report_failing_finalized(&r))
        return o.exitcode;
    return render_rc || bad ? STATUS_USAGE : 0;
}

int clk_cmd_postgres(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "--") != 0) {
        clk_err("postgres: usage: connleak postgres -- COMMAND [ARG...]");
        return STATUS_USAGE;
    }
    struct clk_pg pg;
    memset(&pg, 0, sizeof pg);
    if (clk_pg_start(&pg, 0) != 0)
        return STATUS_USAGE;
    clk_pg_export(&pg);
    int exec_errno;
    int status = spawn_and_wait(argv + 1, &exec_errno);
    clk_pg_stop(&pg);
    if (got_signal && status >= 0 && !WIFEXITED(status))
        return 128 + got_signal;
    return command_status(status);
}
