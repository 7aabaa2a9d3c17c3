/*
 * The maths of common/metrics.h: Prometheus histogram buckets, the
 * log-scale latency buckets and their quantiles, and the per-second ring
 * (windows, slots reused after 900 s, counts from many threads).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/metrics.h"

static struct stats_ring ring; /* large: not on a test's stack */

Test(metrics_hist, buckets_sum_and_count)
{
    static const double bounds[] = {0.01, 0.1, 1};
    struct metrics_hist h = {.bounds = bounds, .n_bounds = 3};
    metrics_hist_observe(&h, 0.005);
    metrics_hist_observe(&h, 0.01); /* le: a value on a bound is in it */
    metrics_hist_observe(&h, 0.5);
    metrics_hist_observe(&h, 7);
    cr_expect_eq(h.buckets[0], 2);
    cr_expect_eq(h.buckets[1], 0);
    cr_expect_eq(h.buckets[2], 1);
    cr_expect_eq(h.buckets[3], 1); /* +Inf */
    cr_expect_eq(h.count, 4);
    cr_expect_eq(h.sum_micro, 7515000);
}

Test(stats_lat, buckets_are_monotonic_and_tight)
{
    size_t last = 0;
    for (uint64_t us = 1; us < (uint64_t)1 << 27; us = us * 11 / 10 + 1) {
        size_t b = stats_lat_bucket(us);
        cr_assert_geq(b, last, "bucket of %llu us went down", (unsigned long long)us);
        last = b;
        /* the representative value is within one bucket width (2^(1/8)) of us */
        double v = stats_lat_value_us(b);
        if (us >= 2)
            cr_expect(v / (double)us < 1.0906 && (double)us / v < 1.0906, "%llu us -> %f",
                      (unsigned long long)us, v);
    }
    cr_expect_eq(stats_lat_bucket(0), 0);
    cr_expect_eq(stats_lat_bucket(UINT64_MAX), STATS_LAT_BUCKETS - 1);
}

Test(stats_ring, quantiles_of_a_known_spread)
{
    stats_ring_init(&ring);
    /* 1..1000 ms, one transaction each */
    for (uint64_t ms = 1; ms <= 1000; ms++)
        stats_ring_tx(&ring, 5000, TX_COMMITTED, ms * 1000);
    struct stats_window w;
    stats_ring_window(&ring, 5000, 60, &w);
    cr_assert_eq(w.transactions, 1000);
    double want[][2] = {{0.5, 500}, {0.95, 950}, {0.99, 990}, {1.0, 1000}};
    for (size_t i = 0; i < 4; i++) {
        double got = stats_window_quantile_ms(&w, want[i][0]);
        cr_expect(fabs(got - want[i][1]) / want[i][1] < 0.05, "q%.2f = %f, want ~%f", want[i][0],
                  got, want[i][1]);
    }
    struct stats_window empty;
    stats_ring_window(&ring, 9000, 60, &empty);
    cr_expect_eq(empty.transactions, 0);
    cr_expect_eq(stats_window_quantile_ms(&empty, 0.5), -1);
    stats_ring_destroy(&ring);
}

Test(stats_ring, windows_count_their_seconds_only)
{
    stats_ring_init(&ring);
    /* one committed per second over 1000 s, a failure every 10th, a rollback every 100th */
    for (int64_t s = 1; s <= 1000; s++) {
        stats_ring_tx(&ring, s, s % 10 ? TX_COMMITTED : TX_FAILED, 2000);
        if (s % 100 == 0)
            stats_ring_rollback(&ring, s);
    }
    stats_ring_conflict(&ring, 1000);
    struct stats_window w;
    stats_ring_window(&ring, 1000, 60, &w);
    cr_expect_eq(w.transactions, 60);
    cr_expect_eq(w.tx[TX_FAILED], 6);
    cr_expect_eq(w.rollbacks, 1);
    cr_expect_eq(w.conflicts, 1);
    stats_ring_window(&ring, 1000, 300, &w);
    cr_expect_eq(w.transactions, 300);
    cr_expect_eq(w.tx[TX_COMMITTED], 270);
    /* 900 s: seconds 1..100 were overwritten by 901..1000 */
    stats_ring_window(&ring, 1000, 900, &w);
    cr_expect_eq(w.transactions, 900);
    cr_expect_eq(w.rollbacks, 9);
    /* a window reaching past the ring is the ring */
    stats_ring_window(&ring, 1000, 5000, &w);
    cr_expect_eq(w.transactions, 900);
    /* later, with nothing new: the old seconds fall out of the window */
    stats_ring_window(&ring, 1030, 60, &w);
    cr_expect_eq(w.transactions, 30);
    stats_ring_window(&ring, 5000, 900, &w);
    cr_expect_eq(w.transactions, 0);
    /* a reused slot starts from zero */
    stats_ring_tx(&ring, 1900, TX_ABORTED, 10); /* slot of second 1000 */
    stats_ring_window(&ring, 1900, 1, &w);
    cr_expect_eq(w.transactions, 1);
    cr_expect_eq(w.tx[TX_ABORTED], 1);
    cr_expect_eq(w.conflicts, 0);
    stats_ring_destroy(&ring);
}

#define THREADS 4
#define PER_THREAD 50000

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++)
        stats_ring_tx(&ring, 100 + i / 10000, TX_COMMITTED, (uint64_t)i);
    return NULL;
}

Test(stats_ring, no_count_is_lost_between_threads)
{
    stats_ring_init(&ring);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    struct stats_window w;
    stats_ring_window(&ring, 104, 60, &w);
    cr_expect_eq(w.transactions, THREADS * PER_THREAD);
    uint64_t lat = 0;
    for (size_t k = 0; k < STATS_LAT_BUCKETS; k++)
        lat += w.lat[k];
    cr_expect_eq(lat, THREADS * PER_THREAD);
    stats_ring_destroy(&ring);
}

Test(metrics, pending_age_and_recovery)
{
    metrics_init();
    metrics_pending(0);
    cr_expect_eq(metrics_g.pending_since_ms, 0);
    metrics_pending(3);
    int64_t since = metrics_g.pending_since_ms;
    cr_expect_gt(since, 0);
    metrics_pending(1); /* still pending: the age goes on */
    cr_expect_eq(metrics_g.pending_since_ms, since);
    cr_expect_eq(metrics_g.intents_pending, 1);
    metrics_pending(0);
    cr_expect_eq(metrics_g.pending_since_ms, 0);
    cr_expect_eq(metrics_g.recovery_last_ms, -1);
    metrics_recovery_begin();
    metrics_recovery_begin(); /* the first start counts */
    cr_expect_gt(metrics_g.recovering_since_ms, 0);
    metrics_recovery_end();
    cr_expect_eq(metrics_g.recovering_since_ms, 0);
    cr_expect_geq(metrics_g.recovery_last_ms, 0);
    metrics_transaction(201, 1000);
    metrics_transaction(409, 1000);
    metrics_transaction(503, 1000);
    metrics_transaction(204, 1000);
    cr_expect_eq(metrics_g.transactions[TX_COMMITTED], 2);
    cr_expect_eq(metrics_g.transactions[TX_ABORTED], 1);
    cr_expect_eq(metrics_g.transactions[TX_FAILED], 1);
    cr_expect_eq(metrics_g.tx_duration.count, 4);
}
