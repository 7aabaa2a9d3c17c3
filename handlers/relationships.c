/* /v1/relationships: create, read, delete. */
#include <stdio.h>

#include "handlers/common.h"
#include "handlers/handlers.h"

void handle_relationship_create(struct app *app, const struct request *req, struct response *res)
{
    create_single(app, req, res, OP_CREATE_RELATIONSHIP, "POST /v1/relationships",
                  "/v1/relationships/", false);
}

void handle_relationship_get(struct app *app, const struct request *req, struct response *res)
{
    reply_get_by_id(app, req, res, "id", bistore_get_relationship, "relationship");
}

void handle_relationship_delete(struct app *app, const struct request *req, struct response *res)
{
    struct bs_op op = {.kind = OP_DELETE_RELATIONSHIP, .if_version = -1};
    if (path_id(req, 0, "id", res))
        reply_single_delete(app, req, "relationships", &op, res);
}
