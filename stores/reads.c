/*
 * Reads, straight from SQLite through the pool of read-only connections.
 * WAL mode lets them run beside the writer; they see committed data only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "stores/engine/internal.h"

int bistore_get_entity(struct bistore *bs, const char *id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    struct sql_entity e;
    int rc = sql_entity_get(c, id, &e, err);
    if (rc == 0) {
        *out = sql_entity_json(&e);
        if (!*out)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    sql_entity_clear(&e);
    sql_pool_put(&bs->readers, c);
    return rc;
}

int bistore_get_relationship(struct bistore *bs, const char *id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    struct sql_relationship r;
    int rc = sql_relationship_get(c, id, &r, err);
    if (rc == 0) {
        *out = sql_relationship_json(&r);
        if (!*out)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    sql_relationship_clear(&r);
    sql_pool_put(&bs->readers, c);
    return rc;
}

int bistore_get_transaction(struct bistore *bs, const char *tx_id, json_t **out,
                            struct bs_error *err)
{
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    int rc = sql_tx_get(c, tx_id, out, err);
    sql_pool_put(&bs->readers, c);
    return rc;
}

/* Decodes an `after` cursor into key; -1 (invalid_request) when it is not ours. */
static int decode_after(const char *after, char *key, size_t cap, struct bs_error *err)
{
    key[0] = '\0';
    if (!after)
        return 0;
    if (cursor_decode(after, key, cap) != 0) {
        bs_error_field(err, "after");
        return bs_error_set(err, BS_INVALID_REQUEST,
                            "'after' is not a cursor this gateway "
                            "gave out"),
               -1;
    }
    return 0;
}

int bistore_list_entities(struct bistore *bs, const char *type, const char *after, int limit,
                          json_t **items, char **next, struct bs_error *err)
{
    *next = NULL;
    char key[ID_MAX_LEN + 1];
    if (decode_after(after, key, sizeof key, err) != 0)
        return -1;
    *items = json_array();
    struct sql_conn *c = *items ? sql_pool_get(&bs->readers, err) : NULL;
    if (!c)
        return *items ? -1 : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    /* One row more than asked tells whether another page exists. */
    int rc = sql_entity_list(c, type, key, limit + 1, *items, err);
    sql_pool_put(&bs->readers, c);
    if (rc == 0 && json_array_size(*items) > (size_t)limit) {
        json_array_remove(*items, (size_t)limit);
        const char *last =
            json_string_value(json_object_get(json_array_get(*items, (size_t)limit - 1), "id"));
        *next = cursor_encode(last);
        if (!*next)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    return rc;
}

int bistore_list_transactions(struct bistore *bs, const char *state, const char *after, int limit,
                              json_t **items, char **next, struct bs_error *err)
{
    *next = NULL;
    char key[32];
    if (decode_after(after, key, sizeof key, err) != 0)
        return -1;
    char *end = NULL;
    long long n = key[0] ? strtoll(key, &end, 10) : 0;
    if (key[0] && (*end || n < 0)) {
        bs_error_field(err, "after");
        return bs_error_set(err, BS_INVALID_REQUEST,
                            "'after' is not a cursor this gateway "
                            "gave out"),
               -1;
    }
    *items = json_array();
    struct sql_conn *c = *items ? sql_pool_get(&bs->readers, err) : NULL;
    if (!c)
        return *items ? -1 : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    int64_t last = 0;
    bool more = false;
    int rc = sql_tx_list(c, state, (int64_t)n, limit, *items, &last, &more, err);
    sql_pool_put(&bs->readers, c);
    if (rc == 0 && more) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)last);
        *next = cursor_encode(num);
        if (!*next)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    return rc;
}

/* Neo4j clients for reader threads (verify, readiness): the writer keeps its
 * own, so a read never waits behind a write. */
struct neo4j_client *read_client_get(struct bistore *bs)
{
    pthread_mutex_lock(&bs->lock);
    struct neo4j_client *c = bs->n_read_clients ? bs->read_clients[--bs->n_read_clients] : NULL;
    pthread_mutex_unlock(&bs->lock);
    return c ? c : neo4j_client_new(&bs->neo4j_cfg);
}

void read_client_put(struct bistore *bs, struct neo4j_client *c)
{
    pthread_mutex_lock(&bs->lock);
    if (bs->n_read_clients < READ_CLIENTS_MAX) {
        bs->read_clients[bs->n_read_clients++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&bs->lock);
    neo4j_client_free(c);
}
