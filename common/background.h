/*
 * A call in a thread of its own while the caller goes on (the next replay
 * batch, the rest of a pipelined transaction, each a Neo4j request), with
 * a fallback: when no thread can be started the call runs in line, so the
 * caller's logic is the same either way.
 */
#ifndef BISTORE_BACKGROUND_H
#define BISTORE_BACKGROUND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct background {
    pthread_t thread;
    bool threaded;
    void *(*fn)(void *);
    void *arg;
    atomic_bool returned; /* fn has returned (set by its thread) */
};

/* Starts fn(arg) in a new thread, or runs it now when none can be started. */
void background_start(struct background *b, void *(*fn)(void *), void *arg);
/* Whether fn has returned, without waiting (background_wait is still due). */
bool background_returned(struct background *b);
/* Waits until fn has returned (at once when it ran in line). */
void background_wait(struct background *b);

#endif
