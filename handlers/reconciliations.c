/* /v1/reconciliations: start a run, read it, list runs, page through findings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/common.h"
#include "handlers/handlers.h"

void handle_reconciliation_create(struct app *app, const struct request *req, struct response *res)
{
    static const char *const modes[] = {"fast", "deep", NULL};
    static const char *const policies[] = {"none", "sqlite_wins", "neo4j_wins", NULL};
    /* No body at all: the defaults (a fast check, no repair). */
    json_t *body = req->body_len == 0 ? json_object() : body_object(req, res);
    if (!body)
        return;
    const char *mode = "fast", *repair = "none";
    bool dry_run = false;
    const struct field_spec fields[] = {
        {"mode", FIELD_CHOICE, .dest = &mode, .choices = modes,
         .message = "mode must be fast or deep"},
        {"repair", FIELD_CHOICE, .dest = &repair, .choices = policies,
         .message = "repair must be none, sqlite_wins or neo4j_wins"},
        {"dry_run", FIELD_BOOLEAN, .dest = &dry_run, .message = "dry_run must be true or false"},
        {0},
    };
    struct bs_error err;
    bs_error_clear(&err);
    struct recon_options opt = {RECON_FAST, REPAIR_NONE, false};
    char id[UUID_STR_LEN];
    json_t *run = NULL;
    if (!fields_parse(body, fields, "", &err) || !recon_mode_parse(mode, &opt.mode) ||
        !recon_repair_parse(repair, &opt.repair) ||
        !repair_permitted(req, opt.repair != REPAIR_NONE, &err)) {
        reply_error(res, &err);
    } else {
        opt.dry_run = dry_run;
        if (bistore_reconcile_start(app->store, &opt, id, &err) != 0 ||
            bistore_reconcile_get(app->store, id, &run, &err) != LOOKUP_FOUND) {
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
    reply_get_by_id(app, req, res, "id", bistore_reconcile_get, "reconciliation");
}

void handle_reconciliation_list(struct app *app, const struct request *req, struct response *res)
{
    struct page page;
    if (page_begin(req, &page, res))
        page_answer(res,
                    bistore_reconcile_list(app->store, page.after, page.limit, &page.items,
                                           &page.next, &page.err),
                    &page);
}

void handle_reconciliation_findings(struct app *app, const struct request *req,
                                    struct response *res)
{
    static const char *const kinds[] = {"only_in_sqlite", "only_in_neo4j", "mismatch",
                                        "duplicate_id",   "missing_id",    NULL};
    const char *kind;
    struct page page;
    if (!path_id(req, 0, "id", res) ||
        !query_choice(req, "kind", kinds,
                      "kind must be only_in_sqlite, only_in_neo4j, mismatch, duplicate_id or "
                      "missing_id",
                      &kind, res) ||
        !page_begin(req, &page, res))
        return;
    enum lookup found = bistore_findings_list(app->store, req->args[0], kind, page.after,
                                              page.limit, &page.items, &page.next, &page.err);
    if (found == LOOKUP_MISSING) {
        page_free(&page);
        reply_errorf(res, BS_NOT_FOUND, NULL, "reconciliation '%s' does not exist", req->args[0]);
        return;
    }
    page_answer(res, found == LOOKUP_FOUND ? 0 : -1, &page);
}
