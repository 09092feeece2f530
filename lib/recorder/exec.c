/* exec.c — under `connleak run`, a program started with an environment that dropped the detector gets it back.
 *
 * A descendant that runs `env -i`, `env LD_PRELOAD=other.so`, or unsets
 * LD_PRELOAD would otherwise run unseen and be reported clean. Every way to
 * start a program goes through these wrappers: the execve family, posix_spawn
 * and posix_spawnp, and system() and popen() (glibc starts their shell by an
 * internal call no wrapper sees). When the environment passed on lacks our
 * library in LD_PRELOAD or one of the run's variables, the program gets a copy
 * with them put back (our library first, the others kept) and a marker its
 * own start turns into a note in its journal. Only under `connleak run` with
 * follow_children on; a set-uid or set-gid target is left alone (the loader
 * would ignore LD_PRELOAD there anyway).
 *
 * execve and fexecve are async-signal-safe and are called after vfork: these
 * wrappers take no lock and allocate nothing but the stack (or mmap, for a
 * huge environment); what they need was copied at start. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host.h"

extern char **environ;

#define MARK "CONNLEAK_READDED"
#define LD_PRELOAD_EQ "LD_PRELOAD="
/* an environment copy up to this size is built on the stack, a larger one in mmap'd memory */
#define STACK_MAX 16384

static int active;
static char lib_path[PATH_MAX];
static const char *lib_base;
static size_t lib_base_len;
/* "NAME=value" of the run's variables as this process got them; "" when it had none */
static char run_dir_var[sizeof clk_opts.run_dir + 32];
static char run_id_var[64];
static char options_var[4096];

static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);
static int (*real_posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                               char *const[], char *const[]);
static int (*real_posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                                char *const[], char *const[]);
static int (*real_system)(const char *);
static FILE *(*real_popen)(const char *, const char *);

/* Looked up at start, never after vfork; a wrapper called before our start
 * (another library's constructor) looks its own up then. */
static void *lookup(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f && (f = dlsym(RTLD_NEXT, name)))
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    return f;
}
#define REAL(name) ((__typeof(real_##name))lookup((void **)&real_##name, #name))

static void resolve_all(void)
{
    (void)REAL(execve);
    (void)REAL(execvpe);
    (void)REAL(fexecve);
    (void)REAL(execveat);
    (void)REAL(posix_spawn);
    (void)REAL(posix_spawnp);
    (void)REAL(system);
    (void)REAL(popen);
    dlerror(); /* execveat may be missing (glibc < 2.34): not the program's error to see */
}

/* ---- start: what descendants need, and the note for a start that needed it ---- */

static void note_readded(const char *mark)
{
    if (!clk_journal_active())
        return;
    /* the marker: the starting process's pid, then the names put back */
    char *end;
    long by = strtol(mark, &end, 10);
    char names[256];
    size_t n = 0;
    for (const char *p = end; *p && n + 3 < sizeof names; p++) {
        if (*p != ' ')
            names[n++] = *p;
        else if (n) {
            names[n++] = ',';
            names[n++] = ' ';
        }
    }
    names[n] = 0;
    char text[512];
    int len = by == (long)getpid()
                  ? snprintf(text, sizeof text,
                             "its exec was given an environment without %s: the detector put it back", names)
                  : snprintf(text, sizeof text,
                             "process %ld started it with an environment without %s: the detector put it back", by,
                             names);
    if (len < 0)
        return;
    struct connleak_raw_record rec = {0};
    rec.u.ev.target = clk_intern_string(text, (size_t)len < sizeof text ? (size_t)len : sizeof text - 1);
    clk_journal_commit(clk_journal_reserve(0), &rec, CONNLEAK_REC_NOTE);
}

void clk_exec_init(void)
{
    resolve_all();
    const char *mark = getenv(MARK);
    if (mark) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", mark);
        unsetenv(MARK); /* this process's own descendants are judged by what they get */
        note_readded(copy);
    }
    if (!clk_opts.run_dir[0] || !clk_opts.follow_children || getauxval(AT_SECURE))
        return;
    Dl_info self;
    if (!dladdr((void *)clk_exec_init, &self) || !self.dli_fname || self.dli_fname[0] != '/' ||
        strlen(self.dli_fname) >= sizeof lib_path)
        return;
    strcpy(lib_path, self.dli_fname);
    lib_base = strrchr(lib_path, '/') + 1;
    lib_base_len = strlen(lib_base);
    snprintf(run_dir_var, sizeof run_dir_var, "%s=%s", CONNLEAK_RUN_DIR_ENV, clk_opts.run_dir);
    if (clk_opts.run_id)
        snprintf(run_id_var, sizeof run_id_var, "%s=%016llx", CONNLEAK_RUN_ID_ENV, (unsigned long long)clk_opts.run_id);
    const char *opts = getenv("CONNLEAK_OPTIONS");
    if (opts && strlen(opts) + sizeof "CONNLEAK_OPTIONS=" <= sizeof options_var)
        snprintf(options_var, sizeof options_var, "CONNLEAK_OPTIONS=%s", opts);
    __atomic_store_n(&active, 1, __ATOMIC_RELEASE);
}

/* ---- the environment passed on ---- */

/* Does "NAME=value" name var (var given as "NAME=...")? */
static int same_name(const char *entry, const char *var)
{
    const char *eq = strchr(var, '=');
    size_t n = (size_t)(eq - var) + 1;
    return strncmp(entry, var, n) == 0;
}

/* Is our library one of LD_PRELOAD's entries (by its file name, as the loader matches none)? */
static int preload_has_us(const char *value)
{
    for (const char *p = value; *p;) {
        size_t len = strcspn(p, ": ");
        const char *tb = memrchr(p, '/', len);
        tb = tb ? tb + 1 : p;
        if ((size_t)(p + len - tb) == lib_base_len && !memcmp(tb, lib_base, lib_base_len))
            return 1;
        p += len;
        while (*p == ':' || *p == ' ')
            p++;
    }
    return 0;
}

struct plan {
    size_t n;                /* entries in envp */
    const char *old_preload; /* the value of LD_PRELOAD the loader would use, NULL when none */
    int preload, run_dir, run_id, options; /* 1: missing, to be put back */
    size_t bytes;            /* the copy's size; 0: nothing missing */
};

/* What the environment lacks; async-signal-safe (no lock, no allocation). */
static void make_plan(char *const envp[], struct plan *pl)
{
    memset(pl, 0, sizeof *pl);
    int has_dir = 0, has_id = 0, has_opts = 0, has_us = 0;
    for (size_t i = 0; envp && envp[i]; i++, pl->n++) {
        const char *e = envp[i];
        if (!strncmp(e, LD_PRELOAD_EQ, sizeof LD_PRELOAD_EQ - 1)) {
            pl->old_preload = e + sizeof LD_PRELOAD_EQ - 1; /* the loader takes the last one */
            has_us = preload_has_us(pl->old_preload);
        } else if (same_name(e, run_dir_var)) {
            has_dir = 1;
        } else if (run_id_var[0] && same_name(e, run_id_var)) {
            has_id = 1;
        } else if (options_var[0] && same_name(e, options_var)) {
            has_opts = 1;
        }
    }
    pl->preload = !has_us;
    pl->run_dir = !has_dir;
    pl->run_id = run_id_var[0] && !has_id;
    pl->options = options_var[0] && !has_opts;
    if (!pl->preload && !pl->run_dir && !pl->run_id && !pl->options)
        return;
    pl->bytes = (pl->n + 6) * sizeof(char *) + sizeof LD_PRELOAD_EQ + strlen(lib_path) + 1 +
                (pl->old_preload ? strlen(pl->old_preload) : 0) + 128 /* the marker */;
}

static void put(char **dst, const char *src)
{
    size_t n = strlen(src);
    memcpy(*dst, src, n);
    *dst += n;
}

static void put_num(char **dst, unsigned long v)
{
    char tmp[24];
    int k = 0;
    do
        tmp[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < (int)sizeof tmp);
    while (k)
        *(*dst)++ = tmp[--k];
}

/* The copy of envp with what is missing put back, built in buf (pl->bytes);
 * the entries put back also in added[] (up to 6) when it is not NULL. */
static char **build(char *const envp[], const struct plan *pl, char *buf, const char **added, int *nadded)
{
    char **out = (char **)(void *)buf;
    char *s = buf + (pl->n + 6) * sizeof(char *);
    size_t k = 0;
    if (pl->preload) {
        out[k++] = s;
        put(&s, LD_PRELOAD_EQ);
        put(&s, lib_path);
        if (pl->old_preload && pl->old_preload[0]) {
            put(&s, ":");
            put(&s, pl->old_preload);
        }
        *s++ = 0;
    }
    for (size_t i = 0; i < pl->n; i++)
        if (!pl->preload || strncmp(envp[i], LD_PRELOAD_EQ, sizeof LD_PRELOAD_EQ - 1))
            out[k++] = envp[i];
    if (pl->run_dir)
        out[k++] = run_dir_var;
    if (pl->run_id)
        out[k++] = run_id_var;
    if (pl->options)
        out[k++] = options_var;
    out[k++] = s;
    put(&s, MARK "=");
    put_num(&s, (unsigned long)syscall(SYS_getpid)); /* not getpid(): no cache to trust after vfork */
    if (pl->preload)
        put(&s, " LD_PRELOAD");
    if (pl->run_dir)
        put(&s, " " CONNLEAK_RUN_DIR_ENV);
    if (pl->run_id)
        put(&s, " " CONNLEAK_RUN_ID_ENV);
    if (pl->options)
        put(&s, " CONNLEAK_OPTIONS");
    *s++ = 0;
    out[k] = NULL;
    if (added) {
        *nadded = 0;
        if (pl->preload)
            added[(*nadded)++] = out[0];
        for (size_t i = k - ((size_t)pl->run_dir + (size_t)pl->run_id + (size_t)pl->options + 1); i < k; i++)
            added[(*nadded)++] = out[i];
    }
    return out;
}

static int setid(const struct stat *st)
{
    return S_ISREG(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID));
}

/* The file execvp would run for `file` (PATH of this process, as glibc's
 * execvp searches): is it set-uid or set-gid? */
static int setid_in_path(const char *file)
{
    struct stat st;
    if (strchr(file, '/'))
        return stat(file, &st) == 0 && setid(&st);
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    size_t flen = strlen(file);
    for (const char *p = path;;) {
        size_t len = strcspn(p, ":");
        char buf[PATH_MAX];
        if (len + 1 + flen < sizeof buf) {
            memcpy(buf, len ? p : ".", len ? len : 1);
            size_t at = len ? len : 1;
            buf[at++] = '/';
            memcpy(buf + at, file, flen + 1);
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
                return setid(&st);
        }
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* Runs `call` with the environment `envp` has, or with the detector put back:
 * env names the environment the call is made with. */
#define WITH_DETECTOR(envp, skip, env, call)                                                        \
    do {                                                                                            \
        struct plan pl_;                                                                            \
        pl_.bytes = 0;                                                                              \
        if (__atomic_load_n(&active, __ATOMIC_ACQUIRE)) {                                           \
            make_plan(envp, &pl_);                                                                  \
            if (pl_.bytes && (skip))                                                                \
                pl_.bytes = 0;                                                                      \
        }                                                                                           \
        void *stack_[pl_.bytes && pl_.bytes <= STACK_MAX ? (pl_.bytes + sizeof(void *) - 1) / sizeof(void *) : 1]; \
        char *buf_ = (char *)stack_;                                                                \
        if (pl_.bytes > STACK_MAX) {                                                                \
            buf_ = mmap(NULL, pl_.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); \
            if (buf_ == MAP_FAILED) {                                                               \
                buf_ = NULL;                                                                        \
                pl_.bytes = 0;                                                                      \
            }                                                                                       \
        }                                                                                           \
        char *const *env = pl_.bytes ? build(envp, &pl_, buf_, NULL, NULL) : (envp);                            \
        call;                                                                                       \
        if (pl_.bytes > STACK_MAX) {                                                                \
            int saved_ = errno;                                                                     \
            munmap(buf_, pl_.bytes);                                                                \
            errno = saved_;                                                                         \
        }                                                                                           \
    } while (0)

static char *const empty_env[] = {NULL};

/* ---- the execve family ---- */

static int exec_path(const char *path, char *const argv[], char *const envp[])
{
    int rc = -1;
    struct stat st;
    WITH_DETECTOR(envp, stat(path, &st) == 0 && setid(&st), env,
                  rc = REAL(execve) ? REAL(execve)(path, argv, env) : (int)syscall(SYS_execve, path, argv, env));
    return rc;
}

static int exec_search(const char *file, char *const argv[], char *const envp[])
{
    int rc = -1;
    WITH_DETECTOR(envp, setid_in_path(file), env, rc = REAL(execvpe) ? REAL(execvpe)(file, argv, env) : -1);
    return rc;
}

__attribute__((visibility("default"))) int execve(const char *path, char *const argv[], char *const envp[])
{
    return exec_path(path, argv, envp ? envp : empty_env);
}

__attribute__((visibility("default"))) int execv(const char *path, char *const argv[])
{
    return exec_path(path, argv, environ ? environ : empty_env);
}

__attribute__((visibility("default"))) int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return exec_search(file, argv, envp ? envp : empty_env);
}

__attribute__((visibility("default"))) int execvp(const char *file, char *const argv[])
{
    return exec_search(file, argv, environ ? environ : empty_env);
}

/* execl, execlp, execle: their arguments as an array on the stack, as glibc builds it */
#define ARGV_FROM_VA(arg0, ap, argv, extra)                                  \
    size_t argc_ = 1;                                                        \
    va_start(ap, arg0);                                                      \
    while (va_arg(ap, const char *))                                         \
        argc_++;                                                             \
    va_end(ap);                                                              \
    char *argv[argc_ + 1];                                                   \
    argv[0] = (char *)(arg0);                                                \
    va_start(ap, arg0);                                                      \
    for (size_t i_ = 1; i_ <= argc_; i_++)                                   \
        argv[i_] = va_arg(ap, char *);                                       \
    extra;                                                                   \
    va_end(ap)

__attribute__((visibility("default"))) int execl(const char *path, const char *arg0, ...)
{
    va_list ap;
    ARGV_FROM_VA(arg0, ap, argv, (void)0);
    return exec_path(path, argv, environ ? environ : empty_env);
}

__attribute__((visibility("default"))) int execlp(const char *file, const char *arg0, ...)
{
    va_list ap;
    ARGV_FROM_VA(arg0, ap, argv, (void)0);
    return exec_search(file, argv, environ ? environ : empty_env);
}

__attribute__((visibility("default"))) int execle(const char *path, const char *arg0, ...)
{
    va_list ap;
    char *const *envp;
    ARGV_FROM_VA(arg0, ap, argv, envp = va_arg(ap, char *const *));
    return exec_path(path, argv, envp ? envp : empty_env);
}

__attribute__((visibility("default"))) int fexecve(int fd, char *const argv[], char *const envp[])
{
    int rc = -1;
    struct stat st;
    if (!envp)
        envp = empty_env;
    WITH_DETECTOR(envp, fstat(fd, &st) == 0 && setid(&st), env, rc = REAL(fexecve) ? REAL(fexecve)(fd, argv, env) : -1);
    return rc;
}

__attribute__((visibility("default"))) int execveat(int dirfd, const char *path, char *const argv[],
                                                    char *const envp[], int flags)
{
    int rc = -1;
    struct stat st;
    if (!envp)
        envp = empty_env;
    WITH_DETECTOR(envp, fstatat(dirfd, path, &st, flags & (AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) == 0 && setid(&st),
                  env,
                  rc = REAL(execveat) ? REAL(execveat)(dirfd, path, argv, env, flags)
                                      : (int)syscall(SYS_execveat, dirfd, path, argv, env, flags));
    return rc;
}

/* ---- posix_spawn ---- */

__attribute__((visibility("default"))) int posix_spawn(pid_t *pid, const char *path,
                                                       const posix_spawn_file_actions_t *fa,
                                                       const posix_spawnattr_t *attr, char *const argv[],
                                                       char *const envp[])
{
    int rc = ENOSYS;
    struct stat st;
    if (!envp)
        envp = empty_env;
    WITH_DETECTOR(envp, stat(path, &st) == 0 && setid(&st), env,
                  rc = REAL(posix_spawn) ? REAL(posix_spawn)(pid, path, fa, attr, argv, env) : ENOSYS);
    return rc;
}

__attribute__((visibility("default"))) int posix_spawnp(pid_t *pid, const char *file,
                                                        const posix_spawn_file_actions_t *fa,
                                                        const posix_spawnattr_t *attr, char *const argv[],
                                                        char *const envp[])
{
    int rc = ENOSYS;
    if (!envp)
        envp = empty_env;
    WITH_DETECTOR(envp, setid_in_path(file), env,
                  rc = REAL(posix_spawnp) ? REAL(posix_spawnp)(pid, file, fa, attr, argv, env) : ENOSYS);
    return rc;
}

/* ---- system, popen: the shell they start gets the variables back by an export before the command ---- */

/* 'value' for the shell, with each ' written as '\'' */
static void put_quoted(char **dst, const char *v)
{
    *(*dst)++ = '\'';
    for (; *v; v++) {
        if (*v == '\'')
            put(dst, "'\\''");
        else
            *(*dst)++ = *v;
    }
    *(*dst)++ = '\'';
}

static size_t quoted_len(const char *v)
{
    size_t n = 2;
    for (; *v; v++)
        n += *v == '\'' ? 4 : 1;
    return n;
}

/* "export NAME='value' ...; command", malloc'd; NULL when the environment lacks nothing */
static char *command_with_detector(const char *command)
{
    struct plan pl;
    if (!command || !__atomic_load_n(&active, __ATOMIC_ACQUIRE))
        return NULL;
    make_plan(environ ? environ : empty_env, &pl);
    if (!pl.bytes)
        return NULL;
    char *env_buf = malloc(pl.bytes);
    if (!env_buf)
        return NULL;
    const char *added[8];
    int nadded = 0;
    build(environ ? environ : empty_env, &pl, env_buf, added, &nadded);
    size_t len = sizeof "export ; " + strlen(command);
    for (int i = 0; i < nadded; i++)
        len += 1 + quoted_len(added[i]);
    char *out = malloc(len);
    if (out) {
        char *s = out;
        put(&s, "export");
        for (int i = 0; i < nadded; i++) {
            const char *eq = strchr(added[i], '=');
            *s++ = ' ';
            memcpy(s, added[i], (size_t)(eq - added[i]) + 1);
            s += eq - added[i] + 1;
            put_quoted(&s, eq + 1);
        }
        put(&s, "; ");
        put(&s, command);
        *s = 0;
    }
    free(env_buf);
    return out;
}

__attribute__((visibility("default"))) int system(const char *command)
{
    if (!REAL(system))
        return -1;
    char *with = command_with_detector(command);
    if (!with)
        return REAL(system)(command);
    int rc = REAL(system)(with);
    int saved = errno;
    free(with);
    errno = saved;
    return rc;
}

__attribute__((visibility("default"))) FILE *popen(const char *command, const char *mode)
{
    if (!REAL(popen))
        return NULL;
    char *with = command_with_detector(command);
    if (!with)
        return REAL(popen)(command, mode);
    FILE *f = REAL(popen)(with, mode);
    int saved = errno;
    free(with);
    errno = saved;
    return f;
}
