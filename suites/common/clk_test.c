/* clk_test.c — test helpers: watchdogged child runs, `connleak run --json`, and queries on the JSON report. */
#include "clk_test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("clk_test: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- buffers ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            die("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static char *buf_take(struct buf *b, size_t *len)
{
    if (!b->p)
        buf_add(b, "", 0);
    *len = b->len;
    return b->p;
}

/* ---- environment ---- */

/* The current environment with `changes` applied ("K=V" sets, "K" unsets). */
static char **make_env(const char *const *changes)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    if (changes)
        while (changes[m])
            m++;
    char **env = calloc(n + m + 1, sizeof *env);
    if (!env)
        die("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strcspn(environ[i], "=");
        int replaced = 0;
        for (size_t j = 0; j < m; j++) {
            size_t clen = strcspn(changes[j], "=");
            if (clen == klen && strncmp(changes[j], environ[i], klen) == 0)
                replaced = 1;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        if (strchr(changes[j], '='))
            env[k++] = (char *)changes[j];
    env[k] = NULL;
    return env;
}

/* ---- running a child ---- */

/* $CONNLEAK_TEST_TIMEOUT_MULTIPLIER (the sanitizer and Valgrind setups): every
 * watchdog is that many times longer. 1 when unset or not a positive number. */
static double timeout_multiplier(void)
{
    const char *v = getenv("CONNLEAK_TEST_TIMEOUT_MULTIPLIER");
    char *end;
    double m = v && *v ? strtod(v, &end) : 1.0;
    return v && *v && !*end && m > 0 ? m : 1.0;
}

/* $CONNLEAK_CLI_WRAPPER (meson test --setup valgrind): a space-separated
 * prefix put before the CLI wherever a test runs it ($CONNLEAK_CLI as argv[0]).
 * Returns a malloc'd argv (free it, not its strings), or NULL: run argv as is. */
static const char **wrap_cli(const char *const *argv)
{
    const char *wrapper = getenv("CONNLEAK_CLI_WRAPPER");
    const char *cli = getenv("CONNLEAK_CLI");
    if (!wrapper || !*wrapper || !cli || !*cli || strcmp(argv[0], cli) != 0)
        return NULL;
    static char *words_buf;
    static const char *words[32];
    static size_t nwords;
    if (!words_buf) {
        words_buf = strdup(wrapper);
        if (!words_buf)
            die("out of memory");
        for (char *save = NULL, *w = strtok_r(words_buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
            if (nwords == sizeof words / sizeof words[0])
                die("CONNLEAK_CLI_WRAPPER has more than %zu words", sizeof words / sizeof words[0]);
            words[nwords++] = w;
        }
    }
    size_t n = 0;
    while (argv[n])
        n++;
    const char **out = calloc(nwords + n + 1, sizeof *out);
    if (!out)
        die("out of memory");
    memcpy(out, words, nwords * sizeof *out);
    memcpy(out + nwords, argv, (n + 1) * sizeof *out);
    return out;
}

int clk_test_exec(const char *const *argv, const char *const *env, const char *cwd,
                  int timeout_s, clk_test_proc *p)
{
    memset(p, 0, sizeof *p);
    p->status = -1;
    if (timeout_s <= 0)
        timeout_s = CLK_TEST_TIMEOUT_S;
    timeout_s = (int)(timeout_s * timeout_multiplier());
    const char **wrapped = wrap_cli(argv);
    const char *const *run_argv = wrapped ? wrapped : argv;
    const char *prog = run_argv[0]; /* argv's or the wrapper's string: outlives `wrapped` */

    int outp[2], errp[2], failp[2];
    if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || pipe2(failp, O_CLOEXEC))
        die("pipe: %s", strerror(errno));
    char **envp = make_env(env);
    fflush(NULL);

    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        signal(SIGPIPE, SIG_DFL);
        if (cwd && chdir(cwd) != 0) {
            int e = errno;
            (void)!write(failp[1], &e, sizeof e);
            _exit(126);
        }
        execvpe(run_argv[0], (char *const *)run_argv, envp);
        int e = errno;
        (void)!write(failp[1], &e, sizeof e);
        _exit(127);
    }
    setpgid(pid, pid);
    free(envp);
    free(wrapped);
    close(outp[1]);
    close(errp[1]);
    close(failp[1]);

    struct buf out = {0}, err = {0};
    int fds[2] = {outp[0], errp[0]};
    struct buf *bufs[2] = {&out, &err};
    double start = now_s(), exited_at = 0;
    int wstatus = 0, reaped = 0, termed = 0, killed = 0;

    for (;;) {
        struct pollfd pfd[2];
        int np = 0, idx[2];
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0) {
                pfd[np].fd = fds[i];
                pfd[np].events = POLLIN;
                idx[np++] = i;
            }
        if (np == 0 && reaped)
            break;
        if (np > 0) {
            int r = poll(pfd, (nfds_t)np, 100);
            if (r < 0 && errno != EINTR)
                die("poll: %s", strerror(errno));
            for (int k = 0; r > 0 && k < np; k++) {
                if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                char chunk[65536];
                ssize_t got = read(pfd[k].fd, chunk, sizeof chunk);
                if (got > 0) {
                    buf_add(bufs[idx[k]], chunk, (size_t)got);
                } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                    close(pfd[k].fd);
                    fds[idx[k]] = -1;
                }
            }
        } else {
            usleep(20000);
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &wstatus, WNOHANG);
            if (w == pid) {
                reaped = 1;
                exited_at = now_s();
            }
        }
        double t = now_s();
        /* Grandchildren may keep the pipes open after the child ended: give
         * them 2 s, then stop reading. */
        if (reaped && t - exited_at > 2.0) {
            for (int i = 0; i < 2; i++)
                if (fds[i] >= 0) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            break;
        }
        if (!reaped && !termed && t - start > timeout_s) {
            p->timed_out = 1;
            termed = 1;
            kill(-pid, SIGTERM);
            kill(pid, SIGTERM);
        }
        if (!reaped && termed && !killed && t - start > timeout_s + 5) {
            killed = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
    if (p->timed_out)
        kill(-pid, SIGKILL); /* whatever is left of its group */

    int e = 0;
    ssize_t fr = read(failp[0], &e, sizeof e);
    close(failp[0]);

    p->out = buf_take(&out, &p->out_len);
    p->err = buf_take(&err, &p->err_len);
    if (fr == (ssize_t)sizeof e) {
        char msg[512];
        snprintf(msg, sizeof msg, "clk_test: cannot start %s: %s\n", prog, strerror(e));
        struct buf eb = {p->err, p->err_len, p->err_len + 1};
        buf_add(&eb, msg, strlen(msg));
        p->err = eb.p;
        p->err_len = eb.len;
        p->status = -1;
        return -1;
    }
    if (WIFEXITED(wstatus)) {
        p->exited = 1;
        p->status = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        p->signal = WTERMSIG(wstatus);
        p->status = 128 + p->signal;
    }
    return p->status;
}

void clk_test_proc_free(clk_test_proc *p)
{
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
}

/* ---- paths and files ---- */

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        die("%s is not set: run the suites through `meson test` (suite_env)", name);
    return v;
}

const char *clk_test_cli(void) { return need_env("CONNLEAK_CLI"); }
const char *clk_test_preload(void) { return need_env("CONNLEAK_PRELOAD"); }
const char *clk_test_source_root(void) { return need_env("CONNLEAK_SOURCE_ROOT"); }

char *clk_test_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (!s)
        die("out of memory");
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

char *clk_test_fixture(const char *name)
{
    char *path = clk_test_path(need_env("CONNLEAK_FIXTURES"), name);
    if (access(path, X_OK) != 0)
        die("fixture %s is missing (build suites/fixtures)", path);
    return path;
}

char *clk_test_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char *t = clk_test_path(tmp, "clk-test.XXXXXX");
    if (!mkdtemp(t))
        die("mkdtemp %s: %s", t, strerror(errno));
    return t;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int clk_test_rmtree(const char *path)
{
    if (!path)
        return 0;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return clk_test_exists(path) ? -1 : 0;
}

char *clk_test_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct buf b = {0};
    char chunk[65536];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0)
        buf_add(&b, chunk, (size_t)got);
    close(fd);
    size_t n;
    char *s = buf_take(&b, &n);
    if (len)
        *len = n;
    return s;
}

int clk_test_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int clk_test_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- connleak run ---- */

int clk_test_connleak(const char *const *opts, const char *const *cmd,
                      const char *const *env, clk_test_run *r)
{
    memset(r, 0, sizeof *r);
    r->dir = clk_test_mkdtemp();
    r->json_path = clk_test_path(r->dir, "report.json");

    size_t no = 0, nc = 0;
    if (opts)
        while (opts[no])
            no++;
    while (cmd[nc])
        nc++;
    const char **argv = calloc(no + nc + 6, sizeof *argv);
    if (!argv)
        die("out of memory");
    size_t k = 0;
    argv[k++] = clk_test_cli();
    argv[k++] = "run";
    for (size_t i = 0; i < no; i++)
        argv[k++] = opts[i];
    argv[k++] = "--json";
    argv[k++] = r->json_path;
    argv[k++] = "--";
    for (size_t i = 0; i < nc; i++)
        argv[k++] = cmd[i];
    argv[k] = NULL;

    /* The suites themselves never run preloaded. */
    const char *base_env[64];
    size_t ne = 0;
    base_env[ne++] = "LD_PRELOAD";
    base_env[ne++] = "CONNLEAK_OPTIONS";
    base_env[ne++] = "CONNLEAK_RUN_DIR";
    if (env)
        for (size_t i = 0; env[i] && ne < 62; i++)
            base_env[ne++] = env[i];
    base_env[ne] = NULL;

    clk_test_exec(argv, base_env, NULL, 0, &r->proc);
    free(argv);

    r->json_text = clk_test_read_file(r->json_path, NULL);
    if (r->json_text) {
        json_error_t jerr;
        r->report = json_loads(r->json_text, 0, &jerr);
    }
    return r->proc.status;
}

int clk_test_connleak_fixture(const char *const *opts, const char *fixture,
                              const char *const *args, clk_test_run *r)
{
    const char *cmd[64];
    size_t k = 0;
    cmd[k++] = clk_test_fixture(fixture);
    for (size_t i = 0; args && args[i] && k < 63; i++)
        cmd[k++] = args[i];
    cmd[k] = NULL;
    return clk_test_connleak(opts, cmd, NULL, r);
}

void clk_test_run_free(clk_test_run *r)
{
    clk_test_proc_free(&r->proc);
    if (r->report)
        json_decref(r->report);
    free(r->json_text);
    if (r->dir)
        clk_test_rmtree(r->dir);
    free(r->json_path);
    free(r->dir);
    memset(r, 0, sizeof *r);
}

/* ---- report queries ---- */

long long clk_test_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

const char *clk_test_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

long long clk_test_summary(const json_t *report, const char *key)
{
    return clk_test_int(json_object_get(report, "summary"), key);
}

int clk_test_frames_name(const json_t *frames, const char *function)
{
    size_t i;
    json_t *f;
    if (!json_is_array(frames))
        return 0;
    json_array_foreach(frames, i, f) {
        json_t *fn = json_object_get(f, "function");
        if (json_is_string(fn) && strcmp(json_string_value(fn), function) == 0)
            return 1;
    }
    return 0;
}

const char *clk_test_first_function(const json_t *frames)
{
    return clk_test_str(json_array_get(frames, 0), "function");
}

static int leak_matches(const json_t *leak, const char *backend, const char *target_part,
                        const char *function)
{
    if (backend && strcmp(clk_test_str(leak, "backend"), backend) != 0)
        return 0;
    if (target_part && !strstr(clk_test_str(leak, "target"), target_part))
        return 0;
    if (function && !clk_test_frames_name(json_object_get(leak, "opened_at"), function))
        return 0;
    return 1;
}

json_t *clk_test_find_leak(const json_t *report, const char *backend,
                           const char *target_part, const char *function)
{
    size_t i;
    json_t *leak;
    json_t *leaks = json_object_get(report, "leaks");
    json_array_foreach(leaks, i, leak) {
        if (leak_matches(leak, backend, target_part, function))
            return leak;
    }
    return NULL;
}

long long clk_test_leak_count(const json_t *report, const char *backend,
                              const char *target_part, const char *function)
{
    size_t i;
    json_t *leak;
    long long n = 0;
    json_t *leaks = json_object_get(report, "leaks");
    json_array_foreach(leaks, i, leak) {
        if (leak_matches(leak, backend, target_part, function))
            n += clk_test_int(leak, "count");
    }
    return n;
}

json_t *clk_test_find_left_field(const json_t *report, const char *kind,
                                 const char *backend, const char *closer)
{
    size_t i;
    json_t *e;
    json_t *list = json_object_get(report, "left_field_closes");
    json_array_foreach(list, i, e) {
        if (kind && strcmp(clk_test_str(e, "kind"), kind) != 0)
            continue;
        if (backend && strcmp(clk_test_str(e, "backend"), backend) != 0)
            continue;
        if (closer && !clk_test_frames_name(json_object_get(e, "closed_at"), closer))
            continue;
        return e;
    }
    return NULL;
}

int clk_test_pids_contain(const json_t *entry, long long pid)
{
    size_t i;
    json_t *v;
    json_t *pids = json_object_get(entry, "pids");
    json_array_foreach(pids, i, v) {
        if (json_is_integer(v) && json_integer_value(v) == pid)
            return 1;
    }
    return 0;
}

/* ---- text ---- */

long long clk_test_stdout_int(const char *out, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = out; line && *line;) {
        if (strncmp(line, key, klen) == 0)
            return strtoll(line + klen, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

int clk_test_count_lines(const char *text)
{
    if (!text || !*text)
        return 0;
    int n = 0;
    const char *p = text;
    for (; *p; p++)
        if (*p == '\n')
            n++;
    if (p[-1] != '\n')
        n++;
    return n;
}

int clk_test_contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

#define EXCERPT_MAX 3000
static char excerpt_buf[4][EXCERPT_MAX + 32];
static unsigned excerpt_next;

const char *clk_test_excerpt(const char *text)
{
    char *b = excerpt_buf[excerpt_next++ % 4];
    if (!text)
        return "(null)";
    size_t n = strlen(text);
    if (n <= EXCERPT_MAX)
        return text;
    memcpy(b, text, EXCERPT_MAX);
    strcpy(b + EXCERPT_MAX, "...[truncated]");
    return b;
}

const char *clk_test_dump(const json_t *report)
{
    char *b = excerpt_buf[excerpt_next++ % 4];
    if (!report)
        return "(no JSON report)";
    char *s = json_dumps(report, JSON_COMPACT);
    if (!s)
        return "(unprintable JSON)";
    size_t n = strlen(s);
    if (n > EXCERPT_MAX) {
        memcpy(b, s, EXCERPT_MAX);
        strcpy(b + EXCERPT_MAX, "...[truncated]");
    } else {
        memcpy(b, s, n + 1);
    }
    free(s);
    return b;
}
