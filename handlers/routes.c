/* The route table: every resource's handlers (the router is handlers/http/router.c). */
#include "handlers/handlers.h"

static const struct route routes[] = {
    {"/healthz", "GET", handle_healthz, "healthz", false},
    {"/readyz", "GET", handle_readyz, "readyz", false},
    {"/openapi.yaml", "GET", handle_openapi, "openapi", false},
    {"/dashboard", "GET", handle_dashboard, "dashboard", false},
    {"/metrics", "GET", handle_metrics, "metrics", false},
    {"/v1/stats", "GET", handle_stats, "stats", false},
    {"/v1/alerts", "GET", handle_alerts, "alerts", false},
    {"/v1/entities", "POST", handle_entity_create, "entities.create", true},
    {"/v1/entities", "GET", handle_entity_list, "entities.list", false},
    {"/v1/entities/*", "GET", handle_entity_get, "entities.get", false},
    {"/v1/entities/*", "PATCH", handle_entity_patch, "entities.patch", true},
    {"/v1/entities/*", "DELETE", handle_entity_delete, "entities.delete", true},
    {"/v1/relationships", "POST", handle_relationship_create, "relationships.create", true},
    {"/v1/relationships/*", "GET", handle_relationship_get, "relationships.get", false},
    {"/v1/relationships/*", "DELETE", handle_relationship_delete, "relationships.delete", true},
    {"/v1/transactions", "POST", handle_transaction_create, "transactions.create", true},
    {"/v1/transactions", "GET", handle_transaction_list, "transactions.list", false},
    {"/v1/transactions/*", "GET", handle_transaction_get, "transactions.get", false},
    {"/v1/ids", "POST", handle_ids, "ids", false},
    {"/v1/reconciliations", "POST", handle_reconciliation_create, "reconciliations.create", false},
    {"/v1/reconciliations", "GET", handle_reconciliation_list, "reconciliations.list", false},
    {"/v1/reconciliations/*", "GET", handle_reconciliation_get, "reconciliations.get", false},
    {"/v1/reconciliations/*/findings", "GET", handle_reconciliation_findings,
     "reconciliations.findings", false},
};

const struct route_table handlers_routes = {routes, sizeof routes / sizeof routes[0]};

void handlers_dispatch(struct app *app, struct request *req, struct response *res)
{
    router_dispatch(&handlers_routes, app, req, res);
}
