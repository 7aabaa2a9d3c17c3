/*
 * The route table: every resource's handlers (the router is
 * handlers/http/router.c), and the API key scope each needs (API.md,
 * Authentication): GET needs read, POST, PATCH and DELETE need write; the
 * probes, /metrics, the dashboard and the contract need no key. What needs
 * admin on top depends on the body, and is decided in one function each in
 * handlers/common.c: raw_statements_permitted and repair_permitted.
 */
#include <string.h>

#include "handlers/handlers.h"
#include "handlers/http/errors.h"

static const struct route routes[] = {
    {"/healthz", "GET", handle_healthz, "healthz", false, SCOPE_NONE},
    {"/readyz", "GET", handle_readyz, "readyz", false, SCOPE_NONE},
    {"/openapi.yaml", "GET", handle_openapi, "openapi", false, SCOPE_NONE},
    {"/dashboard", "GET", handle_dashboard, "dashboard", false, SCOPE_NONE},
    {"/metrics", "GET", handle_metrics, "metrics", false, SCOPE_NONE},
    {"/v1/stats", "GET", handle_stats, "stats", false, SCOPE_READ},
    {"/v1/alerts", "GET", handle_alerts, "alerts", false, SCOPE_READ},
    {"/v1/entities", "POST", handle_entity_create, "entities.create", true, SCOPE_WRITE},
    {"/v1/entities", "GET", handle_entity_list, "entities.list", false, SCOPE_READ},
    {"/v1/entities/*", "GET", handle_entity_get, "entities.get", false, SCOPE_READ},
    {"/v1/entities/*", "PATCH", handle_entity_patch, "entities.patch", true, SCOPE_WRITE},
    {"/v1/entities/*", "DELETE", handle_entity_delete, "entities.delete", true, SCOPE_WRITE},
    {"/v1/relationships", "POST", handle_relationship_create, "relationships.create", true,
     SCOPE_WRITE},
    {"/v1/relationships/*", "GET", handle_relationship_get, "relationships.get", false, SCOPE_READ},
    {"/v1/relationships/*", "DELETE", handle_relationship_delete, "relationships.delete", true,
     SCOPE_WRITE},
    {"/v1/transactions", "POST", handle_transaction_create, "transactions.create", true,
     SCOPE_WRITE},
    {"/v1/transactions", "GET", handle_transaction_list, "transactions.list", false, SCOPE_READ},
    {"/v1/transactions/*", "GET", handle_transaction_get, "transactions.get", false, SCOPE_READ},
    {"/v1/ids", "POST", handle_ids, "ids", false, SCOPE_WRITE},
    {"/v1/reconciliations", "POST", handle_reconciliation_create, "reconciliations.create", false,
     SCOPE_WRITE},
    {"/v1/reconciliations", "GET", handle_reconciliation_list, "reconciliations.list", false,
     SCOPE_READ},
    {"/v1/reconciliations/*", "GET", handle_reconciliation_get, "reconciliations.get", false,
     SCOPE_READ},
    {"/v1/reconciliations/*/findings", "GET", handle_reconciliation_findings,
     "reconciliations.findings", false, SCOPE_READ},
};

const struct route_table handlers_routes = {routes, sizeof routes / sizeof routes[0]};

void handlers_dispatch(struct app *app, struct request *req, struct response *res)
{
    /* A standby has no store: the API waits for its promotion. */
    if (app_role(app) == APP_STANDBY && strncmp(req->path, "/v1/", 4) == 0) {
        reply_errorf(res, BS_STANDBY, NULL,
                     "this gateway is a standby: send requests to the primary, or retry here once "
                     "it has taken over (GET /readyz)");
        return;
    }
    router_dispatch(&handlers_routes, app, req, res);
}
