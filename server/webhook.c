#include "server/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json_text.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"

#define BACKOFF_FIRST_MS 250

struct webhook {
    char *url;
    size_t cap, retries;
    long timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    json_t **queue; /* a ring of cap events */
    size_t head, n;
    bool stopping;
    atomic_bool abort; /* stopping, for the transfer under way */
    pthread_t thread;
};

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* libcurl's progress callback (about once a second at least, also while
 * the receiver is silent): a non-zero answer ends the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct webhook *w = arg;
    return atomic_load(&w->abort) ? 1 : 0;
}

/* One attempt: true when the receiver answered 2xx. */
static bool post(struct webhook *w, CURL *curl, const char *text)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, w->url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        log_info("alert webhook: shutting down: an event not delivered");
    else if (rc != CURLE_OK)
        log_warn("alert webhook: %s", curl_easy_strerror(rc));
    else if (status < 200 || status >= 300)
        log_warn("alert webhook: the receiver answered HTTP %ld", status);
    return rc == CURLE_OK && status >= 200 && status < 300;
}

/* Waits ms or until stopping; lock held. True when stopping. */
static bool nap(struct webhook *w, long ms)
{
    struct timespec until = time_realtime_after_ms(ms);
    while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT)
        ;
    return w->stopping;
}

static void *webhook_main(void *arg)
{
    struct webhook *w = arg;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stopping && w->n == 0)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stopping)
            break;
        json_t *event = w->queue[w->head];
        w->queue[w->head] = NULL;
        w->head = (w->head + 1) % w->cap;
        w->n--;
        pthread_mutex_unlock(&w->lock);
        char *text = json_text_dumps(event);
        json_decref(event);
        bool sent = false;
        long backoff = BACKOFF_FIRST_MS;
        for (size_t attempt = 0; text && curl && !sent && attempt <= w->retries; attempt++) {
            if (attempt > 0) {
                pthread_mutex_lock(&w->lock);
                bool stop = nap(w, backoff);
                pthread_mutex_unlock(&w->lock);
                if (stop)
                    break;
                backoff *= 2;
            }
            sent = post(w, curl, text);
        }
        free(text);
        atomic_fetch_add_explicit(sent ? &metrics_g.webhook_sent : &metrics_g.webhook_failed, 1,
                                  memory_order_relaxed);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

struct webhook *webhook_start(const char *url, size_t queue, size_t retries, long timeout_ms)
{
    struct webhook *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->url = strdup(url);
    w->queue = calloc(queue, sizeof *w->queue);
    w->cap = queue;
    w->retries = retries;
    w->timeout_ms = timeout_ms;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (!w->url || !w->queue || pthread_create(&w->thread, NULL, webhook_main, w) != 0) {
        log_error("alert webhook: cannot start its thread");
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w->queue);
        free(w->url);
        free(w);
        return NULL;
    }
    log_info("alert webhook: events go to the configured URL");
    return w;
}

void webhook_enqueue(struct webhook *w, json_t *event)
{
    if (!w || !event) {
        json_decref(event);
        return;
    }
    json_t *dropped = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->n == w->cap) { /* full: the oldest goes */
        dropped = w->queue[w->head];
        w->queue[w->head] = NULL;
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    w->queue[(w->head + w->n) % w->cap] = event;
    w->n++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (dropped) {
        atomic_fetch_add_explicit(&metrics_g.webhook_dropped, 1, memory_order_relaxed);
        log_warn("alert webhook: queue full, the oldest event dropped");
        json_decref(dropped);
    }
}

void webhook_stop(struct webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    atomic_store(&w->abort, true);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n; i++)
        json_decref(w->queue[(w->head + i) % w->cap]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w->queue);
    free(w->url);
    free(w);
}
