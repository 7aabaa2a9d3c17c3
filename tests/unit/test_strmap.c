/*
 * strmap (common/strmap.h): lookups, duplicates, keys whose hashes share a
 * slot, growth across many keys, and the zero-initialised empty map.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "common/strmap.h"

Test(strmap, empty_map_finds_nothing)
{
    struct strmap m = {0};
    cr_expect_null(strmap_get(&m, "a"));
    cr_expect_null(strmap_get(&m, ""));
    strmap_free(&m);
    cr_expect_eq(m.n, 0);
    cr_expect_null(m.slots);
}

Test(strmap, add_then_get)
{
    struct strmap m = {0};
    int a = 0, b = 0;
    cr_assert_eq(strmap_add(&m, "a", &a), STRMAP_OK);
    cr_assert_eq(strmap_add(&m, "b", &b), STRMAP_OK);
    cr_assert_eq(strmap_add(&m, "", &b), STRMAP_OK, "the empty key is a key");
    cr_expect_eq(strmap_get(&m, "a"), &a);
    cr_expect_eq(strmap_get(&m, "b"), &b);
    cr_expect_eq(strmap_get(&m, ""), &b);
    cr_expect_null(strmap_get(&m, "c"));
    cr_expect_null(strmap_get(&m, "ab"));
    cr_expect_eq(m.n, 3);
    strmap_free(&m);
}

Test(strmap, keys_are_copied)
{
    struct strmap m = {0};
    char key[8] = "k1";
    int v = 0;
    cr_assert_eq(strmap_add(&m, key, &v), STRMAP_OK);
    key[1] = '2';
    cr_expect_eq(strmap_get(&m, "k1"), &v);
    cr_expect_null(strmap_get(&m, "k2"));
    strmap_free(&m);
}

Test(strmap, duplicate_keeps_first_value)
{
    struct strmap m = {0};
    int a = 0, b = 0;
    cr_assert_eq(strmap_add(&m, "x", &a), STRMAP_OK);
    cr_expect_eq(strmap_add(&m, "x", &b), STRMAP_EXISTS);
    cr_expect_eq(strmap_get(&m, "x"), &a);
    cr_expect_eq(m.n, 1);
    strmap_free(&m);
}

/* Keys that start in the same slot of the smallest table (16 slots) are
 * all found, whichever was added first, and duplicates among them too. */
Test(strmap, colliding_keys)
{
    char keys[6][16];
    size_t found = 0;
    uint64_t slot = 0;
    for (int i = 0; found < 6 && i < 100000; i++) {
        char k[16];
        snprintf(k, sizeof k, "ref%d", i);
        uint64_t h = XXH64(k, strlen(k), 0) & 15;
        if (found == 0)
            slot = h;
        if (h == slot)
            memcpy(keys[found++], k, sizeof k);
    }
    cr_assert_eq(found, 6);
    struct strmap m = {0};
    int values[6] = {0};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(strmap_add(&m, keys[i], &values[i]), STRMAP_OK);
        cr_assert_eq(m.cap, 16, "6 keys fit the first table");
    }
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(strmap_get(&m, keys[i]), &values[i], "%s", keys[i]);
        cr_expect_eq(strmap_add(&m, keys[i], &values[0]), STRMAP_EXISTS, "%s", keys[i]);
    }
    cr_expect_null(strmap_get(&m, "not-there"));
    strmap_free(&m);
}

/* Many keys: the table grows, stays at most half full, loses nothing. */
Test(strmap, grows)
{
    enum { N = 50000 };
    static int values[N];
    struct strmap m = {0};
    char k[24];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "e%d", i);
        cr_assert_eq(strmap_add(&m, k, &values[i]), STRMAP_OK, "%s", k);
    }
    cr_expect_eq(m.n, N);
    cr_expect_geq(m.cap, 2 * m.n);
    cr_expect_eq(m.cap & (m.cap - 1), 0, "a power of two");
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "e%d", i);
        cr_expect_eq(strmap_get(&m, k), &values[i], "%s", k);
    }
    snprintf(k, sizeof k, "e%d", N);
    cr_expect_null(strmap_get(&m, k));
    strmap_free(&m);
}

/* The limit: a map at STRMAP_MAX_ENTRIES takes no more keys but still
 * answers duplicates. Faked by setting n, the table itself stays small. */
Test(strmap, limit)
{
    struct strmap m = {0};
    int v = 0;
    cr_assert_eq(strmap_add(&m, "a", &v), STRMAP_OK);
    size_t real = m.n;
    m.n = STRMAP_MAX_ENTRIES;
    cr_expect_eq(strmap_add(&m, "b", &v), STRMAP_TOO_BIG);
    cr_expect_eq(strmap_add(&m, "a", &v), STRMAP_EXISTS);
    cr_expect_null(strmap_get(&m, "b"));
    m.n = real;
    strmap_free(&m);
}
