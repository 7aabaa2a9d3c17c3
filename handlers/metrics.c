/*
 * GET /metrics (Prometheus text exposition 0.0.4), GET /v1/stats (the
 * same picture as JSON for dashboards) and GET /v1/alerts, from the
 * counters of common/metrics.h and the alerts of common/alerts.h.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alerts.h"
#include "common/buf.h"
#include "common/metrics.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "stores/bistore.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* The text under way; failed once an append did not fit or had no memory. */
struct out {
    struct buf b;
    bool failed;
};
#define OUT(o, ...)                                                                                \
    do {                                                                                           \
        if (buf_printf(&(o)->b, __VA_ARGS__) != BUF_OK)                                            \
            (o)->failed = true;                                                                    \
    } while (0)

static void family(struct out *b, const char *name, const char *type, const char *help)
{
    OUT(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct out *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    OUT(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct out *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    OUT(b, "%s %.17g\n", name, v);
}

static void histogram(struct out *b, const char *name, const char *help,
                      const struct metrics_hist *h)
{
    family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n_bounds; i++) {
        cum += LOAD(h->buckets[i]);
        OUT(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += LOAD(h->buckets[h->n_bounds]);
    /* _count is the +Inf bucket, so the two always agree in one scrape */
    OUT(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)cum, name, (double)LOAD(h->sum_micro) / 1e6, name,
        (unsigned long long)cum);
}

static const char *const outcome_names[TX_OUTCOMES] = {"committed", "aborted", "failed"};
static const char *const kind_names[RK_KINDS] = {"only_in_sqlite", "only_in_neo4j", "mismatched",
                                                 "duplicate_ids", "missing_ids"};

/* Seconds since a monotonic ms stamp (0: none -> 0). */
static double age_s(int64_t since_ms)
{
    return since_ms ? (double)(metrics_now_us() / 1000 - since_ms) / 1000.0 : 0.0;
}

static void render(struct out *b)
{
    struct metrics *m = &metrics_g;
    family(b, "bistore_transactions_total", "counter",
           "Write transactions answered, by outcome: committed (2xx), aborted (4xx), failed "
           "(5xx).");
    for (int o = 0; o < TX_OUTCOMES; o++)
        OUT(b, "bistore_transactions_total{outcome=\"%s\"} %llu\n", outcome_names[o],
            (unsigned long long)LOAD(m->transactions[o]));
    histogram(b, "bistore_transaction_duration_seconds",
              "Time from the request to the answer of each write transaction.", &m->tx_duration);
    histogram(b, "bistore_neo4j_request_duration_seconds",
              "Duration of each HTTP request to Neo4j.", &m->neo4j_duration);
    counter(b, "bistore_neo4j_request_errors_total",
            "Requests to Neo4j that got no usable answer (no connection, timeout, 5xx).",
            LOAD(m->neo4j_errors));
    gauge(b, "bistore_neo4j_up", "1 when the last request to Neo4j was answered.",
          LOAD(m->neo4j_up));
    histogram(b, "bistore_group_commit_size", "Client transactions committed together per group.",
              &m->group_size);
    counter(b, "bistore_rollbacks_total",
            "Groups of write transactions rolled back in SQLite (and Neo4j).", LOAD(m->rollbacks));
    gauge(b, "bistore_intents_pending",
          "Intents committed in SQLite and not yet known to be in Neo4j.",
          (double)LOAD(m->intents_pending));
    gauge(b, "bistore_oldest_pending_intent_age_seconds",
          "How long intents have been pending without a break (0: none).",
          age_s(LOAD(m->pending_since_ms)));
    counter(b, "bistore_replays_total", "Replay batches Neo4j took.", LOAD(m->replays));
    counter(b, "bistore_replayed_intents_total", "Intents replayed into Neo4j.",
            LOAD(m->replayed_intents));
    counter(b, "bistore_ids_generated_total", "Ids handed out by POST /v1/ids.",
            LOAD(m->ids_generated));
    counter(b, "bistore_id_conflicts_total",
            "Creates refused because the id exists already (409 entity_exists or "
            "relationship_exists).",
            LOAD(m->id_conflicts));
    family(b, "bistore_reconciliation_findings", "gauge",
           "Findings of the last finished reconciliation (periodic or requested), by kind.");
    for (int k = 0; k < RK_KINDS; k++)
        OUT(b, "bistore_reconciliation_findings{kind=\"%s\"} %lld\n", kind_names[k],
            (long long)LOAD(m->recon_findings[k]));
    int64_t last = LOAD(m->recovery_last_ms);
    gauge(b, "bistore_recovery_duration_seconds",
          "Duration of the last recovery (from not ready to ready; 0 before the first ends).",
          last < 0 ? 0.0 : (double)last / 1000.0);
    gauge(b, "bistore_recovering_seconds",
          "How long the recovery under way has taken (0: the gateway is ready).",
          age_s(LOAD(m->recovering_since_ms)));
    gauge(b, "bistore_alerts_active", "Alerts active now (GET /v1/alerts).", alerts_active_count());
    counter(b, "bistore_alert_webhook_sent_total", "Alert events the webhook receiver took.",
            LOAD(m->webhook_sent));
    counter(b, "bistore_alert_webhook_failed_total", "Alert events given up after the last retry.",
            LOAD(m->webhook_failed));
    counter(b, "bistore_alert_webhook_dropped_total",
            "Alert events dropped from the full webhook queue (the oldest first).",
            LOAD(m->webhook_dropped));
    gauge(b, "bistore_uptime_seconds", "Seconds since the gateway started.", age_s(m->started_ms));
    family(b, "bistore_http_requests_total", "counter",
           "HTTP requests answered, by route (its name in the route table; unmatched: none) and "
           "status.");
    for (size_t r = 0; r < METRICS_MAX_ROUTES; r++) {
        const char *name = r < handlers_routes.n          ? handlers_routes.routes[r].name
                           : r == METRICS_ROUTE_UNMATCHED ? "unmatched"
                                                          : NULL;
        for (unsigned s = 100; name && s < 600; s++) {
            uint64_t v = LOAD(m->http[r][s]);
            if (v)
                OUT(b, "bistore_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n", name, s,
                    (unsigned long long)v);
        }
    }
}

void handle_metrics(struct app *app, const struct request *req, struct response *res)
{
    (void)req;
    struct out o = {.failed = false};
    buf_init(&o.b, (size_t)16 << 20);
    render(&o);
    const char *role = app_role_name(app), *roles[] = {"primary", "standby", "fenced"};
    family(&o, "bistore_role", "gauge",
           "1 for the role this gateway has now (README \"Replication\"), 0 for the others.");
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        OUT(&o, "bistore_role{role=\"%s\"} %d\n", roles[i], strcmp(role, roles[i]) == 0);
    if (o.failed) {
        buf_free(&o.b);
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        return;
    }
    res->status = 200;
    res->raw_len = o.b.len;
    res->text = buf_steal(&o.b);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- /v1/stats ---- */

/* A ratio, or null without a denominator. */
static json_t *ratio(uint64_t num, uint64_t den)
{
    return den ? json_real((double)num / (double)den) : json_null();
}

static json_t *quantile(const struct stats_window *w, double q)
{
    double v = stats_window_quantile_ms(w, q);
    return v < 0 ? json_null() : json_real(v);
}

static json_t *window_json(int seconds)
{
    struct stats_window w;
    int64_t now_s = metrics_now_us() / 1000000;
    stats_ring_window(&metrics_g.ring, now_s, seconds, &w);
    /* throughput over the part of the window the gateway has run */
    double up = (double)(metrics_now_us() / 1000 - metrics_g.started_ms) / 1000.0;
    double span = up < 1 ? 1 : up < seconds ? up : seconds;
    return json_pack("{s:i, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:{s:o, s:o, s:o}, s:I, s:o, s:I}",
                     "seconds", seconds, "transactions", (json_int_t)w.transactions, "committed",
                     (json_int_t)w.tx[TX_COMMITTED], "aborted", (json_int_t)w.tx[TX_ABORTED],
                     "failed", (json_int_t)w.tx[TX_FAILED], "success_rate",
                     ratio(w.tx[TX_COMMITTED], w.transactions), "failure_rate",
                     ratio(w.tx[TX_FAILED], w.transactions), "throughput_tx_s",
                     (double)w.transactions / span, "latency_ms", "p50", quantile(&w, 0.50), "p95",
                     quantile(&w, 0.95), "p99", quantile(&w, 0.99), "rollbacks",
                     (json_int_t)w.rollbacks, "rollback_rate", ratio(w.rollbacks, w.transactions),
                     "id_conflicts", (json_int_t)w.conflicts);
}

/* The newest reconciliation run (periodic or requested), or null. */
static json_t *last_reconciliation(struct app *app)
{
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    json_t *last = NULL;
    if (bistore_reconcile_list(app->store, NULL, 1, &items, &next, &err) == 0)
        last = json_incref(json_array_get(items, 0));
    json_decref(items);
    free(next);
    if (!last)
        return json_null();
    json_t *sum = json_object_get(last, "summary");
    json_int_t found = 0;
    for (int k = 0; k < RK_KINDS; k++)
        found += json_integer_value(json_object_get(sum, kind_names[k]));
    json_object_set_new(last, "disagreements", json_integer(found));
    json_object_del(last, "progress");
    return last;
}

void handle_stats(struct app *app, const struct request *req, struct response *res)
{
    (void)req;
    struct metrics *m = &metrics_g;
    json_t *alerts = alerts_active_json();
    json_t *body = json_pack(
        "{s:{s:o, s:o, s:o}, s:I, s:f, s:o, s:o, s:b, s:f}", "windows", "1m", window_json(60), "5m",
        window_json(300), "15m", window_json(900), "pending_intents",
        (json_int_t)LOAD(m->intents_pending), "oldest_pending_s", age_s(LOAD(m->pending_since_ms)),
        "last_reconciliation", last_reconciliation(app), "alerts", alerts ? alerts : json_array(),
        "neo4j_up", LOAD(m->neo4j_up) != 0, "uptime_s", age_s(m->started_ms));
    if (body)
        reply_json(res, 200, body);
    else
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
}

void handle_alerts(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    (void)req;
    json_t *body = alerts_json();
    if (body)
        reply_json(res, 200, body);
    else
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
}
