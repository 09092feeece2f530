/* churn.c — opens and closes connections in a loop and prints the time per pair: the detector's worst case.
 *
 *   churn memory|file|pq|sockwrite|sockconnect PAIRS THREADS [FILE]
 *
 * sockwrite: a 1-byte write on a loopback TCP connection and its read, a pair (a write that is no
 * PostgreSQL candidate: what every program's writes cost under the wire route); sockconnect: a
 * socket connected to a loopback listener of the thread's own, accepted, both closed.
 *
 * prints one line: wall_seconds ns_per_pair cpu_seconds thread_ns_per_pair thread_cpu_ns_per_pair vcsw_per_1000
 *   ns_per_pair            wall time / pairs per thread (what one thread sees)
 *   cpu_seconds            user+system time of the whole process
 *   thread_ns_per_pair     mean over threads of each thread's own loop time / its pairs
 *   thread_cpu_ns_per_pair mean over threads of each thread's CPU time / its pairs
 *   vcsw_per_1000          voluntary context switches (blocking waits, e.g. on a lock) per 1000 pairs
 * $CHURN_DEPTH=N runs the loop N call frames deeper (a test's stack is rarely 3 frames deep).
 * Each thread first opens and closes one connection untimed (the first event in a thread pays
 * one-time set-up: scripts/bench measures that apart), then the threads start together behind
 * a barrier; only their loops are timed. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

static const char *mode;
static const char *file_path;
static int depth;
static pthread_barrier_t start_line;
static volatile int sink;

struct job {
    long pairs;
    double wall, cpu;
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each thread's loopback listener, and for sockwrite a connection to it (client, server side). */
static __thread int listen_fd = -1, client_fd = -1, server_fd = -1;
static __thread struct sockaddr_in listen_addr;

static int loopback_connect(void)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) {
        perror("churn: connect");
        exit(1);
    }
    return c;
}

static void socket_setup(void)
{
    socklen_t len = sizeof listen_addr;
    listen_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0 ||
        getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len) < 0 || listen(listen_fd, 64) < 0) {
        perror("churn: listener");
        exit(1);
    }
    client_fd = loopback_connect();
    server_fd = accept(listen_fd, NULL, NULL);
}

/* `work` is what callgrind's --toggle-collect=work counts: the loop alone. */
__attribute__((noinline)) void work(long n)
{
    int pq = !strcmp(mode, "pq"), sockwrite = !strcmp(mode, "sockwrite"), sockconnect = !strcmp(mode, "sockconnect");
    const char *name = !strcmp(mode, "file") ? file_path : ":memory:";
    for (long i = 0; i < n; i++) {
        if (sockwrite) {
            char b = 'x';
            if (write(client_fd, &b, 1) != 1 || read(server_fd, &b, 1) != 1) {
                perror("churn: loopback write");
                exit(1);
            }
        } else if (sockconnect) {
            int c = loopback_connect(), a = accept(listen_fd, NULL, NULL);
            close(c);
            close(a);
        } else if (pq) {
            PGconn *c = PQconnectdb("");
            if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "churn: %s", PQerrorMessage(c));
                exit(1);
            }
            PQfinish(c);
        } else {
            sqlite3 *db;
            if (sqlite3_open(name, &db) != SQLITE_OK) {
                fprintf(stderr, "churn: %s: %s\n", name, db ? sqlite3_errmsg(db) : "out of memory");
                exit(1);
            }
            sqlite3_close(db);
        }
    }
}

/* Extra frames under the loop: not a tail call, not inlined. */
__attribute__((noinline)) static void deeper(int left, long n)
{
    if (left <= 0)
        work(n);
    else
        deeper(left - 1, n);
    sink++;
}

/* Not `work`: callgrind counts the loop alone. */
__attribute__((noinline)) static void warm_up(void)
{
    if (!strncmp(mode, "sock", 4)) {
        socket_setup();
        char b = 'x';
        if (write(client_fd, &b, 1) != 1 || read(server_fd, &b, 1) != 1)
            exit(1);
        return;
    }
    if (!strcmp(mode, "pq")) {
        PQfinish(PQconnectdb(""));
        return;
    }
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    sqlite3_close(db);
}

static void *run(void *arg)
{
    struct job *j = arg;
    warm_up();
    pthread_barrier_wait(&start_line);
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    deeper(depth, j->pairs);
    j->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    j->wall = clock_s(CLOCK_MONOTONIC) - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: churn memory|file|pq|sockwrite|sockconnect PAIRS THREADS [FILE]\n");
        return 2;
    }
    mode = argv[1];
    long pairs = atol(argv[2]);
    int threads = atoi(argv[3]);
    file_path = argc > 4 ? argv[4] : "/tmp/connleak-churn.db";
    depth = getenv("CHURN_DEPTH") ? atoi(getenv("CHURN_DEPTH")) : 0;
    int known = !strcmp(mode, "memory") || !strcmp(mode, "file") || !strcmp(mode, "pq") ||
                !strcmp(mode, "sockwrite") || !strcmp(mode, "sockconnect");
    if (threads < 1 || threads > 64 || pairs < threads || !known) {
        fprintf(stderr, "usage: churn memory|file|pq|sockwrite|sockconnect PAIRS THREADS [FILE] (1-64 threads)\n");
        return 2;
    }
    pthread_t t[64];
    struct job jobs[64];
    pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        jobs[i].pairs = pairs / threads;
        pthread_create(&t[i], NULL, run, &jobs[i]);
    }
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = clock_s(CLOCK_MONOTONIC);
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = clock_s(CLOCK_MONOTONIC) - t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    double tw = 0, tc = 0;
    for (int i = 0; i < threads; i++) {
        tw += jobs[i].wall * 1e9 / (double)jobs[i].pairs;
        tc += jobs[i].cpu * 1e9 / (double)jobs[i].pairs;
    }
    long per = pairs / threads;
    printf("%.6f %.1f %.6f %.1f %.1f %.2f\n", dt, dt * 1e9 / (double)per, cpu, tw / threads, tc / threads,
           (double)(r1.ru_nvcsw - r0.ru_nvcsw) * 1000.0 / (double)(per * threads));
    return 0;
}
