/*
 * Spare Neo4j transactions: a thread with a connection of its own keeps one
 * empty transaction open ahead of the writer, so the round trip that opens
 * a write's transaction happens while the writer applies and commits the
 * one before (DESIGN.md section 4).
 *
 * An empty transaction holds no lock, so an unused spare left behind by a
 * killed gateway blocks nothing and Neo4j ends it after its idle timeout.
 * The writer records a spare in the orphan log when it takes it, before it
 * runs anything in it, like any transaction it opens itself.
 *
 * A transaction Neo4j began before a schema change (a constraint the
 * writer just made) must not take the data: in it, Neo4j 5.26 blocks a
 * statement for seconds, or fails the create of a fresh id with
 * ConstraintValidationFailed against the node the statement itself made.
 * spare_schema_changed retires every spare begun before it returns.
 */
#ifndef BISTORE_SPARE_H
#define BISTORE_SPARE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "stores/neo4j/neo4j.h"

/* A spare older than this is replaced: Neo4j ends idle transactions after
 * 30 s by default (server.http.transaction_idle_timeout). */
#define SPARE_MAX_AGE_MS 20000

struct spare {
    struct neo4j_client *client; /* the opener thread's own */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    char path[NEO4J_TX_PATH_MAX]; /* the open spare, or "" */
    int64_t opened_ms;
    int64_t retry_at_ms; /* after a failed open: not before then */
    uint64_t gen;        /* schema changes so far */
    uint64_t path_gen;   /* gen when the open spare's begin was sent */
    bool stopping;
};

/* Starts the opener thread. 0, or -1 (no thread, no client: take finds none). */
int spare_start(struct spare *s, const struct neo4j_config *cfg);
/* Stops the thread and rolls back the spare not taken. */
void spare_stop(struct spare *s);
/* Moves the open spare's path to path and asks for the next one: true; false
 * when none is open (the caller opens its own). */
bool spare_take(struct spare *s, char path[NEO4J_TX_PATH_MAX]);
/* The schema changed (or may have: a schema request that timed out): a
 * spare begun before now is never taken, and is rolled back. */
void spare_schema_changed(struct spare *s);

#endif
