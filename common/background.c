#include "common/background.h"

void background_start(struct background *b, void *(*fn)(void *), void *arg)
{
    b->threaded = pthread_create(&b->thread, NULL, fn, arg) == 0;
    if (!b->threaded)
        fn(arg);
}

void background_wait(struct background *b)
{
    if (b->threaded)
        pthread_join(b->thread, NULL);
    b->threaded = false;
}
