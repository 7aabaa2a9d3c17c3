/*
 * The alert webhook: alert events POSTed as JSON to one URL from a thread
 * of its own. The queue is bounded (when full the oldest event is dropped
 * and counted in bistore_alert_webhook_dropped_total); each event gets a
 * bounded number of attempts with a doubling backoff, each with a short
 * timeout. Nothing here runs on the write path: enqueueing takes a mutex
 * held for a pointer store, and a slow or dead receiver only delays this
 * thread.
 */
#ifndef BISTORE_WEBHOOK_H
#define BISTORE_WEBHOOK_H

#include <jansson.h>
#include <stddef.h>

struct webhook;

/* NULL when the thread cannot start (logged). */
struct webhook *webhook_start(const char *url, size_t queue, size_t retries, long timeout_ms);
/* Takes the reference to event. */
void webhook_enqueue(struct webhook *w, json_t *event);
/* Stops the thread (an attempt under way ends by its timeout) and frees. */
void webhook_stop(struct webhook *w);

#endif
