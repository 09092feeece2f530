/* exit_fixture.c — a small program for test_cache.c: uses an engine, then ends by process exit or thread exit, printing the pool events it sees. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbconf.h"

/* write(2), not stdio: the last events come from exit handlers, after
 * which stdout may no longer be flushed */
static void say(dbconf_event ev, dbconf_engine *e, dbconf_conn *c, void *user)
{
    static const char *const names[] = {"?", "connect", "checkout", "checkin", "close", "close_detached"};
    char line[64];
    int n = snprintf(line, sizeof line, "%s %s\n", (const char *)user, names[ev]);
    if (write(1, line, (size_t)n) != n)
        _exit(3);
}

static const char *url;

static int use_engine(const char *who)
{
    char err[512];
    dbconf_config *cfg = dbconf_config_new(url, err, sizeof err);
    dbconf_engine *e = cfg ? dbconf_engine_get(cfg, err, sizeof err) : NULL;
    if (!e) {
        fprintf(stderr, "exit_fixture: %s\n", err);
        return -1;
    }
    dbconf_pool_subscribe(e, DBCONF_EVENTS_ALL, say, (void *)who);
    dbconf_conn *c = dbconf_checkout(e, err, sizeof err);
    if (!c) {
        fprintf(stderr, "exit_fixture: %s\n", err);
        return -1;
    }
    dbconf_checkin(c);
    dbconf_config_free(cfg);
    return 0;
}

static void *thread_main(void *arg)
{
    if (use_engine("thread") != 0)
        exit(2);
    return NULL; /* its engine is disposed as the thread ends */
}

/* usage: exit_fixture URL exit|thread */
int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    url = argv[1];
    if (strcmp(argv[2], "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, NULL);
        if (write(1, "main joined\n", 12) != 12)
            return 3;
        return 0;
    }
    if (use_engine("main") != 0)
        return 2;
    if (write(1, "main returns\n", 13) != 13)
        return 3;
    return 0; /* exit handlers dispose the engine */
}
