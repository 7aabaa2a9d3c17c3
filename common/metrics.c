#include "common/metrics.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define RELAXED memory_order_relaxed

/* ---- histograms ---- */

void metrics_hist_observe(struct metrics_hist *h, double value)
{
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, RELAXED);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(value * 1e6 + 0.5), RELAXED);
    atomic_fetch_add_explicit(&h->count, 1, RELAXED);
}

/* ---- the ring ---- */

void stats_ring_init(struct stats_ring *r)
{
    pthread_mutex_init(&r->rotate, NULL);
    for (size_t i = 0; i < STATS_RING_SECONDS; i++) {
        struct stats_bucket *b = &r->slots[i];
        atomic_store(&b->sec, -1);
        for (size_t k = 0; k < TX_OUTCOMES; k++)
            atomic_store(&b->tx[k], 0);
        atomic_store(&b->rollbacks, 0);
        atomic_store(&b->conflicts, 0);
        for (size_t k = 0; k < STATS_LAT_BUCKETS; k++)
            atomic_store(&b->lat[k], 0);
    }
}

void stats_ring_destroy(struct stats_ring *r)
{
    pthread_mutex_destroy(&r->rotate);
}

/* The slot of second now_s, cleared first when it still holds an older one. */
static struct stats_bucket *slot(struct stats_ring *r, int64_t now_s)
{
    struct stats_bucket *b = &r->slots[(uint64_t)now_s % STATS_RING_SECONDS];
    if (atomic_load_explicit(&b->sec, memory_order_acquire) == now_s)
        return b;
    pthread_mutex_lock(&r->rotate);
    int64_t held = atomic_load_explicit(&b->sec, memory_order_acquire);
    if (held < now_s) {
        for (size_t k = 0; k < TX_OUTCOMES; k++)
            atomic_store_explicit(&b->tx[k], 0, RELAXED);
        atomic_store_explicit(&b->rollbacks, 0, RELAXED);
        atomic_store_explicit(&b->conflicts, 0, RELAXED);
        for (size_t k = 0; k < STATS_LAT_BUCKETS; k++)
            atomic_store_explicit(&b->lat[k], 0, RELAXED);
        atomic_store_explicit(&b->sec, now_s, memory_order_release);
    }
    pthread_mutex_unlock(&r->rotate);
    /* held > now_s: a thread that read the clock a second late; its event
     * lands in the newer second, which is near enough. */
    return b;
}

size_t stats_lat_bucket(uint64_t us)
{
    if (us <= 1)
        return 0;
    double i = floor(log2((double)us) * STATS_LAT_PER_OCTAVE);
    if (i < 0)
        return 0;
    return i >= STATS_LAT_BUCKETS - 1 ? STATS_LAT_BUCKETS - 1 : (size_t)i;
}

double stats_lat_value_us(size_t bucket)
{
    return exp2(((double)bucket + 0.5) / STATS_LAT_PER_OCTAVE);
}

void stats_ring_tx(struct stats_ring *r, int64_t now_s, enum tx_outcome o, uint64_t us)
{
    struct stats_bucket *b = slot(r, now_s);
    atomic_fetch_add_explicit(&b->tx[o], 1, RELAXED);
    atomic_fetch_add_explicit(&b->lat[stats_lat_bucket(us)], 1, RELAXED);
}

void stats_ring_rollback(struct stats_ring *r, int64_t now_s)
{
    atomic_fetch_add_explicit(&slot(r, now_s)->rollbacks, 1, RELAXED);
}

void stats_ring_conflict(struct stats_ring *r, int64_t now_s)
{
    atomic_fetch_add_explicit(&slot(r, now_s)->conflicts, 1, RELAXED);
}

void stats_ring_window(struct stats_ring *r, int64_t now_s, int seconds, struct stats_window *w)
{
    memset(w, 0, sizeof *w);
    if (seconds > STATS_RING_SECONDS)
        seconds = STATS_RING_SECONDS;
    for (size_t i = 0; i < STATS_RING_SECONDS; i++) {
        struct stats_bucket *b = &r->slots[i];
        int64_t sec = atomic_load_explicit(&b->sec, memory_order_acquire);
        if (sec < 0 || sec > now_s || sec <= now_s - seconds)
            continue;
        for (size_t k = 0; k < TX_OUTCOMES; k++) {
            w->tx[k] += atomic_load_explicit(&b->tx[k], RELAXED);
            w->transactions += atomic_load_explicit(&b->tx[k], RELAXED);
        }
        w->rollbacks += atomic_load_explicit(&b->rollbacks, RELAXED);
        w->conflicts += atomic_load_explicit(&b->conflicts, RELAXED);
        for (size_t k = 0; k < STATS_LAT_BUCKETS; k++)
            w->lat[k] += atomic_load_explicit(&b->lat[k], RELAXED);
    }
}

double stats_window_quantile_ms(const struct stats_window *w, double q)
{
    uint64_t n = 0;
    for (size_t k = 0; k < STATS_LAT_BUCKETS; k++)
        n += w->lat[k];
    if (n == 0)
        return -1;
    uint64_t rank = (uint64_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t k = 0; k < STATS_LAT_BUCKETS; k++) {
        seen += w->lat[k];
        if (seen >= rank)
            return stats_lat_value_us(k) / 1000.0;
    }
    return stats_lat_value_us(STATS_LAT_BUCKETS - 1) / 1000.0;
}

/* ---- the process's metrics ---- */

struct metrics metrics_g;

static const double duration_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

int64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
    return metrics_now_us() / 1000;
}

static int64_t now_s(void)
{
    return metrics_now_us() / 1000000;
}

void metrics_init(void)
{
    memset(&metrics_g, 0, sizeof metrics_g);
    metrics_g.tx_duration.bounds = duration_bounds;
    metrics_g.tx_duration.n_bounds = sizeof duration_bounds / sizeof duration_bounds[0];
    metrics_g.neo4j_duration.bounds = duration_bounds;
    metrics_g.neo4j_duration.n_bounds = sizeof duration_bounds / sizeof duration_bounds[0];
    metrics_g.group_size.bounds = size_bounds;
    metrics_g.group_size.n_bounds = sizeof size_bounds / sizeof size_bounds[0];
    atomic_store(&metrics_g.neo4j_up, 1);
    atomic_store(&metrics_g.recovery_last_ms, -1);
    metrics_g.started_ms = now_ms();
    stats_ring_init(&metrics_g.ring);
}

void metrics_transaction(unsigned status, uint64_t us)
{
    enum tx_outcome o = status >= 500 ? TX_FAILED : status >= 400 ? TX_ABORTED : TX_COMMITTED;
    atomic_fetch_add_explicit(&metrics_g.transactions[o], 1, RELAXED);
    metrics_hist_observe(&metrics_g.tx_duration, (double)us / 1e6);
    stats_ring_tx(&metrics_g.ring, now_s(), o, us);
}

void metrics_http(size_t route, unsigned status)
{
    if (route >= METRICS_MAX_ROUTES)
        route = METRICS_ROUTE_UNMATCHED;
    if (status >= 600)
        status = 599;
    atomic_fetch_add_explicit(&metrics_g.http[route][status], 1, RELAXED);
}

void metrics_neo4j_request(uint64_t us, bool answered)
{
    metrics_hist_observe(&metrics_g.neo4j_duration, (double)us / 1e6);
    if (!answered)
        atomic_fetch_add_explicit(&metrics_g.neo4j_errors, 1, RELAXED);
    atomic_store_explicit(&metrics_g.neo4j_up, answered ? 1 : 0, RELAXED);
}

void metrics_group(size_t transactions)
{
    metrics_hist_observe(&metrics_g.group_size, (double)transactions);
}

void metrics_rollback(void)
{
    atomic_fetch_add_explicit(&metrics_g.rollbacks, 1, RELAXED);
    stats_ring_rollback(&metrics_g.ring, now_s());
}

void metrics_replayed(uint64_t intents)
{
    atomic_fetch_add_explicit(&metrics_g.replays, 1, RELAXED);
    atomic_fetch_add_explicit(&metrics_g.replayed_intents, intents, RELAXED);
}

void metrics_id_conflict(void)
{
    atomic_fetch_add_explicit(&metrics_g.id_conflicts, 1, RELAXED);
    stats_ring_conflict(&metrics_g.ring, now_s());
}

void metrics_ids_generated(uint64_t n)
{
    atomic_fetch_add_explicit(&metrics_g.ids_generated, n, RELAXED);
}

void metrics_pending(int64_t pending)
{
    if (pending < 0)
        pending = 0;
    atomic_store_explicit(&metrics_g.intents_pending, pending, RELAXED);
    int64_t since = atomic_load_explicit(&metrics_g.pending_since_ms, RELAXED);
    if (pending == 0 && since != 0)
        atomic_store_explicit(&metrics_g.pending_since_ms, 0, RELAXED);
    else if (pending > 0 && since == 0)
        atomic_store_explicit(&metrics_g.pending_since_ms, now_ms(), RELAXED);
}

void metrics_recovery_begin(void)
{
    int64_t zero = 0;
    atomic_compare_exchange_strong(&metrics_g.recovering_since_ms, &zero, now_ms());
}

void metrics_recovery_end(void)
{
    int64_t since = atomic_exchange(&metrics_g.recovering_since_ms, 0);
    if (since != 0)
        atomic_store(&metrics_g.recovery_last_ms, now_ms() - since);
}
