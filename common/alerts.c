#include "common/alerts.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"

struct alert_state {
    bool active;
    char since[TIMESTAMP_LEN];
    double value, threshold;
    char message[ALERT_MESSAGE_MAX];
};

struct resolved {
    enum alert_name name;
    struct alert_state s;
    char resolved_at[TIMESTAMP_LEN];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct alert_state current[ALERT_COUNT];
static struct resolved recent[ALERTS_RECENT]; /* a ring, newest at recent_next - 1 */
static size_t recent_next, recent_n;
static alert_notify_fn notify_fn;
static void *notify_arg;

static const char *const names[ALERT_COUNT] = {
    "failure_rate",   "reconciliation_disagreement", "id_conflicts", "recovery_slow",
    "intent_pending", "neo4j_unreachable",
};

const char *alert_name_text(enum alert_name a)
{
    return (unsigned)a < ALERT_COUNT ? names[a] : "unknown";
}

void alerts_init(alert_notify_fn notify, void *arg)
{
    pthread_mutex_lock(&lock);
    notify_fn = notify;
    notify_arg = arg;
    pthread_mutex_unlock(&lock);
}

static json_t *state_json(enum alert_name a, const struct alert_state *s, const char *resolved_at)
{
    json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:s}", "name", names[a], "since", s->since, "value",
                          s->value, "threshold", s->threshold, "message", s->message);
    if (o && resolved_at)
        json_object_set_new(o, "resolved_at", json_string(resolved_at));
    return o;
}

void alerts_set(enum alert_name a, bool active, double value, double threshold, const char *message)
{
    if ((unsigned)a >= ALERT_COUNT)
        return;
    json_t *event = NULL;
    alert_notify_fn fn;
    void *arg;
    pthread_mutex_lock(&lock);
    struct alert_state *s = &current[a];
    fn = notify_fn;
    arg = notify_arg;
    if (active) {
        bool fired = !s->active;
        if (fired)
            time_now_rfc3339(s->since);
        s->active = true;
        s->value = value;
        s->threshold = threshold;
        snprintf(s->message, sizeof s->message, "%s", message);
        if (fired) {
            log_warn("alert %s fired: %s (value %g, threshold %g)", names[a], s->message, value,
                     threshold);
            event = json_pack("{s:s, s:o}", "event", "fired", "alert", state_json(a, s, NULL));
        }
    } else if (s->active) {
        s->active = false;
        struct resolved *r = &recent[recent_next];
        r->name = a;
        r->s = *s;
        time_now_rfc3339(r->resolved_at);
        recent_next = (recent_next + 1) % ALERTS_RECENT;
        if (recent_n < ALERTS_RECENT)
            recent_n++;
        log_info("alert %s resolved (value %g, threshold %g): was %s", names[a], value, threshold,
                 s->message);
        event =
            json_pack("{s:s, s:o}", "event", "resolved", "alert", state_json(a, s, r->resolved_at));
    }
    pthread_mutex_unlock(&lock);
    if (event && fn)
        fn(arg, event);
    else
        json_decref(event);
}

/* Lock held. */
static json_t *active_locked(void)
{
    json_t *arr = json_array();
    for (int a = 0; arr && a < ALERT_COUNT; a++)
        if (current[a].active)
            json_array_append_new(arr, state_json((enum alert_name)a, &current[a], NULL));
    return arr;
}

json_t *alerts_active_json(void)
{
    pthread_mutex_lock(&lock);
    json_t *arr = active_locked();
    pthread_mutex_unlock(&lock);
    return arr;
}

json_t *alerts_json(void)
{
    pthread_mutex_lock(&lock);
    json_t *active = active_locked();
    json_t *rec = json_array();
    for (size_t i = 0; rec && i < recent_n; i++) {
        const struct resolved *r = &recent[(recent_next + ALERTS_RECENT - 1 - i) % ALERTS_RECENT];
        json_array_append_new(rec, state_json(r->name, &r->s, r->resolved_at));
    }
    pthread_mutex_unlock(&lock);
    if (!active || !rec) {
        json_decref(active);
        json_decref(rec);
        return NULL;
    }
    return json_pack("{s:o, s:o}", "active", active, "recent", rec);
}

int alerts_active_count(void)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    for (int a = 0; a < ALERT_COUNT; a++)
        n += current[a].active;
    pthread_mutex_unlock(&lock);
    return n;
}
