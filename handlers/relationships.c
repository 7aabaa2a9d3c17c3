/* /v1/relationships: create, read, delete. */
#include <stdio.h>
#include <string.h>

#include "handlers/common.h"
#include "handlers/handlers.h"

void handle_relationship_create(struct app *app, const struct request *req, struct response *res)
{
    json_t *body = body_object(req, res);
    if (!body)
        return;
    struct bs_op op = {.if_version = -1};
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    if (parse_single(body, OP_CREATE_RELATIONSHIP, &op, res) &&
        idempotency_prepare(req, "POST /v1/relationships", body, &txn, res)) {
        struct bistore_outcome out;
        if (submit(app, req, &txn, false, &out, res)) {
            json_t *rec = single_record(&out);
            if (rec) {
                response_header(res, "Location", "/v1/relationships/%s", op.id);
                reply_json(res, 201, rec);
            } else {
                reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
            }
        }
        bistore_outcome_clear(&out);
    }
    json_decref(op.properties);
    json_decref(body);
}

void handle_relationship_get(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    json_t *rel = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    enum lookup found = bistore_get_relationship(app->store, req->args[0], &rel, &err);
    reply_lookup(res, found, rel, "relationship", req->args[0], &err);
}

void handle_relationship_delete(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    struct bs_op op = {.kind = OP_DELETE_RELATIONSHIP, .if_version = -1};
    snprintf(op.id, sizeof op.id, "%s", req->args[0]);
    struct bs_txn txn = {.ops = &op, .n_ops = 1};
    struct bistore_outcome out;
    if (submit(app, req, &txn, false, &out, res))
        res->status = 204;
    bistore_outcome_clear(&out);
}
