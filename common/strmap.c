#include "common/strmap.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define STRMAP_MIN_SLOTS 16

void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* The slot holding key, or the free slot where it would go. cap > n. */
static struct strmap_slot *find_slot(const struct strmap *m, const char *key, uint64_t hash)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == hash && strcmp(s->key, key) == 0))
            return s;
    }
}

const void *strmap_get(const struct strmap *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    const struct strmap_slot *s = find_slot(m, key, XXH64(key, strlen(key), 0));
    return s->key ? s->value : NULL;
}

/* Moves every key to a table of cap slots (a power of two above 2 n). */
static enum strmap_status rehash(struct strmap *m, size_t cap)
{
    struct strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return STRMAP_NOMEM;
    struct strmap old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *find_slot(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
    free(old.slots);
    return STRMAP_OK;
}

enum strmap_status strmap_add(struct strmap *m, const char *key, const void *value)
{
    size_t len = strlen(key);
    uint64_t hash = XXH64(key, len, 0);
    if (m->n > 0 && find_slot(m, key, hash)->key)
        return STRMAP_EXISTS;
    if (m->n >= STRMAP_MAX_ENTRIES)
        return STRMAP_TOO_BIG;
    /* At most half full, so probes stay short and a free slot always exists. */
    if (2 * (m->n + 1) > m->cap) {
        enum strmap_status status = rehash(m, m->cap ? 2 * m->cap : STRMAP_MIN_SLOTS);
        if (status != STRMAP_OK)
            return status;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return STRMAP_NOMEM;
    memcpy(copy, key, len + 1);
    struct strmap_slot *s = find_slot(m, key, hash);
    s->key = copy;
    s->hash = hash;
    s->value = value;
    m->n++;
    return STRMAP_OK;
}
