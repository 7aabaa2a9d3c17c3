/*
 * The monitor: a thread that, once a second, judges every alert's
 * condition (common/alerts.h) from the metrics (common/metrics.h), the
 * readiness of the store and the newest finished reconciliation, and
 * publishes that reconciliation's findings for /metrics. Events go to
 * the webhook when one is configured. Never on the write path.
 */
#ifndef BISTORE_MONITOR_H
#define BISTORE_MONITOR_H

#include "server/config.h"
#include "stores/bistore.h"

struct monitor;

/* NULL when the thread cannot start (logged; the gateway serves on). */
struct monitor *monitor_start(struct bistore *store, const struct config *cfg);
void monitor_stop(struct monitor *m);

#endif
