/*
 * The commit in flight (struct flight, internal.h): a thread with a Neo4j
 * connection of its own sends a group's commit while the writer goes on
 * with the next group (DESIGN.md section 4, the order of the protocol is
 * kept: this group is committed in SQLite before its commit is sent).
 *
 * Why the order of intents holds: the next group's first statement is the
 * guarded watermark, which locks the watermark node this group's
 * transaction holds locked until its commit, then checks that it reads this
 * group's last seq. So its statements run only after this commit, and pass
 * only if it committed. The writer lands the flight (flight_land) before it
 * commits anything else in SQLite and before any job that is not a plain
 * group; a flight that did not land makes the next group go again after
 * the replay (COMMIT_REQUEUE), as if it had come later.
 *
 * When the writer is busy with the next group (behind), the thread answers
 * the flight's clients as soon as Neo4j answers (201, or 202 with Neo4j
 * pending); their intents' mark goes with the next group's SQLite commit,
 * and until then e->landed makes the audit trail read them as applied, at
 * the time the answer left. Otherwise the writer lands it, marks, answers.
 *
 * A gateway killed with a commit in flight leaves it recorded in the orphan
 * log, its intents pending: recovery rolls back what is still open and
 * replays what the watermark lacks, as for a commit that got no answer.
 */
#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"
#include "stores/engine/fault.h"
#include "stores/engine/internal.h"

static void *committer_main(void *arg)
{
    struct engine *e = arg;
    struct flight *f = &e->flight;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!f->stopping && (!f->sent || f->done))
            pthread_cond_wait(&f->go, &e->lock);
        if (f->stopping)
            break;
        char path[NEO4J_TX_PATH_MAX];
        snprintf(path, sizeof path, "%s", f->path);
        neo4j_set_request_id(f->client, f->rid); /* the group's log lines say whose */
        pthread_mutex_unlock(&e->lock);
        struct neo4j_result r = {0};
        bool committed = neo4j_commit(f->client, path, NULL, &r) == NEO4J_OK;
        if (committed)
            fault_kill_at(FAULT_AFTER_NEO4J_COMMIT); /* before anyone is answered */
        char at[TIMESTAMP_LEN];
        time_now_rfc3339(at);
        pthread_mutex_lock(&e->lock);
        f->committed = committed;
        snprintf(f->message, sizeof f->message, "%s", committed ? "" : r.message);
        if (committed) {
            memcpy(f->at, at, sizeof at);
            e->landed.seq = f->seq;
            memcpy(e->landed.at, at, sizeof at);
        }
        for (size_t i = 0; i < f->n_outs; i++) {
            f->outs[i]->neo4j_applied = committed;
            f->outs[i]->in_doubt = !committed && e->replica; /* see bistore_outcome */
        }
        size_t answered = 0;
        if (f->behind) { /* the writer is busy: answer now */
            for (size_t i = 0; i < f->n_jobs; i++)
                job_finish_locked(f->jobs[i]);
            answered = f->n_jobs;
            f->n_jobs = 0;
        }
        int64_t first = f->first_seq, last = f->seq;
        f->done = true;
        pthread_cond_broadcast(&e->wake); /* the writer may be waiting for it */
        pthread_mutex_unlock(&e->lock);
        if (answered)
            log_debug("commit in flight: intents %lld..%lld %s, %zu answered before their mark",
                      (long long)first, (long long)last, committed ? "applied" : "pending",
                      answered);
        neo4j_result_clear(&r);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int flight_start(struct engine *e)
{
    struct flight *f = &e->flight;
    f->client = neo4j_client_new(&e->neo4j_cfg);
    if (!f->client)
        return -1;
    pthread_cond_init(&f->go, NULL);
    if (pthread_create(&f->thread, NULL, committer_main, e) != 0) {
        pthread_cond_destroy(&f->go);
        neo4j_client_free(f->client);
        f->client = NULL;
        return -1;
    }
    f->started = true;
    return 0;
}

void flight_stop(struct engine *e)
{
    struct flight *f = &e->flight;
    if (!f->started)
        return;
    BS_ASSERT(!f->active); /* the writer lands every flight before it exits */
    pthread_mutex_lock(&e->lock);
    f->stopping = true;
    pthread_cond_signal(&f->go);
    pthread_mutex_unlock(&e->lock);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->go);
    neo4j_client_free(f->client);
    f->client = NULL;
    f->started = false;
}

void flight_send(struct engine *e, struct neo4j_tx *tx, int64_t first, int64_t seq, const char *rid)
{
    struct flight *f = &e->flight;
    BS_ASSERT(f->started && !f->active); /* one at a time: the next group landed it */
    f->active = true;
    f->first_seq = first;
    f->seq = seq;
    pthread_mutex_lock(&e->lock);
    snprintf(f->path, sizeof f->path, "%s", tx->path);
    f->rid = rid;
    f->sent = true;
    f->done = f->committed = false;
    pthread_cond_signal(&f->go);
    pthread_mutex_unlock(&e->lock);
    /* The writer's part of the transaction ends here; the orphan record
     * stays until the flight lands. */
    tx->path[0] = '\0';
    e->open_neo4j_txs--;
}

bool flight_done_locked(const struct engine *e)
{
    return e->flight.active && e->flight.done;
}

bool flight_go_behind(struct engine *e)
{
    struct flight *f = &e->flight;
    pthread_mutex_lock(&e->lock);
    f->behind = !f->done;
    pthread_mutex_unlock(&e->lock);
    return f->behind;
}

bool flight_land(struct engine *e, bool proven)
{
    struct flight *f = &e->flight;
    if (!f->active)
        return true;
    pthread_mutex_lock(&e->lock);
    while (!f->done)
        pthread_cond_wait(&e->wake, &e->lock);
    bool committed = f->committed;
    char message[sizeof f->message];
    snprintf(message, sizeof message, "%s", f->message);
    f->sent = f->done = f->behind = false;
    f->n_outs = 0;
    BS_ASSERT(e->n_unanswered == 0); /* settle answered the last flight's */
    for (size_t i = 0; i < f->n_jobs; i++)
        e->unanswered[e->n_unanswered++] = f->jobs[i];
    f->n_jobs = 0;
    pthread_mutex_unlock(&e->lock);
    f->active = false;
    /* Answered or not, the guard after it passed: Neo4j has it (its
     * clients heard "pending"; the mark says applied). A commit that timed
     * out but landed stays recorded (a rollback of it later finds nothing). */
    bool applied = committed || proven;
    if (committed)
        orphans_remove(&e->orphans, f->path);
    if (applied) {
        fault_vfs_at(FAULT_AFTER_NEO4J_COMMIT); /* the SQLite shim counts the writer's */
        e->applied_seq = f->seq;
        if (committed)
            memcpy(e->applied_at, f->at, sizeof f->at);
        else
            time_now_rfc3339(e->applied_at);
    } else {
        log_warn("intents %lld..%lld committed; Neo4j commit failed (%s): pending",
                 (long long)f->first_seq, (long long)f->seq, message);
    }
    f->path[0] = '\0';
    return applied;
}

void flight_follow(struct engine *e, struct bistore_outcome *out)
{
    struct flight *f = &e->flight;
    pthread_mutex_lock(&e->lock);
    if (f->done) {
        out->neo4j_applied = f->committed;
        out->in_doubt = !f->committed && e->replica;
    } else {
        BS_ASSERT(f->n_outs < sizeof f->outs / sizeof f->outs[0]);
        f->outs[f->n_outs++] = out;
    }
    pthread_mutex_unlock(&e->lock);
}

void job_finish_locked(struct write_job *job)
{
    job->done = true;
    pthread_cond_signal(&job->done_cond);
}

void engine_landed(struct engine *e, struct sql_landed *out)
{
    pthread_mutex_lock(&e->lock);
    *out = e->landed;
    pthread_mutex_unlock(&e->lock);
}
