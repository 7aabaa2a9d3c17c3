#include "stores/model/model.h"

#include <stdlib.h>
#include <string.h>

const char *op_kind_name(enum op_kind kind)
{
    switch (kind) {
    case OP_CREATE_ENTITY: return "create_entity";
    case OP_CREATE_RELATIONSHIP: return "create_relationship";
    case OP_UPDATE_ENTITY: return "update_entity";
    case OP_DELETE_ENTITY: return "delete_entity";
    case OP_DELETE_RELATIONSHIP: return "delete_relationship";
    case OP_CYPHER: return "cypher";
    case OP_SQL: return "sql";
    }
    return "unknown";
}

bool op_is_raw(enum op_kind kind)
{
    return kind == OP_CYPHER || kind == OP_SQL;
}

bool txn_has_raw(const struct bs_txn *txn)
{
    for (size_t i = 0; i < txn->n_ops; i++)
        if (op_is_raw(txn->ops[i].kind))
            return true;
    return false;
}

void txn_free_ops(struct bs_txn *txn)
{
    for (size_t i = 0; i < txn->n_ops; i++) {
        json_decref(txn->ops[i].properties);
        json_decref(txn->ops[i].metadata);
        json_decref(txn->ops[i].parameters);
        free(txn->ops[i].statement);
    }
    free(txn->ops);
    txn->ops = NULL;
    txn->n_ops = 0;
    json_decref(txn->provenance);
    txn->provenance = NULL;
}

bool model_valid_name(const char *s)
{
    return ids_valid_name(s);
}

bool model_valid_entity_type(const char *s)
{
    return model_valid_name(s) && strcmp(s, MODEL_ENTITY_LABEL) != 0;
}

/* The JSON type of a storable scalar, or -1 when it is none. */
static int scalar_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return 0;
    case JSON_INTEGER: return 1;
    case JSON_REAL: return 2;
    case JSON_TRUE:
    case JSON_FALSE: return 3;
    default: return -1;
    }
}

static size_t max_properties = MAX_PROPERTIES;
static size_t max_string_bytes = MAX_STRING_BYTES;

void model_set_limits(size_t properties, size_t string_bytes)
{
    if (properties)
        max_properties = properties;
    if (string_bytes)
        max_string_bytes = string_bytes;
}

/* Whether v is a string longer than max_string_bytes. */
static bool string_too_long(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > max_string_bytes;
}

static bool check_value(const json_t *v, bool allow_null, const char *prefix, const char *key,
                        struct bs_error *err)
{
    if (json_is_null(v)) {
        if (allow_null)
            return true;
        bs_error_field(err, "%s.%s", prefix, key);
        bs_error_set(err, BS_INVALID_REQUEST,
                     "property '%s' is null: null only removes a key in an update", key);
        return false;
    }
    if (string_too_long(v)) {
        bs_error_field(err, "%s.%s", prefix, key);
        bs_error_set(err, BS_INVALID_REQUEST,
                     "property '%s' is a string of more than %zu bytes (--max-string-bytes)", key,
                     max_string_bytes);
        return false;
    }
    if (scalar_kind(v) >= 0)
        return true;
    bs_error_field(err, "%s.%s", prefix, key);
    if (!json_is_array(v)) {
        bs_error_set(err, BS_INVALID_REQUEST,
                     "property '%s' is an object: Neo4j stores only strings, numbers, "
                     "booleans and arrays of one of them",
                     key);
        return false;
    }
    if (json_array_size(v) > MAX_ARRAY_ITEMS) {
        bs_error_set(err, BS_INVALID_REQUEST, "property '%s' has more than %d items", key,
                     MAX_ARRAY_ITEMS);
        return false;
    }
    int first = -1;
    size_t i;
    json_t *item;
    json_array_foreach (v, i, item) {
        int k = scalar_kind(item);
        if (k < 0) {
            bs_error_set(err, BS_INVALID_REQUEST,
                         "property '%s' item %zu is not a string, number or boolean", key, i);
            return false;
        }
        if (first >= 0 && k != first) {
            bs_error_set(err, BS_INVALID_REQUEST,
                         "property '%s' mixes item types: arrays must be homogeneous "
                         "(integers and floats do not mix)",
                         key);
            return false;
        }
        if (string_too_long(item)) {
            bs_error_set(err, BS_INVALID_REQUEST,
                         "property '%s' item %zu is a string of more than %zu bytes "
                         "(--max-string-bytes)",
                         key, i, max_string_bytes);
            return false;
        }
        first = k;
    }
    return true;
}

bool model_check_properties(const json_t *props, bool allow_null, const char *prefix,
                            struct bs_error *err)
{
    if (!json_is_object(props)) {
        bs_error_field(err, "%s", prefix);
        bs_error_set(err, BS_INVALID_REQUEST, "'%s' must be an object", prefix);
        return false;
    }
    if (json_object_size(props) > max_properties) {
        bs_error_field(err, "%s", prefix);
        bs_error_set(err, BS_INVALID_REQUEST, "more than %zu properties (--max-properties)",
                     max_properties);
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)props, key, value) {
        if (key[0] == '_' || strcmp(key, "id") == 0) {
            bs_error_field(err, "%s.%s", prefix, key);
            bs_error_set(err, BS_INVALID_REQUEST,
                         "property key '%s' is reserved: 'id' and keys starting with '_' "
                         "belong to the gateway",
                         key);
            return false;
        }
        if (!model_valid_name(key)) {
            bs_error_field(err, "%s.%s", prefix, key);
            bs_error_set(err, BS_INVALID_REQUEST,
                         "property key is invalid: keys match ^[A-Za-z][A-Za-z0-9_]{0,63}$");
            return false;
        }
        if (!check_value(value, allow_null, prefix, key, err))
            return false;
    }
    return true;
}
