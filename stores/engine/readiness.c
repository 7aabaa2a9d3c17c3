/*
 * Readiness: whether the gateway takes writes, and why not (DESIGN.md
 * invariant 9). The writer sets it (ready once recovery is done; not ready
 * when Neo4j fails, SQLite's commit fails, the stores are out of step);
 * an intent Neo4j refuses keeps it not ready, with a reason that names the
 * intent, until it is resolved. /readyz also asks Neo4j, at most once a
 * second, from the HTTP thread, with a client of its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/metrics.h"
#include "common/timeutil.h"
#include "stores/engine/internal.h"
#include "stores/sqlite/testvfs.h"

#define READY_PING_INTERVAL_MS 1000

void readiness_set(struct engine *e, bool ready, const char *reason_fmt, ...)
{
    pthread_mutex_lock(&e->lock);
    bool was = e->ready;
    e->ready = ready;
    va_list ap;
    va_start(ap, reason_fmt);
    vsnprintf(e->reason, sizeof e->reason, reason_fmt, ap);
    va_end(ap);
    /* logged from a copy: another thread may set the reason meanwhile
     * (TSan saw the monitor's probe write it while the writer logged it) */
    char reason[sizeof e->reason];
    memcpy(reason, e->reason, sizeof reason);
    pthread_mutex_unlock(&e->lock);
    if (was != ready) {
        if (ready) {
            metrics_recovery_end();
            log_info("ready: accepting writes");
            testvfs_hit("ready");
        } else {
            metrics_recovery_begin();
            log_warn("not ready: %s", reason);
        }
    }
}

void readiness_set_stuck(struct engine *e, int64_t seq, const char *reason)
{
    pthread_mutex_lock(&e->lock);
    e->stuck_seq = seq;
    e->ready = false;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    pthread_mutex_unlock(&e->lock);
}

void readiness_clear_stuck(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->stuck_seq = 0;
    pthread_mutex_unlock(&e->lock);
}

int64_t readiness_stuck_seq(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    int64_t seq = e->stuck_seq;
    pthread_mutex_unlock(&e->lock);
    return seq;
}

void readiness_note_ping(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->last_ping_ms = time_monotonic_ms();
    pthread_mutex_unlock(&e->lock);
}

bool readiness_is_ready(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    bool ready = e->ready;
    pthread_mutex_unlock(&e->lock);
    return ready;
}

bool engine_ready(struct engine *e, char *reason, size_t cap)
{
    pthread_mutex_lock(&e->lock);
    bool ready = e->ready;
    bool ping = ready && time_monotonic_ms() - e->last_ping_ms >= READY_PING_INTERVAL_MS;
    if (e->stuck_seq) { /* its reason stays: Neo4j answering changes nothing */
        snprintf(reason, cap, "%s", e->reason);
        pthread_mutex_unlock(&e->lock);
        return false;
    }
    pthread_mutex_unlock(&e->lock);
    if (ping) {
        /* "Neo4j answers" is part of ready: ask it, at most once a second. */
        struct neo4j_client *c = neo4j_pool_get(e->readiness_pool);
        char version[64];
        bool up = c && neo4j_ping(c, version, sizeof version);
        neo4j_pool_put(e->readiness_pool, c);
        if (up) {
            readiness_note_ping(e);
        } else {
            readiness_set(e, false, "Neo4j at %s does not answer", e->neo4j_cfg.url);
            pthread_mutex_lock(&e->lock);
            pthread_cond_signal(&e->wake); /* the writer retries recovery */
            pthread_mutex_unlock(&e->lock);
            ready = false;
        }
    }
    pthread_mutex_lock(&e->lock);
    ready = ready && e->ready;
    snprintf(reason, cap, "%s", e->reason);
    pthread_mutex_unlock(&e->lock);
    return ready;
}

bool engine_fenced(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    bool fenced = e->fenced;
    pthread_mutex_unlock(&e->lock);
    return fenced;
}

int64_t engine_epoch(const struct engine *e)
{
    return e->epoch; /* set by engine_open, constant after */
}
