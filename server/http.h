/*
 * The HTTP daemon (libmicrohttpd, a thread per connection): collects each
 * request body under the configured limit, assigns the request id, hands
 * the request to the router and sends the response. The only file that
 * knows libmicrohttpd.
 */
#ifndef BISTORE_HTTP_H
#define BISTORE_HTTP_H

#include "handlers/app.h"
#include "server/apikeys.h"
#include "server/config.h"

struct http_server;

/* Binds cfg's listen address (port 0: any free one, written to
 * *bound_port) and serves app with cfg's limits (body size, connections),
 * over TLS when cfg has --tls-cert and --tls-key (read here). keys: the API
 * keys every request is checked against (NULL: none configured); the
 * caller keeps them alive until http_stop. */
struct http_server *http_start(struct app *app, const struct config *cfg, struct apikeys *keys,
                               unsigned *bound_port, char *msg, size_t cap);
void http_stop(struct http_server *srv);

#endif
