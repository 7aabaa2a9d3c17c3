/*
 * The gateway's counters, gauges and histograms (what GET /metrics renders
 * and GET /v1/stats and the alerts read), and the ring of per-second
 * buckets behind the 1/5/15-minute windows of /v1/stats. No HTTP here: the
 * handlers render the text (handlers/metrics.c).
 *
 * The hot path (a write transaction, a Neo4j request, a group commit) only
 * does relaxed atomic adds: no lock. The ring takes a mutex once per
 * second at most, when the first event of a new second finds its slot
 * still holding the second 900 s ago and clears it.
 */
#ifndef BISTORE_METRICS_H
#define BISTORE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

/* ---- Prometheus histograms (fixed upper bounds, +Inf implied) ---- */

#define METRICS_HIST_MAX_BOUNDS 16

struct metrics_hist {
    const double *bounds; /* ascending upper bounds, in the base unit */
    size_t n_bounds;
    _Atomic uint64_t buckets[METRICS_HIST_MAX_BOUNDS + 1]; /* not cumulative; last: +Inf */
    _Atomic uint64_t sum_micro;                            /* sum of the values x 1e6 */
    _Atomic uint64_t count;
};

void metrics_hist_observe(struct metrics_hist *h, double value);

/* ---- the per-second ring of /v1/stats ---- */

#define STATS_RING_SECONDS 900
/* Latency buckets on a log scale: 8 per doubling from 1 us; bucket i holds
 * [2^(i/8), 2^((i+1)/8)) us, the last everything above (~ 2^28 us, 268 s). */
#define STATS_LAT_PER_OCTAVE 8
#define STATS_LAT_BUCKETS (28 * STATS_LAT_PER_OCTAVE)

enum tx_outcome { TX_COMMITTED, TX_ABORTED, TX_FAILED, TX_OUTCOMES };

struct stats_bucket {
    _Atomic int64_t sec; /* the second it counts; -1: never used */
    _Atomic uint32_t tx[TX_OUTCOMES];
    _Atomic uint32_t rollbacks;
    _Atomic uint32_t conflicts;
    _Atomic uint32_t lat[STATS_LAT_BUCKETS];
};

struct stats_ring {
    pthread_mutex_t rotate; /* taken only to clear a slot for a new second */
    struct stats_bucket slots[STATS_RING_SECONDS];
};

/* What a window sums up. */
struct stats_window {
    uint64_t tx[TX_OUTCOMES];
    uint64_t transactions;
    uint64_t rollbacks;
    uint64_t conflicts;
    uint64_t lat[STATS_LAT_BUCKETS];
};

void stats_ring_init(struct stats_ring *r);
void stats_ring_destroy(struct stats_ring *r);
/* Counts one transaction answered at second now_s after us microseconds. */
void stats_ring_tx(struct stats_ring *r, int64_t now_s, enum tx_outcome o, uint64_t us);
void stats_ring_rollback(struct stats_ring *r, int64_t now_s);
void stats_ring_conflict(struct stats_ring *r, int64_t now_s);
/* Sums the seconds now_s - seconds + 1 .. now_s (seconds <= STATS_RING_SECONDS). */
void stats_ring_window(struct stats_ring *r, int64_t now_s, int seconds, struct stats_window *w);
/* The latency bucket of us microseconds, and a bucket's representative
 * value (its geometric middle) in microseconds. */
size_t stats_lat_bucket(uint64_t us);
double stats_lat_value_us(size_t bucket);
/* The q-quantile (0 < q <= 1) of the window's latencies in milliseconds
 * (nearest rank over the buckets, within ~4.5 %); -1 when it holds none. */
double stats_window_quantile_ms(const struct stats_window *w, double q);

/* ---- the gateway's metrics (one set per process) ---- */

/* Route slots of http_requests_total; the last is "unmatched". */
#define METRICS_MAX_ROUTES 48
#define METRICS_ROUTE_UNMATCHED (METRICS_MAX_ROUTES - 1)

/* Findings by kind of the last finished reconciliation. */
enum recon_kind {
    RK_ONLY_IN_SQLITE,
    RK_ONLY_IN_NEO4J,
    RK_MISMATCHED,
    RK_DUPLICATE_IDS,
    RK_MISSING_IDS,
    RK_KINDS
};

struct metrics {
    _Atomic uint64_t transactions[TX_OUTCOMES];
    struct metrics_hist tx_duration;    /* seconds */
    struct metrics_hist neo4j_duration; /* seconds */
    struct metrics_hist group_size;     /* transactions */
    _Atomic uint64_t rollbacks;
    _Atomic uint64_t replays;          /* replay batches Neo4j took */
    _Atomic uint64_t replayed_intents; /* intents in them */
    _Atomic uint64_t ids_generated;
    _Atomic uint64_t id_conflicts;
    _Atomic uint64_t neo4j_errors; /* requests that got no usable answer */
    _Atomic int neo4j_up;          /* the last request to Neo4j was answered */
    _Atomic int64_t intents_pending;
    _Atomic int64_t pending_since_ms;    /* monotonic; 0: nothing pending */
    _Atomic int64_t recovering_since_ms; /* monotonic; 0: recovered */
    _Atomic int64_t recovery_last_ms;    /* the last recovery's duration; -1: none yet */
    _Atomic int64_t recon_findings[RK_KINDS];
    _Atomic int recon_known; /* a finished reconciliation was seen */
    _Atomic uint64_t webhook_sent, webhook_failed, webhook_dropped;
    _Atomic uint64_t http[METRICS_MAX_ROUTES][600]; /* [route][status] */
    int64_t started_ms;
    struct stats_ring ring;
};

extern struct metrics metrics_g;

/* Once, before any thread records (server/main.c). */
void metrics_init(void);

/* Monotonic clock in microseconds. */
int64_t metrics_now_us(void);

/* A write transaction answered with this HTTP status after us microseconds. */
void metrics_transaction(unsigned status, uint64_t us);
/* An HTTP request on route (METRICS_ROUTE_UNMATCHED when none). */
void metrics_http(size_t route, unsigned status);
void metrics_neo4j_request(uint64_t us, bool answered);
void metrics_group(size_t transactions);
void metrics_rollback(void);
void metrics_replayed(uint64_t intents);
void metrics_id_conflict(void);
void metrics_ids_generated(uint64_t n);
/* The writer's view of the intent log: pending = committed in SQLite, not
 * yet known in Neo4j. */
void metrics_pending(int64_t pending);
/* Readiness lost (recovery starts) and regained (recovery done). */
void metrics_recovery_begin(void);
void metrics_recovery_end(void);

#endif
