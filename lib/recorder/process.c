/* process.c — the recorder's life in its host: start-up, fork, exit, and small utilities. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

__thread int clk_busy __attribute__((tls_model("initial-exec")));
__thread uint32_t clk_cached_tid __attribute__((tls_model("initial-exec")));
int clk_ready;
pid_t clk_owner_pid;
__attribute__((weak)) void clk_exec_init(void);

void clk_tracker_init(void);

uint64_t clk_now_ns(int realtime)
{
    struct timespec ts;
    clock_gettime(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint32_t clk_tid_slow(void)
{
    clk_cached_tid = (uint32_t)syscall(SYS_gettid);
    return clk_cached_tid;
}

static char exe_path[4096];
static pthread_once_t exe_once = PTHREAD_ONCE_INIT;

static void read_exe_path(void)
{
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
}

const char *clk_exe_path(void)
{
    pthread_once(&exe_once, read_exe_path);
    return exe_path;
}

void clk_warn(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

/* ---- fork ---- */

static void prepare_fork(void)
{
    clk_stack_prepare_fork(); /* first: walks take no other lock of ours first */
    clk_intern_prepare_fork();
    clk_track_prepare_fork();
    clk_journal_prepare_fork();
    clk_arena_prepare_fork();
}

static void after_fork_parent(void)
{
    clk_stack_after_fork(0);
    clk_arena_after_fork();
    clk_journal_after_fork_parent();
    clk_track_after_fork(0);
    clk_intern_after_fork();
}

/* The child keeps the parent's connections but they are not its leaks. */
static void after_fork_child(void)
{
    clk_cached_tid = 0;
    clk_stack_after_fork(1);
    clk_arena_after_fork();
    clk_track_after_fork(1);
    clk_intern_after_fork();
    clk_owner_pid = getpid();
    clk_fd_setup++; /* the child's own code has not run yet: its descriptors may be parked above its limit */
    clk_journal_after_fork_child(); /* also releases the journal's lock */
    clk_fd_setup--;
    /* after every lock taken in prepare_fork is released: walking the handles
     * with the journal's lock still held took the two in the opposite order */
    clk_track_mark_inherited();
}

/* clone.c: processes started without atfork handlers get fork's set-up */
void clk_newproc_prepare(void)
{
    prepare_fork();
}

void clk_newproc_parent(void)
{
    after_fork_parent();
}

void clk_newproc_child(void)
{
    after_fork_child();
}

/* ---- exit ---- */

static int finished;

/* A destructor, not atexit: it runs after the program's own exit handlers and
 * destructors, so pools they dispose of are closed by then. */
__attribute__((destructor)) static void clk_fini(void)
{
    /* a process that came to be unseen (a clone made without glibc, a vfork
     * child calling exit): the journal, the connections, even this memory may
     * be its parent's, so it writes nothing and reports nothing */
    if (__atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) != 2 || getpid() != clk_owner_pid ||
        __atomic_exchange_n(&finished, 1, __ATOMIC_ACQ_REL))
        return;
    clk_busy++; /* a wrapper entered meanwhile (a signal handler) passes its call on, unrecorded */
    if (clk_journal_active() && !clk_journal_private) {
        /* a fork child has its parent's objects, and the loader's lock may have
         * been held by a parent thread at fork time: no rescan there */
        if (!clk_journal_forked) {
            clk_intern_all_modules();
            clk_intern_note_namespaces();
        }
        clk_journal_exit();
    }
    else if (clk_opts.report)
        clk_print_report(); /* direct mode: the CLI's report from this process's journal, else the library's own */
    clk_busy--;
}

/* ---- start ---- */

/* The linkable library steps aside when the preloaded one is in the process:
 * every connleak_* call already resolves to the preloaded copy. */
static int other_copy_serves(void)
{
#ifdef CLK_LINKABLE
    void *f = dlsym(RTLD_DEFAULT, "connleak_record");
    dlerror(); /* usually absent: not the program's dlerror() to see */
    return f && !clk_addr_is_ours((uint64_t)(uintptr_t)f);
#else
    return 0;
#endif
}

/* follow_children=0: take ourselves out of LD_PRELOAD so what this process
 * starts runs undetected. Done in the constructor, before the program's own
 * threads could read the environment. */
static void stop_following(void)
{
    Dl_info self;
    const char *preload = getenv("LD_PRELOAD");
    if (!preload || !dladdr((void *)stop_following, &self) || !self.dli_fname)
        return;
    const char *base = strrchr(self.dli_fname, '/');
    base = base ? base + 1 : self.dli_fname;
    char kept[4096];
    size_t n = 0;
    for (const char *p = preload; *p;) {
        size_t len = strcspn(p, ": ");
        const char *tb = memrchr(p, '/', len);
        tb = tb ? tb + 1 : p;
        int ours = len && (size_t)(p + len - tb) == strlen(base) && !strncmp(tb, base, strlen(base));
        if (len && !ours && n + len + 2 < sizeof kept) {
            if (n)
                kept[n++] = ':';
            memcpy(kept + n, p, len);
            n += len;
        }
        p += len;
        while (*p == ':' || *p == ' ')
            p++;
    }
    kept[n] = 0;
    if (n)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
    unsetenv(CONNLEAK_RUN_DIR_ENV);
}

static void start(void)
{
    clk_busy++; /* as in clk_fini: no event is recorded half-way through start-up on this thread */
    clk_owner_pid = getpid();
    clk_fd_setup++; /* before the program's code runs: descriptors may be parked above its limit */
    clk_fd_init();   /* before libunwind's first walk opens its pipe */
    clk_stack_init();
    if (other_copy_serves()) {
        clk_fd_setup--;
        clk_opts.report = 0;
        clk_busy--;
        return;
    }
#ifdef CLK_LINKABLE
    clk_opts.report = 0; /* a program linking the API asks the tracker itself */
#endif
    char err[512] = "";
    /* set-uid and set-gid programs must not be steered by their caller's environment */
    int secure = getauxval(AT_SECURE) != 0;
    const char *spec = secure ? NULL : getenv("CONNLEAK_OPTIONS");
    if (spec && clk_options_parse(spec, err, sizeof err) != 0)
        clk_warn("%s", err);
    const char *dir = secure ? NULL : getenv(CONNLEAK_RUN_DIR_ENV);
    char cwd[sizeof clk_opts.run_dir];
    if (dir && dir[0] && dir[0] != '/' && getcwd(cwd, sizeof cwd) &&
        strlen(cwd) + 1 + strlen(dir) < sizeof clk_opts.run_dir) {
        /* made absolute now: a process that changes directory and forks still finds it */
        size_t c = strlen(cwd);
        memcpy(clk_opts.run_dir, cwd, c);
        clk_opts.run_dir[c] = '/';
        strcpy(clk_opts.run_dir + c + 1, dir);
    } else if (dir && dir[0] && strlen(dir) < sizeof clk_opts.run_dir) {
        strcpy(clk_opts.run_dir, dir);
    }
    if (clk_opts.run_dir[0]) {
        clk_opts.report = 0; /* the CLI reports */
        const char *id = getenv(CONNLEAK_RUN_ID_ENV);
        clk_opts.run_id = id ? strtoull(id, NULL, 16) : 0;
    }
    clk_tracker_init();
    /* direct mode: a journal of the process's own, which the CLI reads at exit
     * (printer.c); not for set-uid programs: no CLI is run for them */
    if (!clk_opts.run_dir[0] && clk_opts.report && clk_opts_symbolize && !secure)
        clk_journal_private = 1;
    /* no journal where one was asked for (refused, unwritable, no descriptor
     * left): the findings are printed at exit instead, not lost */
    if (clk_journal_start(0) != 0 && clk_opts.run_dir[0])
        clk_journal_fall_back();
    else if (clk_opts.report)
        clk_report_keep_stderr();
    clk_fd_setup--;
    if (clk_exec_init) /* exec.c is in the preloaded library alone */
        clk_exec_init(); /* before stop_following: it reads the run's variables */
    clk_intern_scan_modules();
    if (!clk_opts.follow_children)
        stop_following();
    pthread_atfork(prepare_fork, after_fork_parent, after_fork_child);
    clk_busy--;
}

void clk_ensure_init_slow(void)
{
    int expected = 0;
    if (__atomic_load_n(&clk_ready, __ATOMIC_ACQUIRE) == 2)
        return;
    if (__atomic_compare_exchange_n(&clk_ready, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        start();
        __atomic_store_n(&clk_ready, 2, __ATOMIC_RELEASE);
        return;
    }
    /* another thread is starting us: events before it is done go unjournaled,
     * but waiting could deadlock if that thread waits on this one */
}

__attribute__((constructor)) static void clk_init(void)
{
    clk_ensure_init();
}
