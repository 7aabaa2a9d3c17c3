/*
 * A call in a thread of its own (common/background.h): background_returned
 * says false while the call runs and true once it has returned, with what
 * the call wrote visible to the caller; background_wait joins it; a struct
 * is used again for the next call.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "common/background.h"

struct call {
    atomic_bool release; /* set by the test: the call may return */
    int result;          /* written by the call before it returns */
};

static void *held_call(void *arg)
{
    struct call *c = arg;
    while (!atomic_load(&c->release)) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    c->result = 42;
    return NULL;
}

static bool returned_within(struct background *b, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (background_returned(b))
            return true;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    return background_returned(b);
}

Test(background, returned_says_when_the_call_is_done)
{
    struct background b = {0};
    for (int round = 0; round < 2; round++) { /* the same struct, twice */
        struct call c = {.result = 0};
        atomic_init(&c.release, false);
        background_start(&b, held_call, &c);
        cr_assert(!returned_within(&b, 50), "round %d: returned while the call was held", round);
        atomic_store(&c.release, true);
        cr_assert(returned_within(&b, 10000), "round %d: never said returned", round);
        cr_expect_eq(c.result, 42); /* what the call wrote is visible */
        background_wait(&b);
        cr_expect(background_returned(&b));
    }
}

static void *quick_call(void *arg)
{
    *(int *)arg += 1;
    return NULL;
}

Test(background, wait_joins_the_call)
{
    struct background b = {0};
    int n = 0;
    background_start(&b, quick_call, &n);
    background_wait(&b);
    cr_expect_eq(n, 1);
    cr_expect(background_returned(&b));
}
