/* printer.c — the report at exit when the library is preloaded without the CLI: the CLI's own, else a raw one.
 *
 * Direct mode journals as `connleak run` does, into an unnamed file of the
 * process's own (journal.c). At exit, when something is to be reported, that
 * journal is handed to the connleak CLI (`connleak report /dev/fd/3`), as
 * LeakSanitizer hands addresses to llvm-symbolizer: the report is then the one
 * `connleak run` prints, symbolized. The CLI is CONNLEAK_OPTIONS' symbolizer=,
 * else the connleak installed beside this library (or the build tree's), else
 * the first on PATH; it runs without LD_PRELOAD, so it is not tracked. When
 * none is found or it fails, the library prints its own report from what the
 * tracker holds in memory: raw addresses, dladdr's names. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "output_path.h"
#include "host.h"

/* Away from the hot path and at exit only: stdio-free all the same, since the
 * host's stdio may be half torn down by now. */
static int out_fd = 2;

/* stderr as it was at start, kept (parked) for the report: a program that
 * closed its stderr and opened a file of its own on descriptor 2 must not find
 * our report in that file. Also its name, to open it again if the program
 * closed our copy too (closefrom). */
static int kept;
static struct clk_held start_err, report_out = {.fd = -1};
static char start_err_path[256];

void clk_report_keep_stderr(void)
{
    if (kept)
        return;
    kept = 1;
    clk_held_set(&start_err, 2);
    if (start_err.fd < 0)
        return; /* no stderr at start: a report has nowhere to go */
    int saved = errno;
    clk_held_set(&report_out, clk_fd_park(fcntl(2, F_DUPFD_CLOEXEC, 3)));
    ssize_t n = readlink("/proc/self/fd/2", start_err_path, sizeof start_err_path - 1);
    start_err_path[n > 0 && start_err_path[0] == '/' ? n : 0] = 0;
    errno = saved;
}

/* Where the report goes when no output= file takes it: -1 nowhere (stderr as
 * it was at start is gone); *opened when the caller must close it. */
static int report_fd(int *opened)
{
    *opened = 0;
    if (!kept)
        return 2;
    if (clk_held_ok(&report_out))
        return report_out.fd;
    struct clk_held now = start_err;
    now.fd = 2;
    if (start_err.fd >= 0 && clk_held_ok(&now))
        return 2;
    if (start_err_path[0] && start_err.fd >= 0) {
        int fd = open(start_err_path, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);
        struct clk_held again = start_err;
        again.fd = fd;
        if (fd >= 0 && clk_held_ok(&again)) {
            *opened = 1;
            return fd;
        }
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line about the report itself, where the report would have gone. */
static void warn_out(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || out_fd < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(out_fd, buf, (size_t)n);
    (void)w;
}

static void say(const char *fmt, ...)
{
    if (out_fd < 0)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) {
        ssize_t w = write(out_fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
}

#ifdef __GLIBC__
extern FILE *_IO_list_all; /* glibc's list of open streams, which exit() flushes after the destructors */
#endif

/* _exit skips the flush of the program's streams that exit() does after us:
 * done here as exit() does it, but a stream another thread holds (blocked in
 * fgets on stdin...) is skipped rather than waited for. */
static void flush_host_stdio(void)
{
#ifdef __GLIBC__
    int n = 0;
    for (FILE *f = _IO_list_all; f && n < 100000; f = f->_chain, n++)
        if (ftrylockfile(f) == 0) {
            fflush_unlocked(f);
            funlockfile(f);
        }
#else
    fflush(stdout);
#endif
}

struct collect {
    struct clk_leak_view *v;
    size_t n, cap;
};

static void collect_cb(const struct clk_leak_view *v, void *p)
{
    struct collect *c = p;
    if (c->n < c->cap)
        c->v[c->n] = *v;
    c->n++;
}

struct collect_left {
    struct clk_left_view *v;
    size_t n, cap;
};

static void collect_left_cb(const struct clk_left_view *v, void *p)
{
    struct collect_left *c = p;
    if (c->n < c->cap)
        c->v[c->n] = *v;
    c->n++;
}

static int by_group(const void *a, const void *b)
{
    const struct clk_leak_view *x = a, *y = b;
    if (x->backend != y->backend)
        return x->backend - y->backend;
    if (x->target != y->target)
        return x->target < y->target ? -1 : 1;
    if (x->stack != y->stack)
        return x->stack < y->stack ? -1 : 1;
    return x->checked_out - y->checked_out;
}

static void print_stack(uint32_t stack)
{
    int n = 0;
    const uint64_t *ips = stack ? clk_stack_frames(stack, &n) : NULL;
    for (int i = 0; i < n; i++) {
        Dl_info info;
        const char *fn = "??", *mod = "??";
        uint64_t off = ips[i];
        if (dladdr((void *)(uintptr_t)(ips[i] - 1), &info)) {
            if (info.dli_sname)
                fn = info.dli_sname;
            if (info.dli_fname)
                mod = info.dli_fname;
            off = ips[i] - (uint64_t)(uintptr_t)info.dli_fbase;
        }
        say("    #%d 0x%llx in %s (%s+0x%llx)\n", i, (unsigned long long)ips[i], fn, mod, (unsigned long long)off);
    }
    if (!n)
        say("    (no stack)\n");
}

static const char *backend_name(uint8_t b)
{
    return b == CONNLEAK_RAW_SQLITE ? "sqlite" : b == CONNLEAK_RAW_POSTGRES ? "postgres" : "pool";
}

static void *map_array(size_t n, size_t size)
{
    if (!n)
        return NULL;
    void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- the CLI ---- */

#ifndef CLK_PREFIX
#define CLK_PREFIX "/usr/local"
#endif
#ifndef CLK_BINDIR
#define CLK_BINDIR "bin"
#endif
#ifndef CLK_LIBDIR
#define CLK_LIBDIR "lib"
#endif

/* Why the report is not the CLI's (for its last line); "" when it is, or symbolize=0. */
static char why_raw[PATH_MAX + 160];

static int executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The connleak CLI, in buf: symbolizer=, else beside this library (an install's
 * PREFIX/BINDIR, the build tree's harness/), else PATH's. NULL when none. */
static const char *find_cli(char *buf, size_t cap)
{
    if (clk_opts_symbolizer[0]) {
        if (executable_file(clk_opts_symbolizer) && strlen(clk_opts_symbolizer) < cap)
            return strcpy(buf, clk_opts_symbolizer);
        snprintf(why_raw, sizeof why_raw, "symbolizer=%s is not an executable file", clk_opts_symbolizer);
        return NULL;
    }
    Dl_info self;
    char lib[PATH_MAX];
    if (dladdr((void *)find_cli, &self) && self.dli_fname && realpath(self.dli_fname, lib)) {
        char *slash = strrchr(lib, '/');
        if (slash) {
            *slash = 0; /* lib is now the library's directory */
            /* the build tree: BUILD/lib/recorder/libconnleak-preload.so, BUILD/harness/connleak */
            if (snprintf(buf, cap, "%s/../../harness/connleak", lib) < (int)cap && executable_file(buf))
                return buf;
            /* an install: PREFIX/LIBDIR/libconnleak-preload.so, PREFIX/BINDIR/connleak (also staged, moved) */
            if (CLK_LIBDIR[0] != '/' && CLK_BINDIR[0] != '/') {
                char up[PATH_MAX] = "";
                size_t n = 0;
                const char *libdir = CLK_LIBDIR;
                for (const char *p = libdir; *p && n + 4 < sizeof up; p++)
                    if (p == libdir ? *p != '/' : p[-1] == '/' && *p != '/') {
                        memcpy(up + n, "../", 4);
                        n += 3;
                    }
                if (snprintf(buf, cap, "%s/%s%s/connleak", lib, up, CLK_BINDIR) < (int)cap && executable_file(buf))
                    return buf;
            }
        }
    }
    if (snprintf(buf, cap, "%s/%s/connleak", CLK_PREFIX, CLK_BINDIR) < (int)cap && CLK_BINDIR[0] != '/' &&
        executable_file(buf))
        return buf;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        if (n && p[0] == '/' && snprintf(buf, cap, "%.*s/connleak", (int)n, p) < (int)cap && executable_file(buf))
            return buf;
        p += n;
        while (*p == ':')
            p++;
    }
    snprintf(why_raw, sizeof why_raw,
             "no connleak CLI beside this library or on PATH (CONNLEAK_OPTIONS=symbolizer=PATH names one)");
    return NULL;
}

extern char **environ;

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);

/* Runs `CLI report --exitcode 23 /dev/fd/3` with the journal on descriptor 3 and
 * its stdout and stderr on `out`, without LD_PRELOAD, and waits for it. 0 when it
 * printed the report (*failing: findings neither suppressed nor baselined remain). */
static int run_cli(const char *cli, int out, int jfd, int *failing)
{
    /* posix_spawn runs no atfork handler (the program's may take locks at exit); ours is the wrapper */
    spawn_fn spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
    if (!spawn || (out == 3 && jfd == 2)) {
        snprintf(why_raw, sizeof why_raw, "the connleak CLI (%s) could not be started", cli);
        return -1;
    }
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **envp = map_array(n + 1, sizeof *envp);
    if (!envp) {
        snprintf(why_raw, sizeof why_raw, "the connleak CLI (%s) could not be started: no memory", cli);
        return -1;
    }
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) /* the CLI is not to be tracked (nor anything else preloaded) */
            envp[k++] = *e;
    envp[k] = NULL;
    /* held_longer_than=: the journal has the times, the CLI lists what was held longer */
    char held[32];
    snprintf(held, sizeof held, "%llums", (unsigned long long)clk_opts.held_longer_than_ms);
    char *argv[8] = {(char *)cli, "report", "--exitcode", "23"};
    int argc = 4;
    if (clk_opts.held_longer_than_ms) {
        argv[argc++] = "--held-longer-than";
        argv[argc++] = held;
    }
    argv[argc++] = "/dev/fd/3";
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (out == 3) {
        posix_spawn_file_actions_adddup2(&fa, out, 2);
        posix_spawn_file_actions_adddup2(&fa, jfd, 3);
    } else {
        posix_spawn_file_actions_adddup2(&fa, jfd, 3);
        posix_spawn_file_actions_adddup2(&fa, out, 2);
    }
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* never a word on the program's stdout */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    posix_spawn_file_actions_addclosefrom_np(&fa, 4); /* the program's descriptors are not the CLI's */
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    /* SIGCHLD ignored: the child would be reaped unseen, its status lost */
    struct sigaction old_chld, dfl = {.sa_handler = SIG_DFL};
    int restore = sigaction(SIGCHLD, NULL, &old_chld) == 0 && old_chld.sa_handler == SIG_IGN &&
                  sigaction(SIGCHLD, &dfl, NULL) == 0;
    pid_t pid;
    int rc = spawn(&pid, cli, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    munmap(envp, (n + 1) * sizeof *envp);
    int status = -1, ok = -1;
    if (rc != 0) {
        snprintf(why_raw, sizeof why_raw, "the connleak CLI (%s) could not be started: %s", cli, strerror(rc));
    } else {
        pid_t w;
        while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0) /* another thread of the program reaped it: it ran, its verdict is unknown */
            ok = 0;
        else if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 23)) {
            ok = 0;
            *failing = WEXITSTATUS(status) == 23;
        } else if (WIFEXITED(status)) {
            snprintf(why_raw, sizeof why_raw, "the connleak CLI (%s) failed with exit status %d", cli,
                     WEXITSTATUS(status));
        } else {
            snprintf(why_raw, sizeof why_raw, "the connleak CLI (%s) was killed by signal %d", cli,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
    }
    if (restore)
        sigaction(SIGCHLD, &old_chld, NULL);
    return ok;
}

/* ---- the library's own report ---- */

static void print_raw(const connleak_counts *c)
{
    struct collect col = {0};
    clk_track_each_open(collect_cb, &col);
    size_t total = col.n;
    if (total) {
        col.cap = total;
        col.v = map_array(total, sizeof *col.v);
        if (!col.v)
            col.cap = 0;
        col.n = 0;
        clk_track_each_open(collect_cb, &col);
        if (col.n > col.cap)
            col.n = col.cap;
        qsort(col.v, col.n, sizeof *col.v, by_group);
    }
    struct collect_left lf = {0};
    clk_track_each_left_field(collect_left_cb, &lf);
    if (lf.n) {
        lf.cap = lf.n;
        lf.v = map_array(lf.cap, sizeof *lf.v);
        if (!lf.v)
            lf.cap = 0;
        lf.n = 0;
        clk_track_each_left_field(collect_left_cb, &lf);
        if (lf.n > lf.cap)
            lf.n = lf.cap;
    }
    int pid = (int)getpid();
    unsigned long long doubles = c->double_closes, unknowns = c->unknown_closes;
    say("=================================================================\n");
    say("==%d==ERROR: connleak: detected", pid);
    const char *sep = " ";
    if (total || (!doubles && !unknowns)) {
        say("%s%llu leaked database connection%s", sep, (unsigned long long)total, total == 1 ? "" : "s");
        sep = ", ";
    }
    if (doubles) {
        say("%s%llu double close%s", sep, doubles, doubles == 1 ? "" : "s");
        sep = ", ";
    }
    if (unknowns)
        say("%s%llu close%s of connections never seen open", sep, unknowns, unknowns == 1 ? "" : "s");
    say("\n");
    for (size_t i = 0; i < col.n;) {
        size_t j = i + 1;
        while (j < col.n && by_group(&col.v[i], &col.v[j]) == 0)
            j++;
        const char *target = clk_string(col.v[i].target);
        say("\n%s of %zu %s connection%s to %s (pid %d), %s at:\n",
            col.v[i].checked_out ? "Checkout never returned" : "Leak", j - i, backend_name(col.v[i].backend),
            j - i == 1 ? "" : "s", target ? target : "(unknown)", pid, col.v[i].checked_out ? "checked out" : "opened");
        print_stack(col.v[i].stack);
        i = j;
    }
    /* as the CLI's text report words them */
    for (int pass = 1; pass >= 0; pass--)
        for (size_t i = 0; i < lf.n; i++) {
            const struct clk_left_view *v = &lf.v[i];
            if (v->is_double != pass)
                continue;
            if (v->is_double) {
                const char *target = clk_string(v->target);
                say("\nDouble close of a %s connection to %s (pid %d), closed again at:\n", backend_name(v->backend),
                    target ? target : "(unknown)", pid);
                print_stack(v->stack);
                say("  first closed at:\n");
                print_stack(v->first_close_stack);
                say("  opened at:\n");
                print_stack(v->open_stack);
            } else {
                say("\nClose of a %s connection never seen open (pid %d, handle 0x%llx), closed at:\n",
                    backend_name(v->backend), pid, (unsigned long long)v->handle);
                print_stack(v->stack);
            }
        }
    say("\nSUMMARY: connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s "
        "(%llu opened, %llu closed). ",
        (unsigned long long)total, total == 1 ? "" : "s", doubles, doubles == 1 ? "" : "s", unknowns,
        unknowns == 1 ? "" : "s", (unsigned long long)c->connects, (unsigned long long)c->closes);
    if (why_raw[0])
        say("Not symbolized: %s.\n", why_raw);
    else
        say("Run under `connleak run` for source lines.\n");
    if (col.v)
        munmap(col.v, col.cap * sizeof *col.v);
    if (lf.v)
        munmap(lf.v, lf.cap * sizeof *lf.v);
}

/* Direct mode's journal, finished as a journal is at exit: the objects loaded, the exit record. */
static void finish_journal(void)
{
    /* a fork child has its parent's objects, and the loader's lock may have
     * been held by a parent thread at fork time: no rescan there */
    if (!clk_journal_forked) {
        clk_intern_all_modules();
        clk_intern_note_namespaces();
    }
    clk_journal_exit();
}

void clk_print_report(void)
{
    connleak_counts c;
    connleak_get_counts(&c);
    struct collect col = {0};
    clk_track_each_open(collect_cb, &col);
    size_t total = col.n;
    if (!total && !c.left_field_closes)
        return;
    int jfd = clk_journal_private ? clk_journal_fd() : -1;
    if (jfd >= 0)
        finish_journal();
    /* output=FILE: written to a new file of ours (O_EXCL, 0600) that then takes
     * FILE's name, so a file or link someone planted there is replaced, never
     * written through; a device or pipe, or a name under /dev or /proc
     * (/dev/stderr), is appended to as it is (output_path.h). log_path=P: the
     * same with P.PID, one file per process, as the sanitizers' log_path. */
    char path[sizeof clk_opts.output + 16];
    snprintf(path, sizeof path, "%s", clk_opts.output);
    if (path[0] && clk_opts_log_path && !clk_output_writes_through(path))
        snprintf(path, sizeof path, "%s.%d", clk_opts.output, (int)getpid());
    char tmp[sizeof path + 8] = "";
    int opened = 0;
    out_fd = report_fd(&opened);
    if (path[0]) {
        int fd;
        if (clk_output_writes_through(path)) {
            fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        } else {
            snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
            fd = mkostemp(tmp, O_CLOEXEC);
            if (fd < 0)
                tmp[0] = 0;
        }
        if (fd >= 0) {
            if (opened)
                close(out_fd);
            out_fd = fd;
            opened = 1;
        } else {
            warn_out("connleak: cannot write the report to %s: %s (written here instead)", path, strerror(errno));
        }
    }
    int failing = total || c.double_closes;
    why_raw[0] = 0;
    int printed = 0;
    if (jfd >= 0 && out_fd >= 0) {
        char cli[PATH_MAX];
        const char *found = find_cli(cli, sizeof cli);
        printed = found && run_cli(found, out_fd, jfd, &failing) == 0;
    }
    if (!printed)
        print_raw(&c);
    if (opened)
        close(out_fd);
    if (tmp[0] && rename(tmp, path) != 0) {
        out_fd = report_fd(&opened);
        warn_out("connleak: cannot write the report to %s: %s", path, strerror(errno));
        if (opened)
            close(out_fd);
        unlink(tmp);
    }
    out_fd = 2;
    if (clk_opts.exitcode && failing) {
        flush_host_stdio();
        _exit(clk_opts.exitcode);
    }
}
