/*
 * The handlers, one file per resource, and the route table that names them
 * (routes.c).
 */
#ifndef BISTORE_HANDLERS_H
#define BISTORE_HANDLERS_H

#include "handlers/app.h"
#include "handlers/http/request.h"
#include "handlers/http/router.h"

void handle_healthz(struct app *app, const struct request *req, struct response *res);
void handle_readyz(struct app *app, const struct request *req, struct response *res);
void handle_openapi(struct app *app, const struct request *req, struct response *res);
void handle_metrics(struct app *app, const struct request *req, struct response *res);
void handle_stats(struct app *app, const struct request *req, struct response *res);
void handle_alerts(struct app *app, const struct request *req, struct response *res);
void handle_ids(struct app *app, const struct request *req, struct response *res);
/* GET /dashboard (handlers/dashboard.c) */
void handle_dashboard(struct app *app, const struct request *req, struct response *res);

void handle_entity_create(struct app *app, const struct request *req, struct response *res);
void handle_entity_list(struct app *app, const struct request *req, struct response *res);
void handle_entity_get(struct app *app, const struct request *req, struct response *res);
void handle_entity_patch(struct app *app, const struct request *req, struct response *res);
void handle_entity_delete(struct app *app, const struct request *req, struct response *res);

void handle_relationship_create(struct app *app, const struct request *req, struct response *res);
void handle_relationship_get(struct app *app, const struct request *req, struct response *res);
void handle_relationship_delete(struct app *app, const struct request *req, struct response *res);

void handle_transaction_create(struct app *app, const struct request *req, struct response *res);
void handle_transaction_list(struct app *app, const struct request *req, struct response *res);
void handle_transaction_get(struct app *app, const struct request *req, struct response *res);

void handle_reconciliation_create(struct app *app, const struct request *req, struct response *res);
void handle_reconciliation_list(struct app *app, const struct request *req, struct response *res);
void handle_reconciliation_get(struct app *app, const struct request *req, struct response *res);
void handle_reconciliation_findings(struct app *app, const struct request *req,
                                    struct response *res);

/* Every route of the API. */
extern const struct route_table handlers_routes;
/* Answers req by the route table. */
void handlers_dispatch(struct app *app, struct request *req, struct response *res);

#endif
