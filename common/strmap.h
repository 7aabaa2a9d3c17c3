/*
 * A map from strings to borrowed pointers: open addressing with linear
 * probing, keys hashed with XXH64. The map copies its keys; the values stay
 * the caller's. A zero-initialised struct strmap is an empty map, and no
 * map holds more than STRMAP_MAX_ENTRIES keys (an add past it fails with
 * STRMAP_TOO_BIG and leaves the map as it was). Entries cannot be removed:
 * what the in-batch refs of a transaction need, nothing more.
 */
#ifndef BISTORE_STRMAP_H
#define BISTORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#define STRMAP_MAX_ENTRIES ((size_t)1 << 24)

enum strmap_status { STRMAP_OK = 0, STRMAP_EXISTS, STRMAP_NOMEM, STRMAP_TOO_BIG };

struct strmap_slot {
    char *key; /* NULL: free slot */
    uint64_t hash;
    const void *value;
};

struct strmap {
    size_t n;   /* keys held */
    size_t cap; /* slots: 0 or a power of two, at least twice n */
    struct strmap_slot *slots;
};

void strmap_free(struct strmap *m);
/* The value of key, or NULL when the map does not hold it. */
const void *strmap_get(const struct strmap *m, const char *key);
/* Adds key (copied) with value. STRMAP_EXISTS when key is already there
 * (its value is kept); on any status but STRMAP_OK the map is unchanged. */
enum strmap_status strmap_add(struct strmap *m, const char *key, const void *value);

#endif
