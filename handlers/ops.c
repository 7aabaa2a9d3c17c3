/* Operations endpoints: /healthz, /readyz, /openapi.yaml, and /v1/ids. */
#include <stdio.h>

#include "common/ids.h"
#include "common/metrics.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "stores/bistore.h"

#define IDS_MAX 10000
#define IDS_MAX_TEXT "10000"

extern const char bistore_openapi_yaml[];
extern const unsigned long bistore_openapi_yaml_len;

void handle_healthz(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    (void)req;
    reply_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

void handle_readyz(struct app *app, const struct request *req, struct response *res)
{
    (void)req;
    char reason[1024] = "";
    if (app_role(app) == APP_STANDBY) {
        if (app->standby_note)
            app->standby_note(app->standby_ctx, reason, sizeof reason);
        reply_errorf(res, BS_STANDBY, NULL, "standby: %s", reason);
    } else if (bistore_ready(app->store, reason, sizeof reason)) {
        reply_json(res, 200,
                   json_pack("{s:s, s:s, s:I}", "status", "ready", "role", app_role_name(app),
                             "epoch", (json_int_t)bistore_epoch(app->store)));
        return;
    } else {
        reply_errorf(res, BS_NOT_READY, NULL, "not ready: %s", reason);
    }
    /* the error body says the role too: standby, fenced or primary */
    if (res->body)
        json_object_set_new(res->body, "role", json_string(app_role_name(app)));
}

void handle_openapi(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    (void)req;
    res->status = 200;
    res->raw = bistore_openapi_yaml;
    res->raw_len = bistore_openapi_yaml_len;
    res->content_type = "application/yaml";
}

void handle_ids(struct app *app, const struct request *req, struct response *res)
{
    (void)app;
    json_t *body = body_object(req, res);
    if (!body)
        return;
    int64_t count = 0;
    const struct field_spec fields[] = {
        {"count", FIELD_INTEGER, .required = true, .dest = &count, .min = 1, .max = IDS_MAX,
         .message = "count must be an integer in 1.." IDS_MAX_TEXT},
        {0},
    };
    struct bs_error err;
    bs_error_clear(&err);
    if (!fields_parse(body, fields, "", &err)) {
        reply_error(res, &err);
    } else {
        json_t *ids = json_array();
        for (int64_t i = 0; ids && i < count; i++) {
            char id[UUID_STR_LEN];
            ids_uuid7(id);
            if (json_array_append_new(ids, json_string(id)) != 0) {
                json_decref(ids);
                ids = NULL;
            }
        }
        json_t *answer = ids ? json_pack("{s:o}", "ids", ids) : NULL;
        if (answer) {
            metrics_ids_generated((uint64_t)count);
            reply_json(res, 200, answer);
        } else
            reply_errorf(res, BS_STORAGE_ERROR, NULL, "out of memory");
    }
    json_decref(body);
}
