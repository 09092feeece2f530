/* churn.c — opens and closes connections in a loop and prints the time per pair: the detector's worst case. */
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *mode;
static long pairs;
static const char *file_path;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        if (!strcmp(mode, "pq")) {
            PGconn *c = PQconnectdb("");
            if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "churn: %s", PQerrorMessage(c));
                exit(1);
            }
            PQfinish(c);
        } else {
            sqlite3 *db;
            if (sqlite3_open(!strcmp(mode, "file") ? file_path : ":memory:", &db) != SQLITE_OK)
                exit(1);
            sqlite3_close(db);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: churn memory|file|pq PAIRS THREADS [FILE]\n");
        return 2;
    }
    mode = argv[1];
    pairs = atol(argv[2]);
    int threads = atoi(argv[3]);
    file_path = argc > 4 ? argv[4] : "/tmp/connleak-churn.db";
    pthread_t t[64];
    if (threads < 1 || threads > 64)
        return 2;
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, work, (void *)(intptr_t)(pairs / threads));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now() - t0;
    /* one line, machine-readable: seconds and ns per pair (per thread: wall time / pairs per thread) */
    printf("%.6f %.1f\n", dt, dt * 1e9 / (double)(pairs / threads));
    return 0;
}
