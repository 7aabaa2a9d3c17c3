#include "handlers/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ids.h"
#include "stores/bistore.h"
#include "stores/model/canon.h"

#define IDEMPOTENCY_KEY_MAX 200

static bool is_json_content_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

json_t *body_object(const struct request *req, struct response *res)
{
    if (!is_json_content_type(request_header(req, "Content-Type"))) {
        reply_errorf(res, BS_UNSUPPORTED_MEDIA_TYPE, NULL,
                     "the body must be JSON, sent with Content-Type: application/json");
        return NULL;
    }
    if (!req->body || req->body_len == 0) {
        reply_errorf(res, BS_INVALID_JSON, NULL, "the body is empty; a JSON object is needed");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        reply_errorf(res, BS_INVALID_JSON, NULL, "malformed JSON at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_errorf(res, BS_INVALID_REQUEST, NULL, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

bool only_fields(const json_t *obj, const char *const *allowed, const char *prefix,
                 struct bs_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)obj, key, value) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char shown[80];
            snprintf(shown, sizeof shown, "%s", key);
            if (model_valid_name(key))
                bs_error_field(err, "%s%s%s", prefix, prefix[0] ? "." : "", key);
            else
                bs_error_field(err, "%s", prefix);
            bs_error_set(err, BS_INVALID_REQUEST, "unknown field '%s'", shown);
            return false;
        }
        (void)value;
    }
    return true;
}

void refs_free(struct refs *refs)
{
    strmap_free(&refs->ids);
}

static const char *refs_find(const struct refs *refs, const char *name)
{
    return strmap_get(&refs->ids, name);
}

static bool invalid(struct bs_error *err, const char *prefix, const char *field,
                    const char *message)
{
    bs_error_field(err, "%s%s%s", prefix, prefix[0] ? "." : "", field);
    bs_error_set(err, BS_INVALID_REQUEST, "%s", message);
    return false;
}

/* A required or optional string field; false after filling err. */
static bool get_string(const json_t *obj, const char *name, bool required, const char *prefix,
                       const char **out, struct bs_error *err)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v) {
        if (required) {
            char msg[96];
            snprintf(msg, sizeof msg, "'%s' is required", name);
            return invalid(err, prefix, name, msg);
        }
        return true;
    }
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof msg, "'%s' must be a string", name);
        return invalid(err, prefix, name, msg);
    }
    *out = json_string_value(v);
    return true;
}

static bool get_name(const json_t *obj, const char *field, const char *prefix, char *out,
                     struct bs_error *err)
{
    const char *s;
    if (!get_string(obj, field, true, prefix, &s, err))
        return false;
    if (!model_valid_name(s))
        return invalid(err, prefix, field,
                       "must match ^[A-Za-z][A-Za-z0-9_]{0,63}$ (letters, digits, '_')");
    snprintf(out, NAME_MAX_LEN + 1, "%s", s);
    return true;
}

/* An entity's type: a name other than the common label; false after filling err. */
static bool entity_type(const char *prefix, const char *type, struct bs_error *err)
{
    if (model_valid_entity_type(type))
        return true;
    return invalid(err, prefix, "type",
                   "type '" MODEL_ENTITY_LABEL "' is reserved: it is the label every entity "
                   "node has besides its type's");
}

static bool get_id(const json_t *obj, bool required, const char *prefix, char *out,
                   struct bs_error *err)
{
    const char *s;
    if (!get_string(obj, "id", required, prefix, &s, err))
        return false;
    if (!s) {
        ids_uuid7(out);
        return true;
    }
    if (!ids_valid(s))
        return invalid(err, prefix, "id", "an id is " IDS_RULE);
    snprintf(out, ID_MAX_LEN + 1, "%s", s);
    return true;
}

static bool get_properties(const json_t *obj, bool patch, const char *prefix, json_t **out,
                           struct bs_error *err)
{
    json_t *v = json_object_get(obj, "properties");
    *out = NULL;
    if (!v || (json_is_null(v) && !patch))
        return true;
    char path[BS_ERROR_FIELD_MAX];
    snprintf(path, sizeof path, "%s%sproperties", prefix, prefix[0] ? "." : "");
    if (!model_check_properties(v, patch, path, err))
        return false;
    *out = json_incref(v);
    return true;
}

static bool get_metadata(const json_t *obj, const char *prefix, struct bs_op *op,
                         struct bs_error *err)
{
    json_t *v = json_object_get(obj, "metadata");
    if (!v)
        return true;
    op->set_metadata = true;
    if (json_is_null(v))
        return true;
    if (!json_is_object(v))
        return invalid(err, prefix, "metadata", "'metadata' must be an object or null");
    op->metadata = json_incref(v);
    return true;
}

static bool get_version(const json_t *obj, const char *prefix, int64_t *out, struct bs_error *err)
{
    json_t *v = json_object_get(obj, "if_version");
    *out = -1;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return invalid(err, prefix, "if_version", "'if_version' must be a positive integer");
    *out = json_integer_value(v);
    return true;
}

/* source/target: an id string or {"ref": name} of an earlier create_entity. */
static bool get_endpoint(const json_t *obj, const char *field, const char *prefix,
                         struct refs *refs, char *out, struct bs_error *err)
{
    json_t *v = json_object_get(obj, field);
    if (json_is_string(v)) {
        if (!ids_valid(json_string_value(v)))
            return invalid(err, prefix, field, "an id is " IDS_RULE);
        snprintf(out, ID_MAX_LEN + 1, "%s", json_string_value(v));
        return true;
    }
    if (json_is_object(v) && refs) {
        char sub[BS_ERROR_FIELD_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", prefix, prefix[0] ? "." : "", field);
        static const char *const ref_fields[] = {"ref", NULL};
        const char *name;
        if (!only_fields(v, ref_fields, sub, err) || !get_string(v, "ref", true, sub, &name, err))
            return false;
        const char *id = refs_find(refs, name);
        if (!id)
            return invalid(err, sub, "ref",
                           "no create_entity earlier in this transaction has this ref");
        snprintf(out, ID_MAX_LEN + 1, "%s", id);
        return true;
    }
    return invalid(err, prefix, field,
                   refs ? "must be an entity id or {\"ref\": \"<ref>\"}" : "must be an entity id");
}

static bool parse_kind(const char *s, enum op_kind *kind)
{
    static const enum op_kind kinds[] = {OP_CREATE_ENTITY, OP_CREATE_RELATIONSHIP, OP_UPDATE_ENTITY,
                                         OP_DELETE_ENTITY, OP_DELETE_RELATIONSHIP};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(s, op_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return true;
        }
    }
    return false;
}

bool parse_operation(const json_t *obj, size_t index, const char *prefix, struct bs_op *op,
                     struct refs *refs, struct bs_error *err)
{
    static const char *const f_create_entity[] = {"op",         "ref",      "id", "type",
                                                  "properties", "metadata", NULL};
    static const char *const f_create_rel[] = {"op",     "id",         "type", "source",
                                               "target", "properties", NULL};
    static const char *const f_update[] = {"op",         "id",       "if_version",
                                           "properties", "metadata", NULL};
    static const char *const f_delete_entity[] = {"op", "id", "if_version", NULL};
    static const char *const f_delete_rel[] = {"op", "id", NULL};
    memset(op, 0, sizeof *op);
    op->if_version = -1;
    err->op_index = (long)index;
    if (!json_is_object(obj)) {
        bs_error_field(err, "%s", prefix);
        bs_error_set(err, BS_INVALID_REQUEST, "an operation must be an object");
        return false;
    }
    const char *kind;
    if (!get_string(obj, "op", true, prefix, &kind, err))
        return false;
    if (strcmp(kind, "cypher") == 0 || strcmp(kind, "sql") == 0) {
        bs_error_field(err, "%s.op", prefix);
        bs_error_set(err, BS_FORBIDDEN, "raw '%s' statements are not enabled on this gateway",
                     kind);
        return false;
    }
    if (!parse_kind(kind, &op->kind))
        return invalid(err, prefix, "op",
                       "unknown op: use create_entity, create_relationship, update_entity, "
                       "delete_entity or delete_relationship");
    switch (op->kind) {
    case OP_CREATE_ENTITY: {
        const char *ref;
        if (!only_fields(obj, f_create_entity, prefix, err) ||
            !get_id(obj, false, prefix, op->id, err) ||
            !get_name(obj, "type", prefix, op->type, err) || !entity_type(prefix, op->type, err) ||
            !get_properties(obj, false, prefix, &op->properties, err) ||
            !get_metadata(obj, prefix, op, err) ||
            !get_string(obj, "ref", false, prefix, &ref, err))
            return false;
        if (ref) {
            if (!refs)
                return invalid(err, prefix, "ref", "'ref' is only for transactions");
            if (ref[0] == '\0' || strlen(ref) > MAX_REFS_LEN)
                return invalid(err, prefix, "ref", "a ref is 1..128 characters");
            enum strmap_status added = strmap_add(&refs->ids, ref, op->id);
            if (added == STRMAP_EXISTS)
                return invalid(err, prefix, "ref", "this ref is already used in the transaction");
            if (added != STRMAP_OK) { /* too big cannot happen below max_operations */
                bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
                return false;
            }
        }
        return true;
    }
    case OP_CREATE_RELATIONSHIP:
        return only_fields(obj, f_create_rel, prefix, err) &&
               get_id(obj, false, prefix, op->id, err) &&
               get_name(obj, "type", prefix, op->type, err) &&
               get_endpoint(obj, "source", prefix, refs, op->source, err) &&
               get_endpoint(obj, "target", prefix, refs, op->target, err) &&
               get_properties(obj, false, prefix, &op->properties, err);
    case OP_UPDATE_ENTITY:
        return only_fields(obj, f_update, prefix, err) && get_id(obj, true, prefix, op->id, err) &&
               get_version(obj, prefix, &op->if_version, err) &&
               get_properties(obj, true, prefix, &op->properties, err) &&
               get_metadata(obj, prefix, op, err);
    case OP_DELETE_ENTITY:
        return only_fields(obj, f_delete_entity, prefix, err) &&
               get_id(obj, true, prefix, op->id, err) &&
               get_version(obj, prefix, &op->if_version, err);
    case OP_DELETE_RELATIONSHIP:
        return only_fields(obj, f_delete_rel, prefix, err) &&
               get_id(obj, true, prefix, op->id, err);
    }
    return false;
}

bool idempotency_prepare(const struct request *req, const char *scope, const json_t *body,
                         struct bs_txn *txn, struct response *res)
{
    const char *key = request_header(req, "Idempotency-Key");
    if (!key)
        return true;
    size_t n = strlen(key);
    bool ok = n >= 1 && n <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = key[i] > 0x20 && key[i] < 0x7f;
    if (!ok) {
        reply_errorf(res, BS_INVALID_REQUEST, "Idempotency-Key",
                     "Idempotency-Key must be 1..%d printable ASCII characters",
                     IDEMPOTENCY_KEY_MAX);
        return false;
    }
    if (canon_hash(body, txn->idem_body_hash) != 0) {
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        return false;
    }
    txn->idem_key = key;
    txn->idem_scope = scope;
    return true;
}

bool path_id(const struct request *req, size_t i, const char *field, struct response *res)
{
    if (i < req->n_args && ids_valid_len(req->args[i], req->arg_len[i]))
        return true;
    reply_errorf(res, BS_INVALID_REQUEST, field,
                 "'%s' in the path is not an id: an id is " IDS_RULE " (after percent-decoding)",
                 field);
    return false;
}

bool parse_if_match(const struct request *req, int64_t *version, struct response *res)
{
    const char *v = request_header(req, "If-Match");
    *version = -1;
    if (!v || strcmp(v, "*") == 0)
        return true;
    if (strncmp(v, "W/", 2) == 0)
        v += 2;
    char *end;
    long long n = strtoll(v[0] == '"' ? v + 1 : v, &end, 10);
    bool quoted = v[0] == '"';
    if (end == v + (quoted ? 1 : 0) || n < 1 || (quoted ? strcmp(end, "\"") != 0 : *end)) {
        reply_errorf(res, BS_INVALID_REQUEST, "If-Match",
                     "If-Match must be an entity version as its ETag gives it, e.g. \"3\"");
        return false;
    }
    *version = n;
    return true;
}

bool query_limit(const struct request *req, int def, int max, int *limit, struct response *res)
{
    const char *v = request_query(req, "limit");
    *limit = def;
    if (!v)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1 || n > max) {
        reply_errorf(res, BS_INVALID_REQUEST, "limit", "limit must be an integer in 1..%d", max);
        return false;
    }
    *limit = (int)n;
    return true;
}

bool submit(struct app *app, const struct request *req, struct bs_txn *txn, bool batch,
            struct bistore_outcome *out, struct response *res)
{
    bistore_submit(app->store, txn, req->rid, out);
    if (out->err.code != BS_OK) {
        struct bs_error *err = &out->err;
        if (!batch) {
            err->op_index = -1; /* a single resource has no operations */
        } else if (err->op_index >= 0 && strncmp(err->field, "operations[", 11) != 0) {
            char field[BS_ERROR_FIELD_MAX];
            snprintf(field, sizeof field, "%s", err->field);
            if (field[0])
                bs_error_field(err, "operations[%ld].%s", err->op_index, field);
            else
                bs_error_field(err, "operations[%ld]", err->op_index);
        }
        reply_error(res, err);
        return false;
    }
    if (out->replayed)
        response_header(res, "Idempotent-Replayed", "true");
    return true;
}

json_t *single_record(const struct bistore_outcome *out)
{
    /* The outcome is wholly the caller's (bistore.h), so tx_id goes into the
     * record itself: no copy per answer. */
    json_t *rec = json_array_get(json_object_get(out->result, "records"), 0);
    if (!json_is_object(rec) ||
        json_object_set(rec, "tx_id", json_object_get(out->result, "tx_id")) != 0)
        return NULL;
    return json_incref(rec);
}

void reply_page(struct response *res, json_t *items, char *next)
{
    json_t *body = json_pack("{s:o, s:s?}", "items", items, "next", next);
    free(next);
    if (body)
        reply_json(res, 200, body);
    else
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
}

bool parse_single(const json_t *body, const char *const *allowed, const char *kind,
                  struct bs_op *op, struct response *res)
{
    struct bs_error err;
    bs_error_clear(&err);
    json_t *as_op = NULL;
    bool ok = only_fields(body, allowed, "", &err);
    if (ok) {
        as_op = json_copy((json_t *)body); /* shallow: only "op" is added at the top */
        ok = as_op && json_object_set_new(as_op, "op", json_string(kind)) == 0;
        if (!ok)
            bs_error_set(&err, BS_STORAGE_ERROR, "out of memory");
    }
    if (ok)
        ok = parse_operation(as_op, 0, "", op, NULL, &err);
    json_decref(as_op);
    if (!ok) {
        err.op_index = -1; /* a single resource has no operation index */
        reply_error(res, &err);
    }
    return ok;
}
