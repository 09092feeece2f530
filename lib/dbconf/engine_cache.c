/* engine_cache.c — engines cached per (thread, configuration), disposed when their thread or the process exits. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* The page keeps one engine per event loop; a C program's counterpart of a
 * loop is its thread. The key also holds the pool settings, not only echo
 * and the statement timeout: otherwise a second configuration differing only
 * in pool size would silently get the first one's pool. */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static dbconf_engine *cache_head; /* under cache_mu */
/* Engines disposed at process exit but kept in memory: still reachable from
 * here, so leak checkers (LeakSanitizer, Valgrind) do not call them leaks. */
static dbconf_engine *retired;
static size_t cache_n;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int auto_track;

static void dispose_matching(int (*match)(const dbconf_engine *, const void *), const void *ctx, int keep_memory);

static int owned_by_me(const dbconf_engine *e, const void *ctx)
{
    return pthread_equal(e->owner, pthread_self());
}

static int any_engine(const dbconf_engine *e, const void *ctx)
{
    return 1;
}

static int has_key(const dbconf_engine *e, const void *ctx)
{
    return strcmp(e->cfg->key, ctx) == 0;
}

/* pthread key destructor: runs in a thread that exits (pthread_exit or
 * returning from its start routine) and once got an engine. */
static void on_thread_exit(void *unused)
{
    dispose_matching(owned_by_me, NULL, 0);
}

/* At exit other threads may still hold engine pointers: close the
 * connections but leave the engines' memory to the process's end. Runs
 * before the recorder's destructor, so pooled connections are closed by the
 * time it reports. */
static void on_process_exit(void)
{
    dispose_matching(any_engine, NULL, 1);
}

/* A forked child shares its parent's sockets and files: closing inherited
 * connections would end the parent's sessions, so the child forgets them. */
static void before_fork(void) { pthread_mutex_lock(&cache_mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&cache_mu); }
static void after_fork_child(void)
{
    pthread_mutex_init(&cache_mu, NULL);
    cache_head = NULL;
    cache_n = 0;
}

static int env_bool(const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    *out = strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0;
    return 1;
}

static void init_once(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
    atexit(on_process_exit);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    /* under the detector every engine is tracked, as the page tracks pools
     * whenever its tracker is active; $DBCONF_TRACK overrides */
    if (!env_bool("DBCONF_TRACK", &auto_track)) {
        const char *pre = getenv("LD_PRELOAD");
        auto_track = (pre && strstr(pre, "libconnleak")) || getenv("CONNLEAK_RUN_DIR") != NULL;
    }
}

int dbc_auto_track(void)
{
    pthread_once(&once, init_once);
    return auto_track;
}

static int same_settings(const dbconf_engine *e, const dbconf_config *cfg, int test_mode)
{
    const dbconf_config *a = e->cfg;
    return a->kind == cfg->kind && strcmp(a->url, cfg->url) == 0 && a->echo == cfg->echo &&
           a->timeout == cfg->timeout && a->connect_timeout == cfg->connect_timeout &&
           e->pool_size == dbconf_config_pool_size(cfg) && e->max_overflow == dbconf_config_max_overflow(cfg) &&
           a->pool_timeout == cfg->pool_timeout && e->test_mode == test_mode;
}

DBC_PUBLIC dbconf_engine *dbconf_engine_get(const dbconf_config *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        dbc_fail(err, errlen, "dbconf: engine needs a configuration");
        return NULL;
    }
    pthread_once(&once, init_once);
    int test_mode = dbconf_config_test_mode(cfg, err, errlen);
    if (test_mode < 0)
        return NULL;
    pthread_t self = pthread_self();

    pthread_mutex_lock(&cache_mu);
    for (dbconf_engine *e = cache_head; e; e = e->cache_next)
        if (pthread_equal(e->owner, self) && same_settings(e, cfg, test_mode)) {
            pthread_mutex_unlock(&cache_mu);
            return e;
        }
    pthread_mutex_unlock(&cache_mu);

    /* only this thread adds engines it owns, so nobody can add the same key
     * while we build it outside the lock */
    dbconf_engine *e = dbc_engine_new(cfg, err, errlen);
    if (!e)
        return NULL;
    pthread_mutex_lock(&cache_mu);
    e->cache_next = cache_head;
    cache_head = e;
    e->cached = 1;
    cache_n++;
    pthread_mutex_unlock(&cache_mu);
    /* any non-NULL value makes the destructor run at this thread's exit */
    pthread_setspecific(exit_key, (void *)1);
    if (auto_track)
        connleak_track_pool(e);
    return e;
}

/* Unlinks the matching engines under the lock, then disposes them without
 * it (disposal emits events, whose listeners may come back here). */
static void dispose_matching(int (*match)(const dbconf_engine *, const void *), const void *ctx, int keep_memory)
{
    dbconf_engine *taken = NULL;
    pthread_mutex_lock(&cache_mu);
    dbconf_engine **pp = &cache_head;
    while (*pp) {
        dbconf_engine *e = *pp;
        if (match(e, ctx)) {
            *pp = e->cache_next;
            e->cached = 0;
            cache_n--;
            e->cache_next = taken;
            taken = e;
        } else {
            pp = &e->cache_next;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    while (taken) {
        dbconf_engine *next = taken->cache_next;
        if (keep_memory) {
            pthread_mutex_lock(&taken->mu);
            taken->refs++; /* never dropped */
            pthread_mutex_unlock(&taken->mu);
            pthread_mutex_lock(&cache_mu);
            taken->cache_next = retired;
            retired = taken;
            pthread_mutex_unlock(&cache_mu);
        }
        dbc_pool_dispose(taken);
        taken = next;
    }
}

DBC_PUBLIC void dbconf_engine_dispose(dbconf_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&cache_mu);
    if (e->cached) {
        for (dbconf_engine **pp = &cache_head; *pp; pp = &(*pp)->cache_next)
            if (*pp == e) {
                *pp = e->cache_next;
                cache_n--;
                break;
            }
        e->cached = 0;
    }
    pthread_mutex_unlock(&cache_mu);
    dbc_pool_dispose(e);
}

DBC_PUBLIC void dbconf_dispose_thread_engines(void)
{
    dispose_matching(owned_by_me, NULL, 0);
}

DBC_PUBLIC void dbconf_dispose_all_engines(void)
{
    dispose_matching(any_engine, NULL, 0);
}

void dbc_dispose_key(const char *key)
{
    dispose_matching(has_key, key, 0);
}

int dbc_cache_has_key(const char *key)
{
    int found = 0;
    pthread_mutex_lock(&cache_mu);
    for (dbconf_engine *e = cache_head; e && !found; e = e->cache_next)
        found = strcmp(e->cfg->key, key) == 0;
    pthread_mutex_unlock(&cache_mu);
    return found;
}

DBC_PUBLIC size_t dbconf_engine_cache_size(void)
{
    pthread_mutex_lock(&cache_mu);
    size_t n = cache_n;
    pthread_mutex_unlock(&cache_mu);
    return n;
}
