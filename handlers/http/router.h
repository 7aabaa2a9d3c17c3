/*
 * The router: dispatches a request by a static table of (path pattern,
 * method, handler) that the caller owns (handlers/routes.c has bistore's);
 * it knows no resource itself. Routes match the path as the client sent it, percent-encoded, so an
 * encoded '/' ("%2F") stays inside its segment. A '*' segment matches one
 * path segment and becomes a request argument, percent-decoded with its
 * length. Unknown path: 404; known path, other method: 405 with Allow; a
 * URL longer than ROUTER_MAX_URL: 414. With API keys (req->keys_required),
 * a route's scope is checked before its handler runs: no known key, 401
 * with WWW-Authenticate: Bearer (also for an unknown path under /v1);
 * a key without the scope, 403.
 */
#ifndef BISTORE_ROUTER_H
#define BISTORE_ROUTER_H

#include "handlers/http/request.h"

#define ROUTER_MAX_URL REQUEST_MAX_URL

struct route {
    const char *pattern;
    const char *method;
    handler_fn handler;
    const char *name; /* for logs and metrics: "entities.create" */
    bool write_tx;    /* a write transaction (counted in bistore_transactions_total) */
    unsigned scope;   /* the API key scope it needs (SCOPE_*); SCOPE_NONE: open */
};

struct route_table {
    const struct route *routes;
    size_t n;
};

/* Fills req->args and answers res (through the handler or an error). */
void router_dispatch(const struct route_table *table, struct app *app, struct request *req,
                     struct response *res);
/* The route of table that matches method and path, or NULL (exposed for tests). */
const struct route *router_match(const struct route_table *table, const char *method,
                                 const char *path, const char **args, size_t *n_args);

#endif
