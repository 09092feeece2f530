/* poolbench.c — dbconf checkout+checkin per pair on one engine, shared by THREADS threads.
 *
 *   poolbench URL PAIRS THREADS untracked|tracked
 *
 * Prints "wall_seconds ns_per_pair" (ns per pair: wall time / pairs per thread, what one thread
 * sees). "tracked" calls connleak_track_pool on the engine; "untracked" needs $DBCONF_TRACK=0
 * (set by scripts/bench) since dbconf tracks on its own under the detector. One warm-up pair per
 * thread opens the pool's connections before the clock starts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbconf.h"

static dbconf_engine *engine;
static long per_thread;
static pthread_barrier_t warm, go;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void one_pair(void)
{
    char err[256];
    dbconf_conn *c = dbconf_checkout(engine, err, sizeof err);
    if (!c) {
        fprintf(stderr, "poolbench: %s\n", err);
        exit(1);
    }
    dbconf_checkin(c);
}

static void *run(void *arg)
{
    one_pair();
    pthread_barrier_wait(&warm);
    pthread_barrier_wait(&go);
    for (long i = 0; i < per_thread; i++)
        one_pair();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[4], "tracked") && strcmp(argv[4], "untracked"))) {
        fprintf(stderr, "usage: poolbench URL PAIRS THREADS untracked|tracked\n");
        return 2;
    }
    long pairs = atol(argv[2]);
    int threads = atoi(argv[3]);
    if (threads < 1 || threads > 64 || pairs < threads)
        return 2;
    char err[512];
    dbconf_config *cfg = dbconf_config_new(argv[1], err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "poolbench: %s\n", err);
        return 1;
    }
    engine = dbconf_engine_get(cfg, err, sizeof err);
    if (!engine) {
        fprintf(stderr, "poolbench: %s\n", err);
        return 1;
    }
    int want = !strcmp(argv[4], "tracked");
    if (want && connleak_track_pool(engine) != 0) {
        fprintf(stderr, "poolbench: connleak_track_pool failed\n");
        return 1;
    }
    if (dbconf_engine_tracked(engine) != want) {
        fprintf(stderr, "poolbench: engine is %stracked (set DBCONF_TRACK=0 for untracked)\n", want ? "not " : "");
        return 1;
    }
    per_thread = pairs / threads;
    pthread_t t[64];
    pthread_barrier_init(&warm, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run, NULL);
    pthread_barrier_wait(&warm);
    double t0 = now();
    pthread_barrier_wait(&go);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now() - t0;
    printf("%.6f %.1f\n", dt, dt * 1e9 / (double)per_thread);
    dbconf_engine_dispose(engine);
    dbconf_config_free(cfg);
    return 0;
}
