/* The route table: every resource's handlers (the router is handlers/http/router.c). */
#include "handlers/handlers.h"

static const struct route routes[] = {
    {"/healthz", "GET", handle_healthz, "healthz"},
    {"/readyz", "GET", handle_readyz, "readyz"},
    {"/openapi.yaml", "GET", handle_openapi, "openapi"},
    {"/dashboard", "GET", handle_dashboard, "dashboard"},
    {"/v1/entities", "POST", handle_entity_create, "entities.create"},
    {"/v1/entities", "GET", handle_entity_list, "entities.list"},
    {"/v1/entities/*", "GET", handle_entity_get, "entities.get"},
    {"/v1/entities/*", "PATCH", handle_entity_patch, "entities.patch"},
    {"/v1/entities/*", "DELETE", handle_entity_delete, "entities.delete"},
    {"/v1/relationships", "POST", handle_relationship_create, "relationships.create"},
    {"/v1/relationships/*", "GET", handle_relationship_get, "relationships.get"},
    {"/v1/relationships/*", "DELETE", handle_relationship_delete, "relationships.delete"},
    {"/v1/transactions", "POST", handle_transaction_create, "transactions.create"},
    {"/v1/transactions", "GET", handle_transaction_list, "transactions.list"},
    {"/v1/transactions/*", "GET", handle_transaction_get, "transactions.get"},
    {"/v1/ids", "POST", handle_ids, "ids"},
    {"/v1/reconciliations", "POST", handle_reconciliation_create, "reconciliations.create"},
    {"/v1/reconciliations", "GET", handle_reconciliation_list, "reconciliations.list"},
    {"/v1/reconciliations/*", "GET", handle_reconciliation_get, "reconciliations.get"},
    {"/v1/reconciliations/*/findings", "GET", handle_reconciliation_findings,
     "reconciliations.findings"},
};

const struct route_table handlers_routes = {routes, sizeof routes / sizeof routes[0]};

void handlers_dispatch(struct app *app, struct request *req, struct response *res)
{
    router_dispatch(&handlers_routes, app, req, res);
}
