#include "handlers/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "stores/model/canon.h"

#define IDEMPOTENCY_KEY_MAX 200
#define OP_FIELDS_MAX 8

void refs_free(struct refs *refs)
{
    strmap_free(&refs->ops);
}

bool raw_statements_permitted(const struct app *app, const struct request *req,
                              struct bs_error *err)
{
    if (!app->allow_raw_statements) {
        bs_error_set(err, BS_FORBIDDEN,
                     "raw 'cypher' and 'sql' operations are not enabled on this gateway (start it "
                     "with --allow-raw-statements)");
        return false;
    }
    if (!request_has_scope(req, SCOPE_ADMIN)) {
        bs_error_set(err, BS_FORBIDDEN,
                     "raw 'cypher' and 'sql' operations need an API key with the 'admin' scope");
        return false;
    }
    return true;
}

bool repair_permitted(const struct request *req, bool repairs, struct bs_error *err)
{
    if (!repairs || request_has_scope(req, SCOPE_ADMIN))
        return true;
    bs_error_set(err, BS_FORBIDDEN,
                 "a reconciliation with a repair (dry runs included) needs an API key with the "
                 "'admin' scope");
    return false;
}

/* ---- the model's fields (FIELD_CUSTOM parsers) ---- */

/* What the fields of one operation fill beyond their own destination. */
struct op_context {
    struct bs_op *op;
    struct refs *refs; /* NULL: refs are not allowed */
};

/* A type: a name that may go into Cypher (model_valid_name), into dest. */
static bool parse_name(const json_t *v, const struct field_spec *spec, const char *path,
                       struct bs_error *err)
{
    if (!json_is_string(v)) {
        char message[96];
        snprintf(message, sizeof message, "'%s' must be a string", spec->name);
        return fields_invalid(err, "", path, message);
    }
    if (!model_valid_name(json_string_value(v)))
        return fields_invalid(err, "", path,
                              "must match ^[A-Za-z][A-Za-z0-9_]{0,63}$ (letters, digits, '_')");
    snprintf(spec->dest, NAME_MAX_LEN + 1, "%s", json_string_value(v));
    return true;
}

/* An entity's type: a name other than the common label. */
static bool parse_entity_type(const json_t *v, const struct field_spec *spec, const char *path,
                              struct bs_error *err)
{
    if (!parse_name(v, spec, path, err))
        return false;
    if (model_valid_entity_type(spec->dest))
        return true;
    return fields_invalid(err, "", path,
                          "type '" MODEL_ENTITY_LABEL "' is reserved: it is the label every entity "
                          "node has besides its type's");
}

/* Properties (a new reference into dest); null means none. */
static bool parse_properties(const json_t *v, const struct field_spec *spec, const char *path,
                             struct bs_error *err)
{
    if (json_is_null(v))
        return true;
    if (!model_check_properties(v, false, path, err))
        return false;
    *(json_t **)spec->dest = json_incref((json_t *)v);
    return true;
}

/* A patch of properties: null removes a key (and a null patch is refused). */
static bool parse_patch(const json_t *v, const struct field_spec *spec, const char *path,
                        struct bs_error *err)
{
    if (!model_check_properties(v, true, path, err))
        return false;
    *(json_t **)spec->dest = json_incref((json_t *)v);
    return true;
}

/* metadata: an object, or null (none); given either way, it replaces. */
static bool parse_metadata(const json_t *v, const struct field_spec *spec, const char *path,
                           struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (!json_is_object(v) && !json_is_null(v))
        return fields_invalid(err, "", path, "'metadata' must be an object or null");
    ctx->op->set_metadata = true;
    ctx->op->metadata = json_is_object(v) ? json_incref((json_t *)v) : NULL;
    return true;
}

/*
 * {"ref": name} in place of an id: the id of the create earlier in this
 * transaction that took that ref, which must create a `kind` (an entity for
 * endpoints and entity operations, a relationship for delete_relationship).
 * Into dest (ID_MAX_LEN + 1).
 */
static bool resolve_ref(const json_t *v, const struct op_context *ctx, enum op_kind kind,
                        const char *path, char *dest, struct bs_error *err)
{
    const char *name;
    const struct field_spec ref[] = {{"ref", FIELD_STRING, .required = true, .dest = &name}, {0}};
    if (!fields_parse(v, ref, path, err))
        return false;
    const struct bs_op *target = strmap_get(&ctx->refs->ops, name);
    if (!target)
        return fields_invalid(err, path, "ref",
                              "no create earlier in this transaction has this ref (a ref is "
                              "named by its create, before any operation that uses it)");
    if (target->kind != kind)
        return fields_invalid(
            err, path, "ref",
            kind == OP_CREATE_ENTITY
                ? "this ref names a relationship: an entity's ref is needed here"
                : "this ref names an entity: a relationship's ref is needed here");
    snprintf(dest, ID_MAX_LEN + 1, "%s", target->id);
    return true;
}

/* An id string, or in a batch {"ref": name} of an earlier create of the
 * kind spec->arg's context wants (endpoints: an entity). */
static bool parse_id_or_ref(const json_t *v, const struct field_spec *spec, const char *path,
                            enum op_kind want, struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (json_is_string(v)) {
        if (!ids_valid(json_string_value(v)))
            return fields_invalid(err, "", path, "an id is " IDS_RULE);
        snprintf(spec->dest, ID_MAX_LEN + 1, "%s", json_string_value(v));
        return true;
    }
    if (!json_is_object(v) || !ctx->refs)
        return fields_invalid(err, "", path, spec->message);
    return resolve_ref(v, ctx, want, path, spec->dest, err);
}

/* source/target: an id string or {"ref": name} of an earlier create_entity. */
static bool parse_endpoint(const json_t *v, const struct field_spec *spec, const char *path,
                           struct bs_error *err)
{
    return parse_id_or_ref(v, spec, path, OP_CREATE_ENTITY, err);
}

/* The id an update or delete acts on: an id or a ref of an earlier create. */
static bool parse_target_id(const json_t *v, const struct field_spec *spec, const char *path,
                            struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    enum op_kind want =
        ctx->op->kind == OP_DELETE_RELATIONSHIP ? OP_CREATE_RELATIONSHIP : OP_CREATE_ENTITY;
    return parse_id_or_ref(v, spec, path, want, err);
}

/* ref: names a create's id for the operations after it. */
static bool parse_ref(const json_t *v, const struct field_spec *spec, const char *path,
                      struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (!json_is_string(v))
        return fields_invalid(err, "", path, "'ref' must be a string");
    const char *ref = json_string_value(v);
    if (!ctx->refs)
        return fields_invalid(err, "", path, "'ref' is only for transactions");
    if (ref[0] == '\0' || strlen(ref) > MAX_REFS_LEN)
        return fields_invalid(err, "", path, "a ref is 1..128 characters");
    enum strmap_status added = strmap_add(&ctx->refs->ops, ref, ctx->op);
    if (added == STRMAP_EXISTS)
        return fields_invalid(err, "", path, "this ref is already used in the transaction");
    if (added != STRMAP_OK) { /* too big cannot happen below max_operations */
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return false;
    }
    return true;
}

/* ---- raw statements ---- */

/* statement: the text of a raw statement, one statement, into op->statement. */
static bool parse_statement(const json_t *v, const struct field_spec *spec, const char *path,
                            struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (!json_is_string(v))
        return fields_invalid(err, "", path, "'statement' must be a string");
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(text) != len)
        return fields_invalid(err, "", path, "'statement' must not hold a NUL character");
    if (len > RAW_STATEMENT_MAX)
        return fields_invalid(err, "", path, "'statement' is longer than 1 MiB");
    size_t blank = strspn(text, " \t\r\n");
    if (blank == len)
        return fields_invalid(err, "", path, "'statement' is empty");
    ctx->op->statement = strdup(text);
    if (!ctx->op->statement) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return false;
    }
    return true;
}

/* A Cypher statement's parameters: an object (any JSON values), or null. */
static bool parse_cypher_parameters(const json_t *v, const struct field_spec *spec,
                                    const char *path, struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (json_is_null(v))
        return true;
    if (!json_is_object(v))
        return fields_invalid(err, "", path, "'parameters' of a cypher operation is an object");
    ctx->op->parameters = json_incref((json_t *)v);
    return true;
}

/* An SQL statement's parameters: an array of strings, numbers, booleans and
 * nulls, bound to ?1, ?2... in order; or null. */
static bool parse_sql_parameters(const json_t *v, const struct field_spec *spec, const char *path,
                                 struct bs_error *err)
{
    struct op_context *ctx = spec->arg;
    if (json_is_null(v))
        return true;
    if (!json_is_array(v))
        return fields_invalid(err, "", path, "'parameters' of an sql operation is an array");
    size_t i;
    const json_t *p;
    json_array_foreach (v, i, p) {
        if (json_is_object(p) || json_is_array(p)) {
            bs_error_field(err, "%s[%zu]", path, i);
            bs_error_set(err, BS_INVALID_REQUEST,
                         "an SQL parameter is a string, a number, a boolean or null");
            return false;
        }
    }
    ctx->op->parameters = json_incref((json_t *)v);
    return true;
}

/* ---- operations ---- */

/*
 * The field specs of an operation of kind into specs (OP_FIELDS_MAX + 1,
 * ended), in the order they are checked. A single resource's body carries
 * neither "op" nor "ref", and an update's neither "id" nor "if_version".
 */
static void op_fields(enum op_kind kind, struct op_context *ctx, bool single,
                      struct field_spec *specs)
{
    struct bs_op *op = ctx->op;
    bool create = kind == OP_CREATE_ENTITY || kind == OP_CREATE_RELATIONSHIP;
    const char *endpoint =
        ctx->refs ? "must be an entity id or {\"ref\": \"<ref>\"}" : "must be an entity id";
    const struct field_spec f_op = {.name = "op", .type = FIELD_STRING};
    /* in a batch, what an update or delete acts on may be named by a ref */
    const struct field_spec f_id =
        create || single || !ctx->refs
            ? (struct field_spec){"id", FIELD_ID, .required = !create, .dest = op->id,
                                  .generate = create}
            : (struct field_spec){"id",
                                  FIELD_CUSTOM,
                                  .required = true,
                                  .dest = op->id,
                                  .message = "must be an id or {\"ref\": \"<ref>\"}",
                                  .parse = parse_target_id,
                                  .arg = ctx};
    const struct field_spec f_if_version = {
        "if_version", FIELD_INTEGER,    .dest = &op->if_version,
        .min = 1,     .max = INT64_MAX, .message = "'if_version' must be a positive integer"};
    const struct field_spec f_metadata = {"metadata", FIELD_CUSTOM, .parse = parse_metadata,
                                          .arg = ctx};
    size_t n = 0;
    if (!single)
        specs[n++] = f_op;
    if (op_is_raw(kind)) {
        specs[n++] = (struct field_spec){"statement", FIELD_CUSTOM, .required = true,
                                         .parse = parse_statement, .arg = ctx};
        specs[n++] = (struct field_spec){"parameters", FIELD_CUSTOM,
                                         .parse = kind == OP_CYPHER ? parse_cypher_parameters
                                                                    : parse_sql_parameters,
                                         .arg = ctx};
        specs[n] = (struct field_spec){0};
        return;
    }
    if (!single || kind != OP_UPDATE_ENTITY)
        specs[n++] = f_id;
    switch (kind) {
    case OP_CREATE_ENTITY:
        specs[n++] = (struct field_spec){"type", FIELD_CUSTOM, .required = true, .dest = op->type,
                                         .parse = parse_entity_type};
        specs[n++] = (struct field_spec){"properties", FIELD_CUSTOM, .dest = &op->properties,
                                         .parse = parse_properties};
        specs[n++] = f_metadata;
        if (!single)
            specs[n++] = (struct field_spec){"ref", FIELD_CUSTOM, .parse = parse_ref, .arg = ctx};
        break;
    case OP_CREATE_RELATIONSHIP:
        specs[n++] = (struct field_spec){"type", FIELD_CUSTOM, .required = true, .dest = op->type,
                                         .parse = parse_name};
        specs[n++] =
            (struct field_spec){"source",           FIELD_CUSTOM,        .required = true,
                                .dest = op->source, .message = endpoint, .parse = parse_endpoint,
                                .arg = ctx};
        specs[n++] =
            (struct field_spec){"target",           FIELD_CUSTOM,        .required = true,
                                .dest = op->target, .message = endpoint, .parse = parse_endpoint,
                                .arg = ctx};
        specs[n++] = (struct field_spec){"properties", FIELD_CUSTOM, .dest = &op->properties,
                                         .parse = parse_properties};
        if (!single)
            specs[n++] = (struct field_spec){"ref", FIELD_CUSTOM, .parse = parse_ref, .arg = ctx};
        break;
    case OP_UPDATE_ENTITY:
        if (!single)
            specs[n++] = f_if_version;
        specs[n++] = (struct field_spec){"properties", FIELD_CUSTOM, .dest = &op->properties,
                                         .parse = parse_patch};
        specs[n++] = f_metadata;
        break;
    case OP_DELETE_ENTITY: specs[n++] = f_if_version; break;
    case OP_DELETE_RELATIONSHIP: break;
    case OP_CYPHER:
    case OP_SQL: break; /* above */
    }
    specs[n] = (struct field_spec){0};
}

static bool parse_kind(const char *s, enum op_kind *kind)
{
    static const enum op_kind kinds[] = {OP_CREATE_ENTITY,
                                         OP_CREATE_RELATIONSHIP,
                                         OP_UPDATE_ENTITY,
                                         OP_DELETE_ENTITY,
                                         OP_DELETE_RELATIONSHIP,
                                         OP_CYPHER,
                                         OP_SQL};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(s, op_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return true;
        }
    }
    return false;
}

bool parse_operation(const json_t *obj, size_t index, const char *prefix, struct bs_op *op,
                     struct refs *refs, const struct bs_error *raw_denied, struct bs_error *err)
{
    memset(op, 0, sizeof *op);
    op->if_version = -1;
    err->op_index = (long)index;
    if (!json_is_object(obj)) {
        bs_error_field(err, "%s", prefix);
        bs_error_set(err, BS_INVALID_REQUEST, "an operation must be an object");
        return false;
    }
    /* "op" first: it says which fields the others may be */
    json_t *v = json_object_get(obj, "op");
    if (!v)
        return fields_invalid(err, prefix, "op", "'op' is required");
    if (!json_is_string(v))
        return fields_invalid(err, prefix, "op", "'op' must be a string");
    const char *kind = json_string_value(v);
    if (!parse_kind(kind, &op->kind))
        return fields_invalid(err, prefix, "op",
                              "unknown op: use create_entity, create_relationship, update_entity, "
                              "delete_entity, delete_relationship, cypher or sql");
    if (op_is_raw(op->kind) && raw_denied) {
        bs_error_field(err, "%s.op", prefix);
        bs_error_set(err, raw_denied->code, "operation %zu (%s): %s", index, kind,
                     raw_denied->message);
        return false;
    }
    struct op_context ctx = {op, refs};
    struct field_spec specs[OP_FIELDS_MAX + 1];
    op_fields(op->kind, &ctx, false, specs);
    return fields_parse(obj, specs, prefix, err);
}

bool parse_single(const json_t *body, enum op_kind kind, struct bs_op *op, struct response *res)
{
    struct bs_error err;
    bs_error_clear(&err);
    op->kind = kind;
    struct op_context ctx = {op, NULL};
    struct field_spec specs[OP_FIELDS_MAX + 1];
    op_fields(kind, &ctx, true, specs);
    if (fields_parse(body, specs, "", &err))
        return true;
    err.op_index = -1; /* a single resource has no operation index */
    reply_error(res, &err);
    return false;
}

/* ---- headers, submitting, answers ---- */

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

bool submit(struct app *app, const struct request *req, struct bs_txn *txn, bool batch,
            struct bistore_outcome *out, struct response *res)
{
    txn->size_bytes = req->body_len;
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
    /* The outcome is wholly the caller's (model.h), so tx_id goes into the
     * record itself: no copy per answer. */
    json_t *rec = json_array_get(json_object_get(out->result, "records"), 0);
    if (!json_is_object(rec) ||
        json_object_set(rec, "tx_id", json_object_get(out->result, "tx_id")) != 0)
        return NULL;
    return json_incref(rec);
}

void reply_single_write(struct app *app, const struct request *req, struct bs_txn *txn,
                        unsigned status, const char *location, bool etag, struct response *res)
{
    struct bistore_outcome out;
    if (submit(app, req, txn, false, &out, res)) {
        json_t *rec = single_record(&out);
        if (!rec) {
            reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        } else {
            if (status == 201)
                response_header(res, "Location", "%s%s", location,
                                json_string_value(json_object_get(rec, "id")));
            if (etag)
                reply_etag(res, rec);
            reply_json(res, status, rec);
        }
    }
    bistore_outcome_clear(&out);
}

void create_single(struct app *app, const struct request *req, struct response *res,
                   enum op_kind kind, const char *scope, const char *location, bool etag)
{
    json_t *body = body_object(req, res);
    if (!body)
        return;
    struct bs_op op = {.if_version = -1};
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    if (parse_single(body, kind, &op, res) && idempotency_prepare(req, scope, body, &txn, res))
        reply_single_write(app, req, &txn, 201, location, etag, res);
    json_decref(op.properties);
    json_decref(op.metadata);
    json_decref(body);
}

bool idempotency_prepare_resource(const struct request *req, const char *method,
                                  const char *collection, const json_t *body, int64_t if_version,
                                  char *scope, size_t cap, struct bs_txn *txn, struct response *res)
{
    if (!request_header(req, "Idempotency-Key"))
        return true;
    int n = snprintf(scope, cap, "%s /v1/%s/%s", method, collection, req->args[0]);
    json_t *keyed = n > 0 && (size_t)n < cap
                        ? json_pack("{s:O?, s:I}", "body", body, "if_match", (json_int_t)if_version)
                        : NULL;
    if (!keyed) {
        reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        return false;
    }
    bool ok = idempotency_prepare(req, scope, keyed, txn, res);
    json_decref(keyed);
    return ok;
}

void reply_single_delete(struct app *app, const struct request *req, const char *collection,
                         struct bs_op *op, struct response *res)
{
    snprintf(op->id, sizeof op->id, "%s", req->args[0]);
    struct bs_txn txn = {.ops = op, .n_ops = 1};
    char scope[IDEMPOTENCY_SCOPE_MAX];
    if (!idempotency_prepare_resource(req, "DELETE", collection, NULL, op->if_version, scope,
                                      sizeof scope, &txn, res))
        return;
    struct bistore_outcome out;
    if (submit(app, req, &txn, false, &out, res))
        res->status = 204;
    bistore_outcome_clear(&out);
}

void reply_etag(struct response *res, const json_t *record)
{
    response_header(res, "ETag", "\"%lld\"",
                    (long long)json_integer_value(json_object_get(record, "version")));
}

void reply_lookup(struct response *res, enum lookup found, json_t *record, const char *what,
                  const char *id, const struct bs_error *err)
{
    switch (found) {
    case LOOKUP_FOUND: reply_json(res, 200, record); return;
    case LOOKUP_MISSING:
        json_decref(record);
        reply_errorf(res, BS_NOT_FOUND, NULL, "%s '%s' does not exist", what, id);
        return;
    case LOOKUP_FAILED:
        json_decref(record);
        reply_error(res, err);
        return;
    }
}

void reply_get_by_id(struct app *app, const struct request *req, struct response *res,
                     const char *field, record_read read, const char *what)
{
    if (!path_id(req, 0, field, res))
        return;
    json_t *record = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    enum lookup found = read(app->store, req->args[0], &record, &err);
    reply_lookup(res, found, record, what, req->args[0], &err);
}

bool page_begin(const struct request *req, struct page *page, struct response *res)
{
    *page = (struct page){.after = request_query(req, "after")};
    bs_error_clear(&page->err);
    return query_limit(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &page->limit, res);
}

void page_free(struct page *page)
{
    json_decref(page->items);
    free(page->next);
    page->items = NULL;
    page->next = NULL;
}

void page_answer(struct response *res, int rc, struct page *page)
{
    if (rc != 0) {
        page_free(page);
        reply_error(res, &page->err);
        return;
    }
    reply_page(res, page->items, page->next); /* consumes both */
    page->items = NULL;
    page->next = NULL;
}
