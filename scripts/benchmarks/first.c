/* first.c — what the first events cost: in a fresh process and in fresh threads, and a short-lived process whole.
 *
 *   first inproc [THREADS]  times the first sqlite3_open(":memory:") right at main (the process's first
 *                           event) and its close, then a second pair, then the same in each of THREADS
 *                           (default 8) fresh threads (one after another); prints
 *                           "main_open main_close main_second_pair thread_open thread_close
 *                           thread_second_pair" in us (thread figures: the median over the threads)
 *   first once              one open+close and exit: a short-lived test process
 *   first spawn N PRELOAD RUNDIR
 *                           runs `first once` N times plain and N times preloaded (interleaved, each
 *                           preloaded run with its own CONNLEAK_RUN_DIR under RUNDIR) and prints the
 *                           medians of the whole process's wall time, fork to reaped: "plain_us preloaded_us" */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One open+close: the open's and the close's time in us. */
struct pair_times {
    double open, close;
};

static struct pair_times pair_split(void)
{
    double t0 = now_us();
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        exit(1);
    double t1 = now_us();
    sqlite3_close(db);
    return (struct pair_times){t1 - t0, now_us() - t1};
}

static double pair_us(void)
{
    struct pair_times p = pair_split();
    return p.open + p.close;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct thread_times {
    struct pair_times first;
    double second;
};

static void *in_thread(void *arg)
{
    struct thread_times *t = arg;
    t->first = pair_split();
    t->second = pair_us();
    return NULL;
}

static int inproc(int nthreads)
{
    struct pair_times main_first = pair_split();
    double main_second = pair_us();
    double opens[64], closes[64], second[64];
    if (nthreads < 1 || nthreads > 64)
        nthreads = 8;
    for (int i = 0; i < nthreads; i++) {
        pthread_t th;
        struct thread_times t;
        pthread_create(&th, NULL, in_thread, &t);
        pthread_join(th, NULL);
        opens[i] = t.first.open;
        closes[i] = t.first.close;
        second[i] = t.second;
    }
    printf("%.1f %.1f %.1f %.1f %.1f %.1f\n", main_first.open, main_first.close, main_second, median(opens, nthreads),
           median(closes, nthreads), median(second, nthreads));
    return 0;
}

static double spawn_once(const char *self, const char *preload, const char *run_dir)
{
    double t0 = now_us();
    pid_t pid = fork();
    if (pid == 0) {
        if (preload) {
            setenv("LD_PRELOAD", preload, 1);
            setenv("CONNLEAK_RUN_DIR", run_dir, 1);
        } else {
            unsetenv("LD_PRELOAD");
            unsetenv("CONNLEAK_RUN_DIR");
        }
        execl(self, self, "once", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    double dt = now_us() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "first: child failed\n");
        exit(1);
    }
    return dt;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "once")) {
        pair_us();
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "inproc"))
        return inproc(argc > 2 ? atoi(argv[2]) : 8);
    if (argc == 5 && !strcmp(argv[1], "spawn")) {
        int n = atoi(argv[2]);
        if (n < 1 || n > 10000)
            return 2;
        double *plain = calloc((size_t)n, sizeof *plain), *pre = calloc((size_t)n, sizeof *pre);
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0 || !plain || !pre)
            return 1;
        self[len] = 0;
        for (int i = 0; i < n; i++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/spawn-%d", argv[4], i);
            mkdir(dir, 0700);
            plain[i] = spawn_once(self, NULL, NULL);
            pre[i] = spawn_once(self, argv[3], dir);
        }
        printf("%.1f %.1f\n", median(plain, n), median(pre, n));
        return 0;
    }
    fprintf(stderr, "usage: first inproc [THREADS] | once | spawn N PRELOAD RUNDIR\n");
    return 2;
}
