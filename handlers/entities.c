/* /v1/entities: create, read, list, patch, delete. */
#include <stdio.h>
#include <string.h>

#include "common/ids.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "stores/bistore.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

static void reply_entity(struct response *res, unsigned status, json_t *entity)
{
    response_header(res, "ETag", "\"%lld\"",
                    (long long)json_integer_value(json_object_get(entity, "version")));
    reply_json(res, status, entity);
}

/* Runs a one-operation transaction and answers its record. */
static void run_single(struct app *app, const struct request *req, struct bs_txn *txn,
                       unsigned status, struct response *res)
{
    struct bistore_outcome out;
    if (submit(app, req, txn, false, &out, res)) {
        json_t *rec = single_record(&out);
        if (!rec) {
            reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
        } else {
            if (status == 201)
                response_header(res, "Location", "/v1/entities/%s",
                                json_string_value(json_object_get(rec, "id")));
            reply_entity(res, status, rec);
        }
    }
    bistore_outcome_clear(&out);
}

void handle_entity_create(struct app *app, const struct request *req, struct response *res)
{
    static const char *const allowed[] = {"id", "type", "properties", "metadata", NULL};
    json_t *body = body_object(req, res);
    if (!body)
        return;
    struct bs_op op = {0};
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    if (parse_single(body, allowed, "create_entity", &op, res) &&
        idempotency_prepare(req, "POST /v1/entities", body, &txn, res))
        run_single(app, req, &txn, 201, res);
    json_decref(op.properties);
    json_decref(op.metadata);
    json_decref(body);
}

void handle_entity_get(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    const char *verify = request_query(req, "verify");
    if (verify && strcmp(verify, "true") != 0 && strcmp(verify, "false") != 0) {
        reply_errorf(res, BS_INVALID_REQUEST, "verify", "verify must be true or false");
        return;
    }
    json_t *entity;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = verify && strcmp(verify, "true") == 0
                 ? bistore_verify_entity(app->store, req->args[0], &entity, &err)
                 : bistore_get_entity(app->store, req->args[0], &entity, &err);
    if (rc == 0)
        reply_entity(res, 200, entity);
    else if (rc == 1)
        reply_errorf(res, BS_NOT_FOUND, NULL, "entity '%s' does not exist", req->args[0]);
    else
        reply_error(res, &err);
}

void handle_entity_list(struct app *app, const struct request *req, struct response *res)
{
    const char *type = request_query(req, "type");
    if (type && !model_valid_entity_type(type)) {
        reply_errorf(res, BS_INVALID_REQUEST, "type",
                     "type must match ^[A-Za-z][A-Za-z0-9_]{0,63}$ and not be '" MODEL_ENTITY_LABEL
                     "'");
        return;
    }
    int limit;
    if (!query_limit(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit, res))
        return;
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (bistore_list_entities(app->store, type, request_query(req, "after"), limit, &items, &next,
                              &err) != 0) {
        json_decref(items);
        free(next);
        reply_error(res, &err);
        return;
    }
    reply_page(res, items, next);
}

void handle_entity_patch(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    int64_t if_version;
    if (!parse_if_match(req, &if_version, res))
        return;
    json_t *body = body_object(req, res);
    if (!body)
        return;
    static const char *const allowed[] = {"properties", "metadata", NULL};
    struct bs_error err;
    bs_error_clear(&err);
    struct bs_op op = {0};
    json_t *as_op = json_pack("{s:s, s:s}", "op", "update_entity", "id", req->args[0]);
    bool ok = as_op && only_fields(body, allowed, "", &err) &&
              json_object_update(as_op, body) == 0 &&
              parse_operation(as_op, 0, "", &op, NULL, &err);
    json_decref(as_op);
    if (!ok) {
        err.op_index = -1;
        if (err.code == BS_OK)
            bs_error_set(&err, BS_STORAGE_ERROR, "out of memory");
        reply_error(res, &err);
    } else {
        op.if_version = if_version;
        struct bs_txn txn = {.ops = &op, .n_ops = 1};
        run_single(app, req, &txn, 200, res);
    }
    json_decref(op.properties);
    json_decref(op.metadata);
    json_decref(body);
}

void handle_entity_delete(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    struct bs_op op = {.kind = OP_DELETE_ENTITY};
    if (!parse_if_match(req, &op.if_version, res))
        return;
    snprintf(op.id, sizeof op.id, "%s", req->args[0]);
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    struct bistore_outcome out;
    if (submit(app, req, &txn, false, &out, res)) {
        res->status = 204;
    }
    bistore_outcome_clear(&out);
}
