#include "stores/engine/spare.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"

/* After a failed open (Neo4j down), the next try waits this long. */
#define SPARE_RETRY_MS 1000

/* Waits on the condition until monotonic time `at_ms` (or a signal). Lock held. */
static void wait_until(struct spare *s, int64_t at_ms)
{
    int64_t left = at_ms - time_monotonic_ms();
    if (left <= 0)
        return;
    struct timespec until = time_realtime_after_ms(left);
    pthread_cond_timedwait(&s->cond, &s->lock, &until);
}

/* Rolls back a spare that was never taken (best effort: it holds no lock). */
static void discard(struct spare *s, const char *path)
{
    struct neo4j_result r = {0};
    neo4j_rollback(s->client, path, &r);
    neo4j_result_clear(&r);
}

static void *opener_main(void *arg)
{
    struct spare *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int64_t now = time_monotonic_ms();
        bool current = s->path_gen == s->gen;
        if (s->path[0] && current && now - s->opened_ms < SPARE_MAX_AGE_MS) {
            wait_until(s, s->opened_ms + SPARE_MAX_AGE_MS);
            continue;
        }
        if (s->path[0]) { /* too old to trust, or begun before the schema changed */
            char old[NEO4J_TX_PATH_MAX];
            snprintf(old, sizeof old, "%s", s->path);
            s->path[0] = '\0';
            pthread_mutex_unlock(&s->lock);
            discard(s, old);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (now < s->retry_at_ms) {
            wait_until(s, s->retry_at_ms);
            continue;
        }
        uint64_t gen = s->gen;
        pthread_mutex_unlock(&s->lock);
        char path[NEO4J_TX_PATH_MAX];
        struct neo4j_result r = {0};
        bool opened = neo4j_begin(s->client, path, &r) == NEO4J_OK;
        neo4j_result_clear(&r);
        pthread_mutex_lock(&s->lock);
        if (opened && !s->stopping) {
            snprintf(s->path, sizeof s->path, "%s", path);
            s->path_gen = gen; /* the loop retires it if the schema changed meanwhile */
            s->opened_ms = time_monotonic_ms();
            s->retry_at_ms = 0;
        } else {
            s->retry_at_ms = time_monotonic_ms() + SPARE_RETRY_MS;
            if (opened) { /* stopping */
                pthread_mutex_unlock(&s->lock);
                discard(s, path);
                pthread_mutex_lock(&s->lock);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int spare_start(struct spare *s, const struct neo4j_config *cfg)
{
    s->path[0] = '\0';
    s->opened_ms = s->retry_at_ms = 0;
    s->gen = s->path_gen = 0;
    s->stopping = false;
    s->started = false;
    s->client = neo4j_client_new(cfg);
    if (!s->client)
        return -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, opener_main, s) != 0) {
        log_warn("cannot start the spare transaction thread; writes open their own");
        return -1;
    }
    s->started = true;
    return 0;
}

void spare_stop(struct spare *s)
{
    if (!s->client)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        if (s->path[0])
            discard(s, s->path);
        s->path[0] = '\0';
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    neo4j_client_free(s->client);
    s->client = NULL;
    s->started = false;
}

bool spare_take(struct spare *s, char path[NEO4J_TX_PATH_MAX])
{
    if (!s->started)
        return false;
    pthread_mutex_lock(&s->lock);
    bool fresh = s->path[0] && s->path_gen == s->gen &&
                 time_monotonic_ms() - s->opened_ms < SPARE_MAX_AGE_MS;
    if (fresh) {
        snprintf(path, NEO4J_TX_PATH_MAX, "%s", s->path);
        s->path[0] = '\0';
    }
    pthread_cond_signal(&s->cond); /* open the next one (or replace an old one) */
    pthread_mutex_unlock(&s->lock);
    return fresh;
}

void spare_schema_changed(struct spare *s)
{
    if (!s->started)
        return;
    pthread_mutex_lock(&s->lock);
    s->gen++;
    pthread_cond_signal(&s->cond); /* roll back the one held, open a new one */
    pthread_mutex_unlock(&s->lock);
}
