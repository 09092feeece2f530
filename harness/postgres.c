/* postgres.c — creates, exports and tears down the throwaway PostgreSQL cluster behind `--postgres`. */
#include "postgres.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_OS_USER "postgres"
#define PG_PORT 5432              /* the socket's name when no loopback port can be had */
#define PG_READY_TIMEOUT_MS 60000 /* pg_ctl's own default */
#define PG_STOP_TIMEOUT_MS 10000  /* then SIGKILL */
#define PG_POLL_MS 5

extern char **environ;

/* Who runs initdb and the server: ourselves, or the postgres user when we are root (both refuse root). */
struct runas {
    int drop;
    uid_t uid;
    gid_t gid;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int is_exec(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* A usable bin directory has both programs we exec; pg_ctl is not needed (we start postgres ourselves). */
static int has_bins(const char *dir)
{
    return dir && *dir && is_exec(dir, "initdb") && is_exec(dir, "postgres");
}

/* The environment for everything we start: the detector and its settings must not follow into the server. */
static char **child_env(void)
{
    size_t n = 0, k = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0 || strncmp(environ[i], "CONNLEAK_", 9) == 0)
            continue;
        env[k++] = environ[i];
    }
    return env;
}

/* Forks and execs argv[0] (as the cluster's owner when root) in a new session, so a terminal's Ctrl-C
 * does not hit it: the caller decides when the cluster goes. stdin is /dev/null, stdout and stderr go
 * to outfd; other descriptors are closed so the server holds none of our pipes open. */
static pid_t spawn(const struct runas *ra, const char *cwd, char *const argv[], char *const envp[],
                   int outfd, int deathsig)
{
    pid_t parent = getpid();
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(devnull);
        return pid;
    }

    /* Child: undo whatever the caller set up for its own signal handling (masks and SIG_IGN survive exec). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL);
    setsid();
    if (dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
        _exit(127);
    if (close_range(3, ~0U, 0) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
            close((int)fd);
    }
    if (ra->drop && (setgroups(1, &ra->gid) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0)) {
        dprintf(2, "connleak: cannot switch to user %s: %s\n", PG_OS_USER, strerror(errno));
        _exit(127);
    }
    /* If connleak itself is killed, do not leave a server behind (set after setuid, which clears it). */
    prctl(PR_SET_PDEATHSIG, deathsig);
    if (getppid() != parent)
        _exit(127);
    if (cwd && chdir(cwd) < 0)
        _exit(127);
    execve(argv[0], argv, envp);
    dprintf(2, "connleak: cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Runs pg_config --bindir (found on PATH) and returns its answer, or "" when there is none. */
static void bindir_from_pg_config(char *out, size_t n, char *const envp[])
{
    out[0] = '\0';
    const char *path = getenv("PATH");
    char exe[4200] = "";
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len < 4096) {
            snprintf(exe, sizeof exe, "%.*s/pg_config", (int)len, path);
            if (access(exe, X_OK) == 0)
                break;
        }
        exe[0] = '\0';
        path += len + (path[len] == ':');
    }
    if (!exe[0])
        return;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return;
    struct runas self = { 0, 0, 0 };
    char *argv[] = { exe, "--bindir", NULL };
    pid_t pid = spawn(&self, NULL, argv, envp, fds[1], SIGKILL);
    close(fds[1]);
    size_t got = 0;
    if (pid > 0) {
        ssize_t r;
        while (got + 1 < n && ((r = read(fds[0], out + got, n - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
            if (r > 0)
                got += (size_t)r;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close(fds[0]);
    out[got] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    /* stderr went into the pipe too: anything that is not a plain absolute path is not an answer */
    if (out[0] != '/')
        out[0] = '\0';
}

/* Finds initdb and postgres: CONNLEAK_PG_BINDIR (only), else pg_config --bindir, PATH, and the highest
 * /usr/lib/postgresql/<version>/bin. Returns 0, or -1 with why set. */
static int search_bindir(char *out, size_t n, char *const envp[], char *why, size_t whyn)
{
    const char *forced = getenv("CONNLEAK_PG_BINDIR");
    if (forced && *forced) {
        if (!has_bins(forced)) {
            snprintf(why, whyn, "CONNLEAK_PG_BINDIR=%s does not hold executable initdb and postgres", forced);
            return -1;
        }
        snprintf(out, n, "%s", forced);
        return 0;
    }

    bindir_from_pg_config(out, n, envp);
    if (has_bins(out))
        return 0;

    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len < n) {
            snprintf(out, n, "%.*s", (int)len, path);
            if (has_bins(out))
                return 0;
        }
        path += len + (path[len] == ':');
    }

    /* Debian keeps the server programs off PATH, one directory per major version. */
    int best_major = -1, best_minor = -1;
    DIR *d = opendir("/usr/lib/postgresql");
    if (d) {
        struct dirent *e;
        char cand[300];
        while ((e = readdir(d)) != NULL) {
            int major = -1, minor = 0;
            if (!isdigit((unsigned char)e->d_name[0]) || sscanf(e->d_name, "%d.%d", &major, &minor) < 1)
                continue;
            snprintf(cand, sizeof cand, "/usr/lib/postgresql/%s/bin", e->d_name);
            if ((major > best_major || (major == best_major && minor > best_minor)) && has_bins(cand)) {
                best_major = major;
                best_minor = minor;
                snprintf(out, n, "%s", cand);
            }
        }
        closedir(d);
    }
    if (best_major >= 0)
        return 0;

    out[0] = '\0';
    snprintf(why, whyn, "initdb and postgres not found (looked at pg_config --bindir, PATH and "
                        "/usr/lib/postgresql/*/bin); install the Debian package postgresql, "
                        "or set CONNLEAK_PG_BINDIR");
    return -1;
}

/* search_bindir, made absolute: the children exec from inside the cluster's directory. */
/* A loopback TCP port nobody listens on now (0 when none can be had). */
static int free_loopback_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* server.crt and server.key in the data directory: a self-signed certificate for
 * localhost made by openssl as the server's owner. Nonzero when it cannot be made. */
static int make_certificate(const struct runas *ra, const char *cwd, const char *datadir, char *const envp[])
{
    if (access("/usr/bin/openssl", X_OK) != 0)
        return -1;
    char key[4200], crt[4200];
    snprintf(key, sizeof key, "%s/server.key", datadir);
    snprintf(crt, sizeof crt, "%s/server.crt", datadir);
    char *argv[] = {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", crt, NULL};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid = spawn(ra, cwd, argv, envp, devnull, SIGKILL);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0)
        return -1;
    int st = 0, r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0) /* SIGCHLD ignored by the caller: judge by the files */
        st = access(crt, R_OK) == 0 && access(key, R_OK) == 0 ? 0 : 1;
    return st == 0 ? 0 : -1;
}

static int find_bindir(char *out, size_t n, char *const envp[], char *why, size_t whyn)
{
    char abs[PATH_MAX];
    if (search_bindir(out, n, envp, why, whyn) < 0)
        return -1;
    if (realpath(out, abs) && strlen(abs) < n)
        memcpy(out, abs, strlen(abs) + 1);
    return 0;
}

/* TMPDIR when it can hold the cluster, else /tmp. The socket path must fit in sun_path (108 bytes) and in
 * unix_socket_directories (a comma list), and a dropped-to postgres user must be able to reach it. */
static int tmpbase_ok(const char *t, const struct runas *ra)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-";
    struct stat st;
    if (!t || t[0] != '/' || strlen(t) > 60 || t[strspn(t, safe)])
        return 0;
    if (stat(t, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (!ra->drop)
        return access(t, W_OK | X_OK) == 0;
    char p[64];
    snprintf(p, sizeof p, "%s", t);
    for (;;) { /* it and every ancestor must be searchable by others */
        if (stat(p, &st) < 0 || !(st.st_mode & S_IXOTH))
            return 0;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            break;
        *slash = '\0';
    }
    return 1;
}

/* The most telling line of the log: the last FATAL/PANIC/error line, else the last non-empty one. */
static void log_tail(const char *log, char *out, size_t n)
{
    char buf[8192];
    out[0] = '\0';
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t r = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (r <= 0)
        return;
    buf[r] = '\0';
    const char *last = NULL, *bad = NULL;
    for (char *line = buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t len = strlen(line);
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        if (len == 0)
            continue;
        last = line;
        if (strstr(line, "FATAL:") || strstr(line, "PANIC:") || strstr(line, "error:") || strstr(line, "ERROR:"))
            bad = line;
    }
    if (bad || last)
        snprintf(out, n, "%s", bad ? bad : last);
}

static void describe_status(int st, char *out, size_t n)
{
    if (WIFEXITED(st))
        snprintf(out, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "status 0x%x", st);
}

/* Prints the one failure line (with the log's telling line when asked), cleans up, returns -1. */
static int fail(struct clk_pg *pg, int with_log, const char *fmt, ...)
{
    char why[1200], tail[600] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (with_log && pg->log[0])
        log_tail(pg->log, tail, sizeof tail);
    clk_pg_stop(pg);
    if (tail[0])
        fprintf(stderr, "connleak: cannot start PostgreSQL: %s: %s\n", why, tail);
    else
        fprintf(stderr, "connleak: cannot start PostgreSQL: %s\n", why);
    return -1;
}

/* postmaster.pid line 1 is the pid, line 8 the status ("starting", "ready", ...). */
static int postmaster_ready(const char *datadir, pid_t pid)
{
    char path[200], buf[2048];
    snprintf(path, sizeof path, "%s/postmaster.pid", datadir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    if (atol(buf) != (long)pid)
        return 0;
    const char *line = buf;
    for (int i = 1; i < 8 && line; i++) {
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return line && strncmp(line, "ready", 5) == 0;
}

static void url_encode(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s && k + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~/", c)) {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
}

int clk_pg_start(struct clk_pg *pg, int verbose)
{
    double t0 = now_s();
    char why[4600], datadir[160];
    memset(pg, 0, sizeof *pg);

    struct runas ra = { 0, getuid(), getgid() };
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(PG_OS_USER);
        if (!pw)
            return fail(pg, 0, "running as root needs the '%s' user to run initdb and the server (they refuse root)",
                        PG_OS_USER);
        ra.drop = 1;
        ra.uid = pw->pw_uid;
        ra.gid = pw->pw_gid;
    }

    char **envp = child_env();
    if (!envp)
        return fail(pg, 0, "out of memory");
    if (find_bindir(pg->bindir, sizeof pg->bindir, envp, why, sizeof why) < 0) {
        free(envp);
        return fail(pg, 0, "%s", why);
    }

    /* A private directory: data/, the socket and the log. The server's owner must own it. */
    const char *base = getenv("TMPDIR");
    if (!tmpbase_ok(base, &ra))
        base = "/tmp";
    char tmpl[128];
    snprintf(tmpl, sizeof tmpl, "%s/connleak-pg-XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        int e = errno;
        free(envp);
        return fail(pg, 0, "cannot create a directory in %s: %s", base, strerror(e));
    }
    snprintf(pg->dir, sizeof pg->dir, "%s", tmpl);
    if (chmod(pg->dir, 0700) < 0 || (ra.drop && chown(pg->dir, ra.uid, ra.gid) < 0)) { /* 0700 whatever the umask */
        int e = errno;
        free(envp);
        return fail(pg, 0, "cannot make %s private: %s", pg->dir, strerror(e));
    }
    snprintf(pg->host, sizeof pg->host, "%s", pg->dir);
    /* derived from tmpl, which is short by construction (the socket path must fit in 108 bytes) */
    snprintf(pg->log, sizeof pg->log, "%s/postgres.log", tmpl);
    snprintf(datadir, sizeof datadir, "%s/data", tmpl);
    snprintf(pg->user, sizeof pg->user, "postgres");
    snprintf(pg->database, sizeof pg->database, "postgres");
    /* the server also listens on loopback TCP (clients such as pgjdbc speak nothing else), at a
     * port free now: the same number names the socket */
    pg->port = free_loopback_port();
    if (pg->port > 0)
        snprintf(pg->tcp_host, sizeof pg->tcp_host, "127.0.0.1");
    else
        pg->port = PG_PORT;

    int logfd = open(pg->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        int e = errno;
        free(envp);
        return fail(pg, 0, "cannot create %s: %s", pg->log, strerror(e));
    }
    if (verbose)
        fprintf(stderr, "connleak: starting PostgreSQL from %s in %s ...\n", pg->bindir, pg->dir);

    /* initdb: no fsync, trust auth over the private socket, a locale-independent cluster. */
    char exe[4200], port[16];
    snprintf(exe, sizeof exe, "%s/initdb", pg->bindir);
    char *initdb_argv[] = { exe, "-D", datadir, "--no-sync", "-A", "trust", "-U", pg->user,
                            "-E", "UTF8", "--no-locale", NULL };
    pid_t pid = spawn(&ra, pg->dir, initdb_argv, envp, logfd, SIGKILL);
    if (pid < 0) {
        int e = errno;
        close(logfd);
        free(envp);
        return fail(pg, 0, "cannot start initdb: %s", strerror(e));
    }
    int st = 0, r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    snprintf(exe, sizeof exe, "%s/PG_VERSION", datadir);
    if (r < 0) /* SIGCHLD ignored by the caller: the child was reaped for us; initdb removes data/ on failure */
        st = access(exe, R_OK) == 0 ? 0 : 1 << 8;
    if (st != 0) {
        char how[128];
        describe_status(st, how, sizeof how);
        close(logfd);
        free(envp);
        return fail(pg, 1, "initdb failed (%s)", how);
    }

    /* TLS on loopback TCP, with a throwaway self-signed certificate, when openssl is there */
    int tls = pg->tcp_host[0] && make_certificate(&ra, pg->dir, datadir, envp) == 0;
    double initdb_s = now_s() - t0;
    FILE *vf;
    if ((vf = fopen(exe, "re")) != NULL) {
        if (fgets(pg->version, sizeof pg->version, vf))
            pg->version[strcspn(pg->version, "\r\n")] = '\0';
        fclose(vf);
    }

    /* The server itself, started directly (no pg_ctl, no shell) so it is our child and we know its pid.
     * Unix socket only; durability off since the data is thrown away. */
    snprintf(exe, sizeof exe, "%s/postgres", pg->bindir);
    snprintf(port, sizeof port, "%d", pg->port);
    char sockopt[200];
    snprintf(sockopt, sizeof sockopt, "unix_socket_directories=%s", tmpl);
    char listen[64];
    snprintf(listen, sizeof listen, "listen_addresses=%s", pg->tcp_host);
    char *pg_argv[] = { exe, "-D", datadir, "-p", port,
                        "-c", sockopt, "-c", listen,
                        "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                        tls ? "-c" : NULL, "ssl=on", NULL };
    pid = spawn(&ra, pg->dir, pg_argv, envp, logfd, SIGQUIT);
    int e = errno;
    close(logfd);
    free(envp);
    if (pid < 0)
        return fail(pg, 0, "cannot start postgres: %s", strerror(e));
    pg->pid = pid;

    /* Ready when postmaster.pid says so; a dead child or a timeout is a failure. */
    for (;;) {
        if (postmaster_ready(datadir, pid))
            break;
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            char how[128] = "exited";
            if (r == pid)
                describe_status(st, how, sizeof how);
            pg->pid = 0;
            return fail(pg, 1, "the server stopped during start-up (%s)", how);
        }
        if ((now_s() - t0) * 1000 > PG_READY_TIMEOUT_MS)
            return fail(pg, 1, "the server was not ready after %d s", PG_READY_TIMEOUT_MS / 1000);
        sleep_ms(PG_POLL_MS);
    }

    char host_enc[400];
    url_encode(tmpl, host_enc, sizeof host_enc);
    snprintf(pg->url, sizeof pg->url, "postgresql://%s@/%s?host=%s&port=%d", pg->user, pg->database, host_enc,
             pg->port);
    pg->running = 1;
    pg->tls = tls;
    pg->start_seconds = now_s() - t0;
    if (verbose)
        fprintf(stderr, "connleak: PostgreSQL %s ready in %.2f s (initdb %.2f s; PGHOST=%s, PGPORT=%d)\n",
                pg->version, pg->start_seconds, initdb_s, pg->host, pg->port);
    return 0;
}

void clk_pg_export(const struct clk_pg *pg)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pg->port);
    setenv("PGHOST", pg->host, 1);
    setenv("PGPORT", port, 1);
    setenv("PGUSER", pg->user, 1);
    setenv("PGDATABASE", pg->database, 1);
    setenv("DATABASE_URL", pg->url, 1);
    /* the same server on loopback TCP (and whether it offers TLS there) */
    if (pg->tcp_host[0]) {
        setenv("CONNLEAK_PG_TCP_HOST", pg->tcp_host, 1);
        setenv("CONNLEAK_PG_TLS", pg->tls ? "1" : "0", 1);
    }
    /* These would send clients elsewhere or make them demand what a trust-auth socket cannot give. */
    unsetenv("PGPASSWORD");
    unsetenv("PGSERVICE");
    unsetenv("PGHOSTADDR");
    unsetenv("PGREQUIREAUTH");
    unsetenv("PGCHANNELBINDING");
    unsetenv("PGTARGETSESSIONATTRS");
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

/* Waits until pid has gone; 1 when it did within ms. ECHILD means it was reaped already (or SIGCHLD is ignored). */
static int wait_gone(pid_t pid, long ms)
{
    for (long waited = 0;; waited += PG_POLL_MS) {
        int r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 1;
        if (waited >= ms)
            return 0;
        sleep_ms(PG_POLL_MS);
    }
}

void clk_pg_stop(struct clk_pg *pg)
{
    if (pg->pid > 0) {
        /* Signal only a child that is still ours: a pid reaped elsewhere may belong to someone else now. */
        int r = waitpid(pg->pid, NULL, WNOHANG);
        if (r == 0) {
            /* Immediate shutdown: the postmaster stops its backends and exits; no checkpoint for data we discard. */
            kill(pg->pid, SIGQUIT);
            if (!wait_gone(pg->pid, PG_STOP_TIMEOUT_MS)) {
                kill(pg->pid, SIGKILL);
                wait_gone(pg->pid, PG_STOP_TIMEOUT_MS);
            }
        }
        pg->pid = 0;
    }
    pg->running = 0;
    if (pg->dir[0]) {
        nftw(pg->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        pg->dir[0] = '\0';
    }
}
