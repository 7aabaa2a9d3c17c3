/*
 * Reads, straight from SQLite through the pool of read-only connections.
 * WAL mode lets them run beside the writer; they see committed data only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "stores/bistore_internal.h"

/* A record by id in its public JSON form, from connection c. */
typedef enum lookup (*record_getter)(struct sql_conn *c, const char *id, json_t **out,
                                     struct bs_error *err);

static enum lookup entity_json_by_id(struct sql_conn *c, const char *id, json_t **out,
                                     struct bs_error *err)
{
    struct sql_entity row;
    enum lookup found = sql_entity_get(c, id, &row, err);
    if (found == LOOKUP_FOUND && !(*out = sql_entity_json(&row)))
        found = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), LOOKUP_FAILED);
    sql_entity_clear(&row);
    return found;
}

static enum lookup relationship_json_by_id(struct sql_conn *c, const char *id, json_t **out,
                                           struct bs_error *err)
{
    struct sql_relationship row;
    enum lookup found = sql_relationship_get(c, id, &row, err);
    if (found == LOOKUP_FOUND && !(*out = sql_relationship_json(&row)))
        found = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), LOOKUP_FAILED);
    sql_relationship_clear(&row);
    return found;
}

/* The one read by id: a connection of the pool, the getter, the connection back. */
static enum lookup read_by_id(struct bistore *bs, record_getter get, const char *id, json_t **out,
                              struct bs_error *err)
{
    *out = NULL;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return LOOKUP_FAILED;
    enum lookup found = get(c, id, out, err);
    sql_pool_put(&bs->readers, c);
    return found;
}

enum lookup bistore_get_entity(struct bistore *bs, const char *id, json_t **out,
                               struct bs_error *err)
{
    return read_by_id(bs, entity_json_by_id, id, out, err);
}

enum lookup bistore_get_relationship(struct bistore *bs, const char *id, json_t **out,
                                     struct bs_error *err)
{
    return read_by_id(bs, relationship_json_by_id, id, out, err);
}

enum lookup bistore_get_transaction(struct bistore *bs, const char *tx_id, json_t **out,
                                    struct bs_error *err)
{
    *out = NULL;
    struct sql_landed landed;
    engine_landed(bs->engine, &landed);
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return LOOKUP_FAILED;
    enum lookup found = sql_tx_get(c, tx_id, &landed, out, err);
    sql_pool_put(&bs->readers, c);
    return found;
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
    bool more = false;
    int rc = sql_entity_list(c, type, key, limit, bs->max_page_bytes, *items, &more, err);
    sql_pool_put(&bs->readers, c);
    if (rc == 0 && more) {
        const char *last = json_string_value(
            json_object_get(json_array_get(*items, json_array_size(*items) - 1), "id"));
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
    struct sql_landed landed;
    engine_landed(bs->engine, &landed);
    int rc = sql_tx_list(c, state, (int64_t)n, limit, bs->max_page_bytes, &landed, *items, &last,
                         &more, err);
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

enum lookup bistore_refused_intent(struct bistore *bs, json_t **out, struct bs_error *err)
{
    *out = NULL;
    int64_t seq = readiness_stuck_seq(bs->engine);
    if (!seq)
        return LOOKUP_MISSING;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return LOOKUP_FAILED;
    struct sql_intent in;
    enum lookup found = sql_intent_get_pending(c, seq, &in, err);
    sql_pool_put(&bs->readers, c);
    if (found != LOOKUP_FOUND)
        return found;
    *out = json_pack("{s:I, s:s, s:O?, s:O?}", "seq", (json_int_t)seq, "tx_id", in.tx_id,
                     "operations", in.operations, "refused", in.refused);
    sql_intent_clear(&in);
    return *out ? LOOKUP_FOUND
                : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), LOOKUP_FAILED);
}
