/* printer.c — the text report printed at exit when the library is preloaded without the CLI. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
    const uint64_t *ips = clk_stack_frames(stack, &n);
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

void clk_print_report(void)
{
    connleak_counts c;
    connleak_get_counts(&c);
    struct collect col = {0};
    clk_track_each_open(collect_cb, &col);
    size_t total = col.n;
    if (!total && !c.left_field_closes)
        return;
    /* output=FILE: written to a new file of ours (O_EXCL, 0600) that then takes
     * FILE's name, so a file or link someone planted there is replaced, never
     * written through; a device or pipe, or a name under /dev or /proc
     * (/dev/stderr), is appended to as it is (output_path.h) */
    char tmp[sizeof clk_opts.output + 8] = "";
    int opened = 0;
    out_fd = report_fd(&opened);
    if (clk_opts.output[0]) {
        int fd;
        if (clk_output_writes_through(clk_opts.output)) {
            fd = open(clk_opts.output, O_WRONLY | O_APPEND | O_CLOEXEC);
        } else {
            snprintf(tmp, sizeof tmp, "%s.XXXXXX", clk_opts.output);
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
            warn_out("connleak: cannot write the report to %s: %s (written here instead)", clk_opts.output,
                     strerror(errno));
        }
    }
    if (total) {
        col.cap = total;
        col.v = mmap(NULL, total * sizeof *col.v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (col.v == MAP_FAILED) {
            col.v = NULL;
            col.cap = 0;
        }
        col.n = 0;
        clk_track_each_open(collect_cb, &col);
        if (col.n > col.cap)
            col.n = col.cap;
        qsort(col.v, col.n, sizeof *col.v, by_group);
    }
    say("=================================================================\n");
    say("==%d==ERROR: connleak: detected %llu leaked database connection%s\n", (int)getpid(),
        (unsigned long long)total, total == 1 ? "" : "s");
    for (size_t i = 0; i < col.n;) {
        size_t j = i + 1;
        while (j < col.n && by_group(&col.v[i], &col.v[j]) == 0)
            j++;
        const char *target = clk_string(col.v[i].target);
        say("\n%s of %zu %s connection%s to %s, %s at:\n", col.v[i].checked_out ? "Checkout never returned" : "Leak",
            j - i, backend_name(col.v[i].backend), j - i == 1 ? "" : "s", target ? target : "(unknown)",
            col.v[i].checked_out ? "checked out" : "opened");
        print_stack(col.v[i].stack);
        i = j;
    }
    if (c.left_field_closes) {
        connleak_conn lf[64];
        size_t n = connleak_left_field_closes(lf, 64);
        for (size_t i = 0; i < n && i < 64; i++) {
            say("\nClose of a %s connection that was not open (%p), closed at:\n",
                lf[i].backend == CONNLEAK_BACKEND_SQLITE ? "sqlite" : "postgres", lf[i].conn);
            for (int k = 0; k < lf[i].nframes; k++)
                say("    #%d %s\n", k, connleak_frame_function(lf[i].frames[k]));
        }
    }
    say("\nSUMMARY: connleak: %llu leaked connection%s, %llu double close%s, %llu unknown close%s "
        "(%llu opened, %llu closed). Run under `connleak run` for source lines.\n",
        (unsigned long long)total, total == 1 ? "" : "s", (unsigned long long)c.double_closes,
        c.double_closes == 1 ? "" : "s", (unsigned long long)c.unknown_closes, c.unknown_closes == 1 ? "" : "s",
        (unsigned long long)c.connects, (unsigned long long)c.closes);
    if (col.v)
        munmap(col.v, col.cap * sizeof *col.v);
    if (opened)
        close(out_fd);
    if (tmp[0] && rename(tmp, clk_opts.output) != 0) {
        out_fd = report_fd(&opened);
        warn_out("connleak: cannot write the report to %s: %s", clk_opts.output, strerror(errno));
        if (opened)
            close(out_fd);
        unlink(tmp);
    }
    out_fd = 2;
    if (clk_opts.exitcode && (total || c.double_closes)) {
        flush_host_stdio();
        _exit(clk_opts.exitcode);
    }
}
