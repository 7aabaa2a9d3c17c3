/* /v1/entities: create, read, list, patch, delete. */
#include <stdio.h>
#include <string.h>

#include "handlers/common.h"
#include "handlers/handlers.h"

void handle_entity_create(struct app *app, const struct request *req, struct response *res)
{
    create_single(app, req, res, OP_CREATE_ENTITY, "POST /v1/entities", "/v1/entities/", true);
}

void handle_entity_get(struct app *app, const struct request *req, struct response *res)
{
    static const char *const booleans[] = {"true", "false", NULL};
    const char *verify;
    if (!path_id(req, 0, "id", res) ||
        !query_choice(req, "verify", booleans, "verify must be true or false", &verify, res))
        return;
    json_t *entity = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    enum lookup found = verify && strcmp(verify, "true") == 0
                            ? bistore_verify_entity(app->store, req->args[0], &entity, &err)
                            : bistore_get_entity(app->store, req->args[0], &entity, &err);
    if (found == LOOKUP_FOUND)
        reply_etag(res, entity);
    reply_lookup(res, found, entity, "entity", req->args[0], &err);
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
    struct page page;
    if (page_begin(req, &page, res))
        page_answer(res,
                    bistore_list_entities(app->store, type, page.after, page.limit, &page.items,
                                          &page.next, &page.err),
                    &page);
}

void handle_entity_patch(struct app *app, const struct request *req, struct response *res)
{
    struct bs_op op = {.kind = OP_UPDATE_ENTITY};
    if (!path_id(req, 0, "id", res) || !parse_if_match(req, &op.if_version, res))
        return;
    json_t *body = body_object(req, res);
    if (!body)
        return;
    snprintf(op.id, sizeof op.id, "%s", req->args[0]);
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    char scope[IDEMPOTENCY_SCOPE_MAX];
    if (parse_single(body, OP_UPDATE_ENTITY, &op, res) &&
        idempotency_prepare_resource(req, "PATCH", "entities", body, op.if_version, scope,
                                     sizeof scope, &txn, res))
        reply_single_write(app, req, &txn, 200, NULL, true, res);
    json_decref(op.properties);
    json_decref(op.metadata);
    json_decref(body);
}

void handle_entity_delete(struct app *app, const struct request *req, struct response *res)
{
    struct bs_op op = {.kind = OP_DELETE_ENTITY};
    if (path_id(req, 0, "id", res) && parse_if_match(req, &op.if_version, res))
        reply_single_delete(app, req, "entities", &op, res);
}
