/*
 * The alerts' state: which are active (since when, the figure that
 * tripped them, the threshold) and the last ALERTS_RECENT resolved ones.
 * The monitor thread (server/monitor.c) decides, once a second, whether
 * each condition holds and says so with alerts_set; a change is logged
 * and handed to the notifier (the webhook). Handlers read the state for
 * GET /v1/alerts and /v1/stats. Not on the write path: one mutex.
 */
#ifndef BISTORE_ALERTS_H
#define BISTORE_ALERTS_H

#include <jansson.h>
#include <stdbool.h>

#define ALERTS_RECENT 50
#define ALERT_MESSAGE_MAX 256

enum alert_name {
    ALERT_FAILURE_RATE,
    ALERT_RECONCILIATION_DISAGREES,
    ALERT_ID_CONFLICTS,
    ALERT_RECOVERY_SLOW,
    ALERT_INTENT_PENDING,
    ALERT_NEO4J_UNREACHABLE,
    ALERT_COUNT
};

/* "failure_rate", "reconciliation_disagreement", ... */
const char *alert_name_text(enum alert_name a);

/* Called (outside the lock) with {"event": "fired" | "resolved", "alert":
 * {...}} on every change; it takes the reference. */
typedef void (*alert_notify_fn)(void *arg, json_t *event);
void alerts_init(alert_notify_fn notify, void *arg);

/* The condition of a holds (active) or not, with the figure and threshold
 * it was judged by and a message for people. Fires or resolves on change;
 * an active alert keeps its start time and takes the new figure. */
void alerts_set(enum alert_name a, bool active, double value, double threshold,
                const char *message);

/* {"active": [...], "recent": [...]} (a new object). */
json_t *alerts_json(void);
/* The active ones alone (a new array). */
json_t *alerts_active_json(void);
int alerts_active_count(void);

#endif
