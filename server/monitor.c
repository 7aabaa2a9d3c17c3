#include "server/monitor.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alerts.h"
#include "common/log.h"
#include "common/metrics.h"
#include "server/webhook.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
/* Runs listed to find the newest finished one. */
#define RECON_LOOKBACK 10

struct monitor {
    struct bistore *store;
    struct config cfg;
    struct webhook *webhook;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    pthread_t thread;
    int64_t neo4j_down_since_ms; /* 0: up */
    int64_t recovered_at_ms;     /* when the last recovery ended; 0: not seen */
    int64_t was_recovering_ms;
};

static int64_t now_ms(void)
{
    return metrics_now_us() / 1000;
}

static void notify(void *arg, json_t *event)
{
    webhook_enqueue(arg, event);
}

static const char *text_or(const json_t *s, const char *fallback)
{
    const char *v = json_string_value(s);
    return v ? v : fallback;
}

static const char *const kinds[RK_KINDS] = {"only_in_sqlite", "only_in_neo4j", "mismatched",
                                            "duplicate_ids", "missing_ids"};

/* The newest finished reconciliation: its findings into the metrics, and
 * the alert when it found disagreements. */
static void judge_reconciliation(struct monitor *m)
{
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (bistore_reconcile_list(m->store, NULL, RECON_LOOKBACK, &items, &next, &err) != 0) {
        free(next);
        return;
    }
    free(next);
    size_t i;
    json_t *run, *done = NULL;
    json_array_foreach (items, i, run) {
        if (strcmp(text_or(json_object_get(run, "state"), ""), "done") == 0) {
            done = run;
            break;
        }
    }
    if (done) {
        json_t *sum = json_object_get(done, "summary");
        long long found = 0;
        for (int k = 0; k < RK_KINDS; k++) {
            long long v = json_integer_value(json_object_get(sum, kinds[k]));
            atomic_store_explicit(&metrics_g.recon_findings[k], v, memory_order_relaxed);
            found += v;
        }
        atomic_store_explicit(&metrics_g.recon_known, 1, memory_order_relaxed);
        char msg[ALERT_MESSAGE_MAX];
        snprintf(msg, sizeof msg,
                 "reconciliation %s found %lld disagreements between SQLite and Neo4j "
                 "(GET /v1/reconciliations/%s/findings)",
                 text_or(json_object_get(done, "id"), "?"), found,
                 text_or(json_object_get(done, "id"), "?"));
        alerts_set(ALERT_RECONCILIATION_DISAGREES, found > 0, (double)found, 0, msg);
    }
    json_decref(items);
}

static void judge(struct monitor *m)
{
    const struct config *c = &m->cfg;
    int64_t now = now_ms();
    char msg[ALERT_MESSAGE_MAX];

    /* Readiness asks Neo4j (at most once a second), which keeps neo4j_up fresh. */
    char reason[512];
    bistore_ready(m->store, reason, sizeof reason);

    if (LOAD(metrics_g.neo4j_up)) {
        m->neo4j_down_since_ms = 0;
    } else if (!m->neo4j_down_since_ms) {
        m->neo4j_down_since_ms = now;
    }
    double down_s = m->neo4j_down_since_ms ? (double)(now - m->neo4j_down_since_ms) / 1000 : 0;
    snprintf(msg, sizeof msg, "Neo4j has not answered for %.0f s", down_s);
    alerts_set(ALERT_NEO4J_UNREACHABLE,
               m->neo4j_down_since_ms && down_s >= (double)c->alert_neo4j_s, down_s,
               (double)c->alert_neo4j_s, msg);

    struct stats_window w;
    stats_ring_window(&metrics_g.ring, now / 1000, (int)c->alert_failure_window_s, &w);
    double rate = w.transactions ? (double)w.tx[TX_FAILED] / (double)w.transactions : 0;
    snprintf(msg, sizeof msg, "%llu of %llu write transactions failed (5xx) in the last %u s",
             (unsigned long long)w.tx[TX_FAILED], (unsigned long long)w.transactions,
             c->alert_failure_window_s);
    alerts_set(ALERT_FAILURE_RATE,
               w.tx[TX_FAILED] >= c->alert_failure_min && rate > c->alert_failure_rate, rate,
               c->alert_failure_rate, msg);

    snprintf(msg, sizeof msg, "%llu creates refused in the last %u s: the id exists already",
             (unsigned long long)w.conflicts, c->alert_failure_window_s);
    alerts_set(ALERT_ID_CONFLICTS, w.conflicts >= c->alert_id_conflicts, (double)w.conflicts,
               (double)c->alert_id_conflicts, msg);

    /* Recovery: active while one runs longer than the threshold, and for a
     * window after a slow one ended (so it is seen). */
    int64_t since = LOAD(metrics_g.recovering_since_ms);
    if (!since && m->was_recovering_ms)
        m->recovered_at_ms = now;
    m->was_recovering_ms = since;
    double threshold = (double)c->alert_recovery_s;
    if (since) {
        double took = (double)(now - since) / 1000;
        snprintf(msg, sizeof msg, "recovery has taken %.0f s so far (not ready)", took);
        alerts_set(ALERT_RECOVERY_SLOW, took > threshold, took, threshold, msg);
    } else {
        double took = (double)LOAD(metrics_g.recovery_last_ms) / 1000;
        bool recent = m->recovered_at_ms &&
                      now - m->recovered_at_ms < (int64_t)c->alert_failure_window_s * 1000;
        snprintf(msg, sizeof msg, "the last recovery took %.1f s", took);
        alerts_set(ALERT_RECOVERY_SLOW, recent && took > threshold, took, threshold, msg);
    }

    int64_t pending_since = LOAD(metrics_g.pending_since_ms);
    double age = pending_since ? (double)(now - pending_since) / 1000 : 0;
    snprintf(msg, sizeof msg, "%lld intents pending, the oldest for %.0f s (Neo4j behind SQLite)",
             (long long)LOAD(metrics_g.intents_pending), age);
    alerts_set(ALERT_INTENT_PENDING, age > (double)c->alert_pending_s, age,
               (double)c->alert_pending_s, msg);

    judge_reconciliation(m);
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        pthread_mutex_unlock(&m->lock);
        judge(m);
        pthread_mutex_lock(&m->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (!m->stopping && pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

struct monitor *monitor_start(struct bistore *store, const struct config *cfg)
{
    struct monitor *m = calloc(1, sizeof *m);
    if (!m) {
        log_error("monitor: out of memory: no alerts");
        return NULL;
    }
    m->store = store;
    m->cfg = *cfg;
    memset(m->cfg.neo4j_password, 0, sizeof m->cfg.neo4j_password); /* not needed here */
    if (cfg->alert_webhook[0])
        m->webhook = webhook_start(cfg->alert_webhook, cfg->alert_webhook_queue,
                                   cfg->alert_webhook_retries, cfg->alert_webhook_timeout_ms);
    alerts_init(m->webhook ? notify : NULL, m->webhook);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    if (pthread_create(&m->thread, NULL, monitor_main, m) != 0) {
        log_error("monitor: cannot start its thread: no alerts");
        alerts_init(NULL, NULL);
        webhook_stop(m->webhook);
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->wake);
        free(m);
        return NULL;
    }
    return m;
}

void monitor_stop(struct monitor *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    alerts_init(NULL, NULL);
    webhook_stop(m->webhook);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}
