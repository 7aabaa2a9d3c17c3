#include "common/background.h"

/* The thread: the call, then the flag that says it returned. */
static void *run(void *arg)
{
    struct background *b = arg;
    b->fn(b->arg);
    atomic_store_explicit(&b->returned, true, memory_order_release);
    return NULL;
}

void background_start(struct background *b, void *(*fn)(void *), void *arg)
{
    b->fn = fn;
    b->arg = arg;
    atomic_init(&b->returned, false);
    b->threaded = pthread_create(&b->thread, NULL, run, b) == 0;
    if (!b->threaded) {
        fn(arg);
        atomic_store_explicit(&b->returned, true, memory_order_release);
    }
}

bool background_returned(struct background *b)
{
    return atomic_load_explicit(&b->returned, memory_order_acquire);
}

void background_wait(struct background *b)
{
    if (b->threaded)
        pthread_join(b->thread, NULL);
    b->threaded = false;
}
