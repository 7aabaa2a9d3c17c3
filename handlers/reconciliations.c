/* /v1/reconciliations: start a run, read it, list runs, page through findings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "stores/bistore.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

static const char *const finding_kinds[] = {"only_in_sqlite", "only_in_neo4j", "mismatch",
                                            "duplicate_id",   "missing_id",    NULL};

/* A string field with one of the allowed values; false after 400. */
static bool get_choice(const json_t *body, const char *name, const char *def, const char **out,
                       struct response *res)
{
    json_t *v = json_object_get(body, name);
    *out = def;
    if (!v)
        return true;
    if (!json_is_string(v)) {
        reply_errorf(res, BS_INVALID_REQUEST, name, "'%s' must be a string", name);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

void handle_reconciliation_create(struct app *app, const struct request *req, struct response *res)
{
    static const char *const allowed[] = {"mode", "repair", "dry_run", NULL};
    /* No body at all: the defaults (a fast check, no repair). */
    json_t *body = req->body_len == 0 ? json_object() : body_object(req, res);
    if (!body)
        return;
    struct bs_error err;
    bs_error_clear(&err);
    struct recon_options opt = {RECON_FAST, REPAIR_NONE, false};
    const char *mode, *repair;
    json_t *dry = json_object_get(body, "dry_run");
    if (!only_fields(body, allowed, "", &err)) {
        reply_error(res, &err);
    } else if (!get_choice(body, "mode", "fast", &mode, res) ||
               !get_choice(body, "repair", "none", &repair, res)) {
        /* answered */
    } else if (!recon_mode_parse(mode, &opt.mode)) {
        reply_errorf(res, BS_INVALID_REQUEST, "mode", "mode must be fast or deep");
    } else if (!recon_repair_parse(repair, &opt.repair)) {
        reply_errorf(res, BS_INVALID_REQUEST, "repair",
                     "repair must be none, sqlite_wins or neo4j_wins");
    } else if (dry && !json_is_boolean(dry)) {
        reply_errorf(res, BS_INVALID_REQUEST, "dry_run", "dry_run must be true or false");
    } else {
        opt.dry_run = json_is_true(dry);
        char id[UUID_STR_LEN];
        json_t *run = NULL;
        if (bistore_reconcile_start(app->store, &opt, id, &err) != 0 ||
            bistore_reconcile_get(app->store, id, &run, &err) != 0) {
            reply_error(res, &err);
        } else {
            response_header(res, "Location", "/v1/reconciliations/%s", id);
            reply_json(res, 202, run);
        }
    }
    json_decref(body);
}

void handle_reconciliation_get(struct app *app, const struct request *req, struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    json_t *run;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = bistore_reconcile_get(app->store, req->args[0], &run, &err);
    if (rc == 0)
        reply_json(res, 200, run);
    else if (rc == 1)
        reply_errorf(res, BS_NOT_FOUND, NULL, "reconciliation '%s' does not exist", req->args[0]);
    else
        reply_error(res, &err);
}

void handle_reconciliation_list(struct app *app, const struct request *req, struct response *res)
{
    int limit;
    if (!query_limit(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit, res))
        return;
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (bistore_reconcile_list(app->store, request_query(req, "after"), limit, &items, &next,
                               &err) != 0) {
        json_decref(items);
        free(next);
        reply_error(res, &err);
        return;
    }
    reply_page(res, items, next);
}

void handle_reconciliation_findings(struct app *app, const struct request *req,
                                    struct response *res)
{
    if (!path_id(req, 0, "id", res))
        return;
    const char *kind = request_query(req, "kind");
    bool known = !kind;
    for (const char *const *k = finding_kinds; kind && *k; k++)
        known = known || strcmp(*k, kind) == 0;
    if (!known) {
        reply_errorf(res, BS_INVALID_REQUEST, "kind",
                     "kind must be only_in_sqlite, only_in_neo4j, mismatch, duplicate_id or "
                     "missing_id");
        return;
    }
    int limit;
    if (!query_limit(req, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit, res))
        return;
    json_t *items = NULL;
    char *next = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = bistore_findings_list(app->store, req->args[0], kind, request_query(req, "after"),
                                   limit, &items, &next, &err);
    if (rc != 0) {
        json_decref(items);
        free(next);
        if (rc == 1)
            reply_errorf(res, BS_NOT_FOUND, NULL, "reconciliation '%s' does not exist",
                         req->args[0]);
        else
            reply_error(res, &err);
        return;
    }
    reply_page(res, items, next);
}
