/*
 * UUIDv7 generation (common/ids.h, RFC 9562): format, version and variant,
 * strict monotonicity within a thread and uniqueness across threads, and
 * the embedded millisecond timestamp.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ids.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Asserts the lowercase canonical 8-4-4-4-12 form, version 7, variant 10xx. */
static void check_format(const char *id)
{
    cr_assert_eq(strlen(id), 36, "'%s' is not 36 characters", id);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(id[i], '-', "'%s': a '-' is expected at %d", id, i);
        else
            cr_assert(hexval(id[i]) >= 0, "'%s': char %d is not lowercase hex", id, i);
    }
    cr_assert_eq(id[14], '7', "'%s': version nibble is not 7", id);
    int variant = hexval(id[19]);
    cr_assert_eq(variant & 0xc, 0x8, "'%s': variant nibble %x is not 10xx", id, variant);
}

/* The 48-bit millisecond timestamp of a UUIDv7. */
static uint64_t id_millis(const char *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (i == 8)
            continue;
        ms = ms << 4 | (uint64_t)hexval(id[i]);
    }
    return ms;
}

static uint64_t now_millis(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(uuid7, canonical_form)
{
    char id[UUID_STR_LEN];
    for (int i = 0; i < 1000; i++) {
        memset(id, 'Z', sizeof id);
        ids_uuid7(id);
        cr_assert_eq(id[36], '\0');
        check_format(id);
        cr_assert(ids_valid(id));
    }
}

Test(uuid7, strictly_increasing_in_tight_loop)
{
    char prev[UUID_STR_LEN], cur[UUID_STR_LEN];
    ids_uuid7(prev);
    for (int i = 0; i < 100000; i++) {
        ids_uuid7(cur);
        if (strcmp(prev, cur) >= 0)
            cr_assert_fail("id %d '%s' is not greater than the one before, '%s'", i, cur, prev);
        memcpy(prev, cur, sizeof cur);
    }
    check_format(cur);
}

Test(uuid7, timestamp_near_clock)
{
    uint64_t before = now_millis();
    char id[UUID_STR_LEN];
    ids_uuid7(id);
    uint64_t after = now_millis();
    uint64_t ms = id_millis(id);
    cr_expect(ms + 2000 >= before && ms <= after + 2000,
              "timestamp %llu of %s is not near the clock (%llu..%llu)", (unsigned long long)ms, id,
              (unsigned long long)before, (unsigned long long)after);
}

Test(uuid7, timestamp_near_clock_after_a_burst)
{
    /* A burst borrows from later milliseconds; it must not run far ahead. */
    char id[UUID_STR_LEN];
    for (int i = 0; i < 100000; i++)
        ids_uuid7(id);
    uint64_t now = now_millis();
    uint64_t ms = id_millis(id);
    cr_expect(ms <= now + 5000 && ms + 5000 >= now,
              "after 100000 ids the timestamp %llu is %lld ms from the clock",
              (unsigned long long)ms, (long long)(ms - now));
}

Test(uuid7, random_bits_differ)
{
    /* Two ids of one millisecond differ in more than the counter. */
    char a[UUID_STR_LEN], b[UUID_STR_LEN];
    int differ = 0;
    for (int i = 0; i < 16; i++) {
        ids_uuid7(a);
        ids_uuid7(b);
        if (strcmp(a + 19, b + 19) != 0)
            differ++;
    }
    cr_expect(differ >= 15, "the random tail repeats: only %d of 16 pairs differ", differ);
}

#define N_THREADS 4
#define PER_THREAD 50000

struct worker {
    char (*ids)[UUID_STR_LEN];
    int not_increasing; /* index of the first out-of-order id, or -1 */
};

static void *generate(void *arg)
{
    struct worker *w = arg;
    w->not_increasing = -1;
    for (int i = 0; i < PER_THREAD; i++) {
        ids_uuid7(w->ids[i]);
        if (i > 0 && w->not_increasing < 0 && strcmp(w->ids[i - 1], w->ids[i]) >= 0)
            w->not_increasing = i;
    }
    return NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

Test(uuid7, distinct_across_threads, .timeout = 60)
{
    char(*all)[UUID_STR_LEN] = calloc((size_t)N_THREADS * PER_THREAD, UUID_STR_LEN);
    cr_assert_not_null(all);
    pthread_t th[N_THREADS];
    struct worker w[N_THREADS];
    uint64_t before = now_millis();
    for (int t = 0; t < N_THREADS; t++) {
        w[t].ids = all + (size_t)t * PER_THREAD;
        cr_assert_eq(pthread_create(&th[t], NULL, generate, &w[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++)
        cr_assert_eq(pthread_join(th[t], NULL), 0);
    uint64_t after = now_millis();

    for (int t = 0; t < N_THREADS; t++)
        cr_expect_eq(w[t].not_increasing, -1, "thread %d: id %d is not greater than the one before",
                     t, w[t].not_increasing);
    for (size_t i = 0; i < (size_t)N_THREADS * PER_THREAD; i += 997) {
        check_format(all[i]);
        uint64_t ms = id_millis(all[i]);
        cr_expect(ms + 2000 >= before && ms <= after + 5000, "id %s: timestamp off the clock",
                  all[i]);
    }

    qsort(all, (size_t)N_THREADS * PER_THREAD, UUID_STR_LEN, compare_ids);
    size_t dups = 0;
    for (size_t i = 1; i < (size_t)N_THREADS * PER_THREAD; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            dups++;
    cr_expect_eq(dups, 0, "%zu duplicate ids among %d", dups, N_THREADS * PER_THREAD);
    free(all);
}
